"""Plain NumPy kernels: the readable oracle every fast kernel is tested against.

Each function has the signature of its dispatch twin in ``kernels/__init__.py`` (see there
for the argument checks); the convolution kernels take a ``kernels.Window`` and unpack it.
Arrays are NCHW; the output dtype is the input dtype.

Almost everything here is built from two helpers:

* ``_windows`` cuts every sliding window out of a padded image:
  (N, C, H, W) -> (N, C, kh, kw, oh, ow), one strided slice per kernel offset (i, j).
* ``_fold`` is its adjoint: it adds every window cell back onto the image it came from.

The convolution and BatchNorm's eval-mode backward also have a loop-by-loop twin at the end
(``conv2d_forward_loops``, ``conv2d_backward_loops``, ``batch_norm_eval_backward_loops``),
written for reading rather than speed: the definition every algorithm is tested against.

    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> y, argmax = max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 2, 2)
    >>> y[0, 0].tolist(), argmax[0, 0].tolist()
    ([[5.0, 7.0], [13.0, 15.0]], [[5, 7], [13, 15]])
"""
import numpy as np

from .device import array_module
from .geometry import conv_output_size
from .reference_winograd import (  # noqa: F401  (part of the reference kernels)
    _store, max_abs,
    WINOGRAD_AT, WINOGRAD_BT, WINOGRAD_G, WINOGRAD_PLANES, WINOGRAD_STEP, WINOGRAD_TILE, winograd_input_transform,
    winograd_input_transform_backward, winograd_output_transform, winograd_output_transform_backward,
    winograd_tile_grid, winograd_weight_transform, winograd_weight_transform_backward)


def _padded_size(size, k, s, p, d, out):
    """Length of the padded axis: the image plus `p` in front, long enough for every window."""
    last_window_end = (out - 1) * s + (k - 1) * d + 1
    return max(p + size, last_window_end)


def _windows(x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow, fill):
    """All sliding windows of x (N, C, H, W) -> (N, C, kh, kw, oh, ow); outside cells = fill."""
    n, c, h, w = x.shape
    hp = _padded_size(h, kh, sy, py, dil_h, oh)
    wp = _padded_size(w, kw, sx, px, dil_w, ow)
    padded = np.full((n, c, hp, wp), fill, dtype=x.dtype)
    padded[:, :, py:py + h, px:px + w] = x
    out = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dil_h, i * dil_h + (oh - 1) * sy + 1, sy)
            cols = slice(j * dil_w, j * dil_w + (ow - 1) * sx + 1, sx)
            out[:, :, i, j] = padded[:, :, rows, cols]
    return out


def _fold(col, h, w, sy, sx, py, px, dil_h, dil_w):
    """Adjoint of _windows: col (N, C, kh, kw, oh, ow) -> image (N, C, h, w), summing overlaps."""
    n, c, kh, kw, oh, ow = col.shape
    hp = _padded_size(h, kh, sy, py, dil_h, oh)
    wp = _padded_size(w, kw, sx, px, dil_w, ow)
    padded = np.zeros((n, c, hp, wp), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dil_h, i * dil_h + (oh - 1) * sy + 1, sy)
            cols = slice(j * dil_w, j * dil_w + (ow - 1) * sx + 1, sx)
            padded[:, :, rows, cols] += col[:, :, i, j]
    return padded[:, :, py:py + h, px:px + w]


def im2col(x, window, out=None):
    """x (N, C, H, W) -> col (N, C, kh, kw, oh, ow), zeros where a window leaves the image.
    ``out``, if given, receives the result."""
    (kh, kw), (sy, sx), (py, px), (dil_h, dil_w) = window
    oh, ow = window.output_size(*x.shape[2:])
    col = _windows(x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow, fill=0)
    return col if out is None else _store(col, out)


def col2im(col, window, size, out=None):
    """col (N, C, kh, kw, oh, ow) -> x (N, C, h, w) with size = (h, w): the adjoint of im2col."""
    _, (sy, sx), (py, px), (dil_h, dil_w) = window
    x = _fold(col, *size, sy, sx, py, px, dil_h, dil_w)
    return np.ascontiguousarray(x) if out is None else _store(x, out)


def im2row(x, window, out=None):
    """x (N, C, H, W) -> rows (N, oh, ow, kh, kw, C): the im2col windows, one row per output pixel."""
    rows = im2col(x, window).transpose(0, 4, 5, 2, 3, 1)
    return np.ascontiguousarray(rows) if out is None else _store(rows, out)


def row2im(rows, window, size, out=None):
    """rows (N, oh, ow, kh, kw, C) -> x (N, C, h, w) with size = (h, w): the adjoint of im2row."""
    return col2im(rows.transpose(0, 5, 3, 4, 1, 2), window, size, out=out)


def swap_last_axes(x, out=None):
    """(..., A, B) -> (..., B, A), C-contiguous."""
    swapped = x.swapaxes(-1, -2)
    return np.ascontiguousarray(swapped) if out is None else _store(swapped, out)


def _window_flat_index(h, w, kh, kw, sy, sx, py, px, oh, ow):
    """(kh, kw, oh, ow) int array: flat index iy*W + ix of every window cell (may be outside)."""
    iy = (np.arange(oh) * sy - py)[None, None, :, None] + np.arange(kh)[:, None, None, None]
    ix = (np.arange(ow) * sx - px)[None, None, None, :] + np.arange(kw)[None, :, None, None]
    return iy * w + ix


def max_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow):
    """Max over each window -> (y, argmax); argmax = iy*W + ix of the first maximum (int32)."""
    n, c, h, w = x.shape
    k = kh * kw
    values = _windows(x, kh, kw, sy, sx, py, px, 1, 1, oh, ow, fill=-np.inf).reshape(n, c, k, oh, ow)
    is_real = _windows(np.ones((1, 1, h, w), dtype=bool), kh, kw, sy, sx, py, px, 1, 1, oh, ow,
                       fill=False).reshape(1, 1, k, oh, ow)
    y = values.max(axis=2)                              # NaN propagates
    # the first real cell equal to the max (a NaN max is matched by the first NaN)
    is_max = np.where(np.isnan(y)[:, :, None], np.isnan(values), values == y[:, :, None])
    first = np.argmax(is_max & is_real, axis=2)         # (N, C, oh, ow), index into the window
    flat = _window_flat_index(h, w, kh, kw, sy, sx, py, px, oh, ow).reshape(1, 1, k, oh, ow)
    argmax = np.take_along_axis(flat, first[:, :, None], axis=2)[:, :, 0]
    return y, argmax.astype(np.int32)


def max_pool2d_backward(gy, argmax, h, w, kh, kw, sy, sx, py, px):
    """Route each gy to the input pixel that won its window; pixels sum what they receive."""
    oh, ow = gy.shape[2:]
    flat = _window_flat_index(h, w, kh, kw, sy, sx, py, px, oh, ow)
    won = argmax[:, :, None, None] == flat               # (N, C, kh, kw, oh, ow)
    col = np.where(won, gy[:, :, None, None], 0).astype(gy.dtype)
    return np.ascontiguousarray(_fold(col, h, w, sy, sx, py, px, 1, 1))


def _pool_counts(size, k, s, p, out, count_include_pad):
    """Per-axis divisor of average pooling (PyTorch's rule), shape (out,)."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    with_padding = end - start
    without_padding = np.minimum(end, size) - np.maximum(start, 0)
    return with_padding if count_include_pad else without_padding


def _pool_divisor(h, w, kh, kw, sy, sx, py, px, oh, ow, count_include_pad, dtype):
    rows = _pool_counts(h, kh, sy, py, oh, count_include_pad)
    cols = _pool_counts(w, kw, sx, px, ow, count_include_pad)
    return (rows[:, None] * cols[None, :]).astype(dtype)   # (oh, ow)


def avg_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow, count_include_pad):
    """Mean over each window; the divisor follows PyTorch (see _pool_counts)."""
    h, w = x.shape[2:]
    total = _windows(x, kh, kw, sy, sx, py, px, 1, 1, oh, ow, fill=0).sum(axis=(2, 3))
    return total / _pool_divisor(h, w, kh, kw, sy, sx, py, px, oh, ow, count_include_pad, x.dtype)


def avg_pool2d_backward(gy, h, w, kh, kw, sy, sx, py, px, count_include_pad):
    """Spread gy / divisor evenly over each window."""
    n, c, oh, ow = gy.shape
    share = gy / _pool_divisor(h, w, kh, kw, sy, sx, py, px, oh, ow, count_include_pad, gy.dtype)
    col = np.broadcast_to(share[:, :, None, None], (n, c, kh, kw, oh, ow))
    return np.ascontiguousarray(_fold(col, h, w, sy, sx, py, px, 1, 1))


def _channel_window_sum(values, before, after):
    """out[:, c] = sum of values[:, c'] for c' in [c - before, c + after], clipped to [0, C)."""
    channels = values.shape[1]
    out = np.zeros_like(values)
    for c in range(channels):
        out[:, c] = values[:, max(c - before, 0):c + after + 1].sum(axis=1)
    return out


def lrn_forward(x, size, alpha, beta, k):
    """Local response normalisation across channels (AlexNet): y = x * scale**-beta."""
    scale = k + alpha * _channel_window_sum(x * x, size // 2, (size - 1) // 2)
    return x * scale ** -beta, scale


def lrn_backward(x, y, scale, gy, size, alpha, beta):
    """Gradient of lrn_forward; channel c feeds the windows of c' in [c - (size-1)//2, c + size//2]."""
    feedback = _channel_window_sum(gy * y / scale, (size - 1) // 2, size // 2)
    return gy * scale ** -beta - 2 * alpha * beta * x * feedback


def _per_channel(v):
    """(C,) -> (1, C, 1) so it broadcasts against x (N, C, L)."""
    return v[None, :, None]


def batch_norm_forward_train(x, gamma, beta, eps, relu=False, relu_input=False):
    """x (N, C, L): normalise with the batch mean and biased variance -> (y, mean, var).
    ``relu``: y = max(y, 0) (a ReLU fused after the normalisation); ``relu_input``: normalise
    max(x, 0) (a ReLU fused before it)."""
    x = _relu(x) if relu_input else x
    mean = x.mean(axis=(0, 2))
    var = x.var(axis=(0, 2))
    y = batch_norm_forward_eval(x, gamma, beta, mean, var, eps, relu)
    return y, mean, var


def batch_norm_forward_eval(x, gamma, beta, mean, var, eps, relu=False, relu_input=False):
    """x (N, C, L): normalise with given statistics."""
    x = _relu(x) if relu_input else x
    xhat = (x - _per_channel(mean)) / np.sqrt(_per_channel(var) + eps)
    y = xhat * _per_channel(gamma) + _per_channel(beta)
    return _relu(y) if relu else y


def batch_norm_backward(x, gy, gamma, mean, var, eps, y=None, relu_input=False):
    """Training-mode gradient (the batch statistics depend on x) -> (gx, ggamma, gbeta).
    ``y``: the output of a fused ReLU; the gradient reaching BatchNorm is gy where y > 0.
    ``relu_input``: BatchNorm of max(x, 0); the gradient passes on only where x > 0."""
    if y is not None:
        gy = np.where(y > 0, gy, 0).astype(gy.dtype)
    if relu_input:
        mask, x = x > 0, _relu(x)
    m = x.shape[0] * x.shape[2]
    invstd = 1 / np.sqrt(var + eps)
    xhat = (x - _per_channel(mean)) * _per_channel(invstd)
    gbeta = gy.sum(axis=(0, 2))
    ggamma = (gy * xhat).sum(axis=(0, 2))
    gx = _per_channel(gamma * invstd / m) * (m * gy - _per_channel(gbeta) - xhat * _per_channel(ggamma))
    return np.where(mask, gx, 0).astype(gx.dtype) if relu_input else gx, ggamma, gbeta


def _relu(x):
    """max(x, 0) with NaN kept, in x's dtype."""
    return np.where(x < 0, 0, x).astype(x.dtype)


def relu_forward(x):
    """y = max(x, 0) with NaN kept, in x's dtype."""
    return array_module(x).where(x <= 0, x.dtype.type(0), x)


def relu_backward(gy, y):
    """gx = gy where y > 0, else 0."""
    return array_module(gy).where(y > 0, gy, gy.dtype.type(0))


def _depthwise_windows(x, multiplier, window):
    """Windows of the input channel each output channel reads: (N, C*M, kh, kw, oh, ow)."""
    return im2col(np.repeat(x, multiplier, axis=1), window)      # output channel o reads input o // M


def depthwise_conv2d_forward(x, weight, window):
    """x (N, C, H, W), weight (C*M, 1, kh, kw) -> y (N, C*M, oh, ow)."""
    multiplier = weight.shape[0] // x.shape[1]
    col = _depthwise_windows(x, multiplier, window)
    return np.einsum("noijyx,oij->noyx", col, weight[:, 0])


def depthwise_conv2d_backward_input(gy, weight, window, size, in_channels=None):
    """gy (N, C*M, oh, ow) -> gx (N, C, h, w) with size = (h, w); in_channels=None means C = C*M (M = 1)."""
    n, out_channels = gy.shape[:2]
    c = out_channels if in_channels is None else in_channels
    col = gy[:, :, None, None] * weight[None, :, 0, :, :, None, None]  # (N, C*M, kh, kw, oh, ow)
    gx_repeated = col2im(col, window, size)                            # (N, C*M, h, w)
    return gx_repeated.reshape(n, c, out_channels // c, *size).sum(axis=2)


def depthwise_conv2d_backward_weight(x, gy, window):
    """x (N, C, H, W), gy (N, C*M, oh, ow) -> gweight (C*M, 1, kh, kw)."""
    multiplier = gy.shape[1] // x.shape[1]
    col = _depthwise_windows(x, multiplier, window)
    return np.einsum("noijyx,noyx->oij", col, gy)[:, None]


def dropout_apply(x, mask, scale):
    """y = x * mask * scale, mask a bool array of x's shape (scale is usually 1 / (1 - p))."""
    return x * mask * x.dtype.type(scale)


# ---------------------------------------------------------------- written for reading: plain loops


def _window(padded, image, channels, oy, ox, kh, kw, stride, dilation):
    """The window of output pixel (oy, ox) in a padded image: (channels, kh, kw) values, dilated."""
    (sy, sx), (dil_h, dil_w) = stride, dilation
    top, left = oy * sy, ox * sx
    return padded[image, channels, top:top + dil_h * (kh - 1) + 1:dil_h, left:left + dil_w * (kw - 1) + 1:dil_w]


def conv2d_forward_loops(x, weight, bias, stride, padding, dilation, groups):
    """y[n, o, oy, ox] = bias[o] + sum of weight[o] * (the window of output pixel (oy, ox) in the
    input channels of o's group): one output pixel at a time. Pairs for stride, padding, dilation.

        >>> import numpy as np
        >>> x, w = np.arange(16.0).reshape(1, 1, 4, 4), np.ones((1, 1, 2, 2))
        >>> conv2d_forward_loops(x, w, None, (2, 2), (0, 0), (1, 1), 1)[0, 0].tolist()
        [[10.0, 18.0], [42.0, 50.0]]
    """
    n, c, h, w = x.shape
    oc, cg, kh, kw = weight.shape
    (py, px), per_group = padding, oc // groups
    oh = conv_output_size(h, kh, stride[0], py, dilation[0])
    ow = conv_output_size(w, kw, stride[1], px, dilation[1])
    padded = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
    y = np.zeros((n, oc, oh, ow), x.dtype)
    for image in range(n):
        for o in range(oc):
            channels = slice(o // per_group * cg, (o // per_group + 1) * cg)     # o's group
            for oy in range(oh):
                for ox in range(ow):
                    window = _window(padded, image, channels, oy, ox, kh, kw, stride, dilation)
                    y[image, o, oy, ox] = np.sum(window * weight[o]) + (0 if bias is None else bias[o])
    return y


def conv2d_backward_loops(x, weight, gy, stride, padding, dilation, groups):
    """(gx, gweight) of conv2d_forward_loops: each output pixel's gradient gy[n, o, oy, ox] flows
    back to the window it read (times weight[o]) and to weight[o] (times the window). The bias
    gradient is gy summed over (n, oy, ox)."""
    n, c, h, w = x.shape
    oc, cg, kh, kw = weight.shape
    (py, px), per_group = padding, oc // groups
    padded = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
    g_padded, gweight = np.zeros_like(padded), np.zeros_like(weight)
    for image in range(n):
        for o in range(oc):
            channels = slice(o // per_group * cg, (o // per_group + 1) * cg)
            for oy in range(gy.shape[2]):
                for ox in range(gy.shape[3]):
                    g = gy[image, o, oy, ox]
                    gweight[o] += g * _window(padded, image, channels, oy, ox, kh, kw, stride, dilation)
                    _window(g_padded, image, channels, oy, ox, kh, kw, stride, dilation)[...] += g * weight[o]
    return g_padded[:, :, py:py + h, px:px + w], gweight


def batch_norm_eval_backward_loops(x, gy, gamma, mean, var, eps):
    """(gx, ggamma, gbeta) of y = (x - mean) / sqrt(var + eps) * gamma + beta with fixed statistics,
    x and gy (N, C, L): one value at a time. The statistics are constants, so gx is gy scaled."""
    gx = np.zeros_like(x)
    ggamma, gbeta = np.zeros_like(gamma), np.zeros_like(gamma)
    n, c, length = x.shape
    for channel in range(c):
        inv_std = 1 / np.sqrt(var[channel] + eps)
        for image in range(n):
            for i in range(length):
                g = gy[image, channel, i]
                gbeta[channel] += g
                ggamma[channel] += g * (x[image, channel, i] - mean[channel]) * inv_std
                gx[image, channel, i] = g * gamma[channel] * inv_std
    return gx, ggamma, gbeta
