"""Plain NumPy kernels: the readable oracle every fast kernel is tested against.

Each function has the signature of its dispatch twin in ``kernels/__init__.py`` (see there
for the argument checks). Arrays are NCHW; the output dtype is the input dtype.

Almost everything here is built from two helpers:

* ``_windows`` cuts every sliding window out of a padded image:
  (N, C, H, W) -> (N, C, kh, kw, oh, ow), one strided slice per kernel offset (i, j).
* ``_fold`` is its adjoint: it adds every window cell back onto the image it came from.

    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> y, argmax = max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 2, 2)
    >>> y[0, 0].tolist(), argmax[0, 0].tolist()
    ([[5.0, 7.0], [13.0, 15.0]], [[5, 7], [13, 15]])
"""
import numpy as np

from ..backend import get_array_module


def _padded_size(size, k, s, p, d, out):
    """Length of the padded axis: the image plus `p` in front, long enough for every window."""
    last_window_end = (out - 1) * s + (k - 1) * d + 1
    return max(p + size, last_window_end)


def _windows(x, kh, kw, sy, sx, py, px, dy, dx, oh, ow, fill):
    """All sliding windows of x (N, C, H, W) -> (N, C, kh, kw, oh, ow); outside cells = fill."""
    n, c, h, w = x.shape
    hp = _padded_size(h, kh, sy, py, dy, oh)
    wp = _padded_size(w, kw, sx, px, dx, ow)
    padded = np.full((n, c, hp, wp), fill, dtype=x.dtype)
    padded[:, :, py:py + h, px:px + w] = x
    out = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dy, i * dy + (oh - 1) * sy + 1, sy)
            cols = slice(j * dx, j * dx + (ow - 1) * sx + 1, sx)
            out[:, :, i, j] = padded[:, :, rows, cols]
    return out


def _fold(col, h, w, sy, sx, py, px, dy, dx):
    """Adjoint of _windows: col (N, C, kh, kw, oh, ow) -> image (N, C, h, w), summing overlaps."""
    n, c, kh, kw, oh, ow = col.shape
    hp = _padded_size(h, kh, sy, py, dy, oh)
    wp = _padded_size(w, kw, sx, px, dx, ow)
    padded = np.zeros((n, c, hp, wp), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dy, i * dy + (oh - 1) * sy + 1, sy)
            cols = slice(j * dx, j * dx + (ow - 1) * sx + 1, sx)
            padded[:, :, rows, cols] += col[:, :, i, j]
    return padded[:, :, py:py + h, px:px + w]


def im2col(x, kh, kw, sy, sx, py, px, dy, dx, oh, ow, out=None):
    """x (N, C, H, W) -> col (N, C, kh, kw, oh, ow), zeros where a window leaves the image.
    ``out``, if given, receives the result."""
    col = _windows(x, kh, kw, sy, sx, py, px, dy, dx, oh, ow, fill=0)
    return col if out is None else _store(col, out)


def col2im(col, h, w, sy, sx, py, px, dy, dx, out=None):
    """col (N, C, kh, kw, oh, ow) -> x (N, C, h, w): the adjoint of im2col."""
    x = _fold(col, h, w, sy, sx, py, px, dy, dx)
    return np.ascontiguousarray(x) if out is None else _store(x, out)


def im2row(x, kh, kw, sy, sx, py, px, dy, dx, oh, ow, out=None):
    """x (N, C, H, W) -> rows (N, oh, ow, kh, kw, C): the im2col windows, one row per output pixel."""
    rows = im2col(x, kh, kw, sy, sx, py, px, dy, dx, oh, ow).transpose(0, 4, 5, 2, 3, 1)
    return np.ascontiguousarray(rows) if out is None else _store(rows, out)


def row2im(rows, h, w, sy, sx, py, px, dy, dx, out=None):
    """rows (N, oh, ow, kh, kw, C) -> x (N, C, h, w): the adjoint of im2row."""
    return col2im(rows.transpose(0, 5, 3, 4, 1, 2), h, w, sy, sx, py, px, dy, dx, out=out)


def swap_last_axes(x, out=None):
    """(..., A, B) -> (..., B, A), C-contiguous."""
    swapped = x.swapaxes(-1, -2)
    return np.ascontiguousarray(swapped) if out is None else _store(swapped, out)


# Winograd F(4x4, 3x3) (Lavin & Gray, 2015). The 4x4 outputs of a 3x3 filter g over a 6x6
# input tile d are
#     Y = A^T [ (G g G^T) * (B^T d B) ] A         (* elementwise)
# so a whole layer is 36 independent matrix products, one per cell ab of the 6x6 tiles,
#     M[ab] = V[ab] @ U[ab]:  (T, K) = (T, C) @ (C, K)     T tiles, C in, K out channels,
# 36 multiplications for 16 outputs where the direct convolution needs 144 (F(2x2, 3x3) needs
# 64). Tile (ty, tx) of image n makes outputs (4ty, 4tx) .. (4ty + 3, 4tx + 3) from input rows
# 4ty - py .. 4ty - py + 5 and columns 4tx - px .. 4tx - px + 5 (zeros outside the image);
# with th = ceil(oh / 4) and tw = ceil(ow / 4) tile rows and columns (winograd_tile_grid),
# tiles are numbered t = (n*th + ty)*tw + tx. Transformed tiles are 36 planes: planes[6a + b,
# t*C + c] in a (36, S) array, S >= T*C (kernels.winograd_plane_size; the dispatch functions
# zero the entries past T*C). The matrices interpolate at 0, 1, -1, 2, -2 and infinity; their
# entries are small (at most 8), which keeps float32 results within about 1e-5 of the direct
# sum, relative to the largest output (F(2x2, 3x3): about 1e-6).
WINOGRAD_STEP = 4                        # outputs per tile side: tiles are 4 pixels apart
WINOGRAD_TILE = WINOGRAD_STEP + 2        # inputs per tile side
WINOGRAD_PLANES = WINOGRAD_TILE ** 2
WINOGRAD_BT = np.array([[4, 0, -5, 0, 1, 0],
                        [0, -4, -4, 1, 1, 0],
                        [0, 4, -4, -1, 1, 0],
                        [0, -2, -1, 2, 1, 0],
                        [0, 2, -1, -2, 1, 0],
                        [0, 4, 0, -5, 0, 1]])
WINOGRAD_G = np.array([[1 / 4, 0, 0],
                       [-1 / 6, -1 / 6, -1 / 6],
                       [-1 / 6, 1 / 6, -1 / 6],
                       [1 / 24, 1 / 12, 1 / 6],
                       [1 / 24, -1 / 12, 1 / 6],
                       [0, 0, 1]])
WINOGRAD_AT = np.array([[1, 1, 1, 1, 1, 0],
                        [0, 1, -1, 2, -2, 0],
                        [0, 1, 1, 4, 4, 0],
                        [0, 1, -1, 8, -8, 1]])


def winograd_tile_grid(oh, ow):
    """(th, tw): the tiles per image, down and across, for an (oh, ow) output."""
    return -(-oh // WINOGRAD_STEP), -(-ow // WINOGRAD_STEP)


def _sandwich(left, tiles, right):
    """[a, b, ...] = sum over i, j of left[a, i] * tiles[i, j, ...] * right[b, j]."""
    xp = get_array_module(tiles)
    rows = xp.tensordot(xp.asarray(left, tiles.dtype), tiles, axes=(1, 0))            # (a, j, ...)
    return xp.moveaxis(xp.tensordot(xp.asarray(right, tiles.dtype), rows, axes=(1, 1)), 0, 1)


def _tile_cell(padded, i, j, th, tw):
    """(N, C, hp, wp) -> (N, C, th, tw): cell (i, j) of every tile."""
    step = WINOGRAD_STEP
    return padded[:, :, i:i + step * th:step, j:j + step * tw:step]


def _winograd_padded_size(h, w, py, px, th, tw):
    """(hp, wp) of a plane holding the image at (py, px) and every tile."""
    return max(py + h, WINOGRAD_STEP * th + 2), max(px + w, WINOGRAD_STEP * tw + 2)


def winograd_input_transform(x, py, px, th, tw, out):
    """x (N, C, H, W) -> out (36, S): out[6a + b, t*C + c] = (B^T d B)[a, b], d tile t of channel c."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    padded = xp.zeros((n, c) + _winograd_padded_size(h, w, py, px, th, tw), x.dtype)
    padded[:, :, py:py + h, px:px + w] = x
    cells = xp.stack([xp.stack([_tile_cell(padded, i, j, th, tw) for j in range(WINOGRAD_TILE)])
                      for i in range(WINOGRAD_TILE)])                            # (6, 6, N, C, th, tw)
    v = _sandwich(WINOGRAD_BT, cells, WINOGRAD_BT)
    out[:, :v[0, 0].size] = v.transpose(0, 1, 2, 4, 5, 3).reshape(WINOGRAD_PLANES, -1)
    return out


def winograd_input_transform_backward(v, n, c, h, w, py, px, th, tw, out=None):
    """v (36, S) -> x (N, C, h, w): the adjoint of winograd_input_transform (B v B^T of every
    tile, summed where tiles overlap)."""
    xp = get_array_module(v)
    size = WINOGRAD_TILE
    tiles = v[:, :n * th * tw * c].reshape(size, size, n, th, tw, c).transpose(0, 1, 2, 5, 3, 4)
    d = _sandwich(WINOGRAD_BT.T, tiles, WINOGRAD_BT.T)                          # (6, 6, N, C, th, tw)
    padded = xp.zeros((n, c) + _winograd_padded_size(h, w, py, px, th, tw), v.dtype)
    for i in range(size):
        for j in range(size):
            _tile_cell(padded, i, j, th, tw)[...] += d[i, j]
    x = padded[:, :, py:py + h, px:px + w]
    return xp.ascontiguousarray(x) if out is None else _store(x, out)


def winograd_output_transform(m, n, k, oh, ow, out=None):
    """m (36, S) -> y (N, K, oh, ow): A^T m A of every tile, cropped to (oh, ow)."""
    xp = get_array_module(m)
    (th, tw), size, step = winograd_tile_grid(oh, ow), WINOGRAD_TILE, WINOGRAD_STEP
    y = _sandwich(WINOGRAD_AT, m[:, :n * th * tw * k].reshape(size, size, n, th, tw, k), WINOGRAD_AT)
    y = y.transpose(2, 5, 3, 0, 4, 1).reshape(n, k, step * th, step * tw)[:, :, :oh, :ow]
    return xp.ascontiguousarray(y) if out is None else _store(y, out)


def winograd_output_transform_backward(gy, out):
    """gy (N, K, oh, ow) -> out (36, S): the adjoint of winograd_output_transform (A g A^T of
    every 4x4 tile of gy, zeros past (oh, ow))."""
    xp = get_array_module(gy)
    n, k, oh, ow = gy.shape
    (th, tw), step = winograd_tile_grid(oh, ow), WINOGRAD_STEP
    whole = xp.zeros((n, k, step * th, step * tw), gy.dtype)
    whole[:, :, :oh, :ow] = gy
    g = whole.reshape(n, k, th, step, tw, step).transpose(3, 5, 0, 2, 4, 1)          # (4, 4, N, th, tw, K)
    out[:, :g[0, 0].size] = _sandwich(WINOGRAD_AT.T, g, WINOGRAD_AT.T).reshape(WINOGRAD_PLANES, -1)
    return out


def winograd_weight_transform(weight):
    """weight (K, C, 3, 3) -> u (36, C, K): u[6a + b] = (G g G^T)[a, b] for every filter g."""
    u = _sandwich(WINOGRAD_G, weight.transpose(2, 3, 1, 0), WINOGRAD_G)           # (6, 6, C, K)
    return get_array_module(weight).ascontiguousarray(u.reshape((WINOGRAD_PLANES,) + u.shape[2:]))


def winograd_weight_transform_backward(gu):
    """gu (36, C, K) -> gweight (K, C, 3, 3): the adjoint of winograd_weight_transform."""
    size = WINOGRAD_TILE
    g = _sandwich(WINOGRAD_G.T, gu.reshape((size, size) + gu.shape[1:]), WINOGRAD_G.T)   # (3, 3, C, K)
    return get_array_module(gu).ascontiguousarray(g.transpose(3, 2, 0, 1))


def _store(result, out):
    out[...] = result
    return out


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
    return col2im(col, h, w, sy, sx, py, px, 1, 1)


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
    return col2im(col, h, w, sy, sx, py, px, 1, 1)


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


def _depthwise_windows(x, multiplier, kh, kw, sy, sx, py, px, dy, dx, oh, ow):
    """Windows of the input channel each output channel reads: (N, C*M, kh, kw, oh, ow)."""
    repeated = np.repeat(x, multiplier, axis=1)          # output channel o reads input o // M
    return _windows(repeated, kh, kw, sy, sx, py, px, dy, dx, oh, ow, fill=0)


def depthwise_conv2d_forward(x, weight, sy, sx, py, px, dy, dx, oh, ow):
    """x (N, C, H, W), weight (C*M, 1, kh, kw) -> y (N, C*M, oh, ow)."""
    kh, kw = weight.shape[2:]
    multiplier = weight.shape[0] // x.shape[1]
    col = _depthwise_windows(x, multiplier, kh, kw, sy, sx, py, px, dy, dx, oh, ow)
    return np.einsum("noijyx,oij->noyx", col, weight[:, 0])


def depthwise_conv2d_backward_input(gy, weight, h, w, sy, sx, py, px, dy, dx, in_channels=None):
    """gy (N, C*M, oh, ow) -> gx (N, C, h, w); in_channels=None means C = C*M (M = 1)."""
    n, out_channels = gy.shape[:2]
    c = out_channels if in_channels is None else in_channels
    col = gy[:, :, None, None] * weight[None, :, 0, :, :, None, None]  # (N, C*M, kh, kw, oh, ow)
    gx_repeated = _fold(col, h, w, sy, sx, py, px, dy, dx)            # (N, C*M, h, w)
    return gx_repeated.reshape(n, c, out_channels // c, h, w).sum(axis=2)


def depthwise_conv2d_backward_weight(x, gy, kh, kw, sy, sx, py, px, dy, dx):
    """x (N, C, H, W), gy (N, C*M, oh, ow) -> gweight (C*M, 1, kh, kw)."""
    oh, ow = gy.shape[2:]
    multiplier = gy.shape[1] // x.shape[1]
    col = _depthwise_windows(x, multiplier, kh, kw, sy, sx, py, px, dy, dx, oh, ow)
    return np.einsum("noijyx,noyx->oij", col, gy)[:, None]


def dropout_apply(x, mask, scale):
    """y = x * mask * scale, mask a bool array of x's shape (scale is usually 1 / (1 - p))."""
    return x * mask * x.dtype.type(scale)


def channel_shuffle(x, groups):
    """x (N, C, ...): channels seen as (groups, C/groups) are transposed to (C/groups, groups)."""
    return x.reshape(x.shape[0], groups, x.shape[1] // groups, -1).swapaxes(1, 2).reshape(x.shape)


def bias_relu(x, bias):
    """x (N, C, ...), bias (C,) -> max(x + bias[c], 0); NaN stays NaN."""
    return np.maximum(x + bias.reshape(-1, *[1] * (x.ndim - 2)), 0)
