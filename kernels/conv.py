"""Dispatch of the convolution primitives: im2col / col2im (every device), im2row / row2im and
swap_last_axes (the CPU's transposed layout), and the direct depthwise convolution.

    >>> import numpy as np
    >>> from tinycnn import kernels
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> with kernels.use("reference"):
    ...     col = kernels.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, 4, 4)
    >>> col.shape                      # (N, C, kh, kw, oh, ow)
    (1, 1, 3, 3, 4, 4)

Arguments, in this order: kernel (kh, kw), stride (sy, sx), padding (py, px), dilation
(dil_h, dil_w), output size (oh, ow) computed by the caller.
"""
import numpy as np

from .device import is_cupy_array
from .dispatch import (_check_array, _check_conv_out, _check_float, _check_out, _check_same_dtype, _ints, _run,
                       _window_args)


def _image_windows(name, x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow):
    """Checks of im2col and im2row: x is (N, C, H, W) and (oh, ow) windows fit it. Returns
    the window arguments and output size as Python ints."""
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    kh, kw, sy, sx, py, px, dil_h, dil_w = _window_args(name, kh, kw, sy, sx, py, px, dil_h, dil_w)
    oh, ow = _ints(name, 1, oh=oh, ow=ow)
    _check_conv_out(name, "h", x.shape[2], oh, kh, sy, py, dil_h)
    _check_conv_out(name, "w", x.shape[3], ow, kw, sx, px, dil_w)
    return kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow


def im2col(x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow, out=None):
    """x (N, C, H, W) -> col (N, C, kh, kw, oh, ow) with
    col[n, c, i, j, y, x] = x[n, c, y*sy - py + i*dil_h, x*sx - px + j*dil_w] (0 outside the input).
    ``out``: an optional C-contiguous array of that shape and x's dtype to write into."""
    name = "im2col"
    kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow = _image_windows(name, x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    _check_out(name, out, x, x.shape[:2] + (kh, kw, oh, ow))
    return _run(name, x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow, out=out)


def im2col_by_channel(x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow, out=None):
    """x (N, C, H, W) -> col (C, kh, kw, N, oh, ow), im2col with the batch inside each row:
    col[c, i, j, n, y, x] = x[n, c, y*sy - py + i*dil_h, x*sx - px + j*dil_w], so the columns of
    the whole batch are one (C*kh*kw, N*oh*ow) matrix (the GPU's weight gradient is one GEMM).
    On the host it is im2col's result transposed (the CPU convolutions never ask for it)."""
    name = "im2col_by_channel"
    kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow = _image_windows(name, x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    _check_out(name, out, x, (x.shape[1], kh, kw, x.shape[0], oh, ow))
    if is_cupy_array(x):
        return _run(name, x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow, out=out)
    col = _run("im2col", x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow).transpose(1, 2, 3, 0, 4, 5)
    if out is None:
        return np.ascontiguousarray(col)
    out[...] = col
    return out


def col2im_by_channel(col, h, w, sy, sx, py, px, dil_h, dil_w, out=None):
    """col (C, kh, kw, N, oh, ow) -> x (N, C, h, w), the adjoint of im2col_by_channel: each pixel
    sums the column entries copied from it. On the host it is col2im of the columns transposed."""
    name = "col2im_by_channel"
    _check_array(name, "col", col, 6, "(C, kh, kw, N, oh, ow)")
    h, w = _ints(name, 1, h=h, w=w)
    c, kh, kw, n, oh, ow = col.shape
    kh, kw, sy, sx, py, px, dil_h, dil_w = _window_args(name, kh, kw, sy, sx, py, px, dil_h, dil_w)
    _check_conv_out(name, "h", h, oh, kh, sy, py, dil_h)
    _check_conv_out(name, "w", w, ow, kw, sx, px, dil_w)
    _check_out(name, out, col, (n, c, h, w))
    if is_cupy_array(col):
        return _run(name, col, h, w, sy, sx, py, px, dil_h, dil_w, out=out)
    return _run("col2im", np.ascontiguousarray(col.transpose(3, 0, 1, 2, 4, 5)), h, w, sy, sx, py, px, dil_h, dil_w,
                out=out)


def channel_rows_and_sums(gy, with_sums):
    """gy (N, C, ...) -> (rows, sums): rows (C, N, ...) is gy with its first two axes swapped
    (C-contiguous: the layout of the GPU convolution's gradient GEMMs), sums (C,) gy summed over
    every axis but the channels (a convolution's bias gradient), or None without ``with_sums``."""
    name = "channel_rows_and_sums"
    _check_float(name, "gy", gy)
    if gy.ndim < 2:
        raise ValueError(f"{name}: gy must be (N, C, ...), got shape {gy.shape}")
    if is_cupy_array(gy):
        return _run(name, gy, bool(with_sums))
    rows = np.ascontiguousarray(gy.swapaxes(0, 1))
    return rows, rows.reshape(rows.shape[0], -1).sum(axis=1) if with_sums else None


def col2im(col, h, w, sy, sx, py, px, dil_h, dil_w, out=None):
    """col (N, C, kh, kw, oh, ow) -> x (N, C, h, w), the adjoint of im2col: each pixel sums
    the column entries that were copied from it. ``out``: an optional C-contiguous array of
    that shape and col's dtype to write into."""
    name = "col2im"
    _check_array(name, "col", col, 6, "(N, C, kh, kw, oh, ow)")
    h, w = _ints(name, 1, h=h, w=w)
    kh, kw, oh, ow = col.shape[2:]
    kh, kw, sy, sx, py, px, dil_h, dil_w = _window_args(name, kh, kw, sy, sx, py, px, dil_h, dil_w)
    _check_conv_out(name, "h", h, oh, kh, sy, py, dil_h)
    _check_conv_out(name, "w", w, ow, kw, sx, px, dil_w)
    _check_out(name, out, col, col.shape[:2] + (h, w))
    return _run(name, col, h, w, sy, sx, py, px, dil_h, dil_w, out=out)


def im2row(x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow, out=None):
    """x (N, C, H, W) -> rows (N, oh, ow, kh, kw, C): im2col's windows laid out one row per
    output pixel, rows[n, y, x, i, j, c] = col[n, c, i, j, y, x]. ``out``: an optional
    C-contiguous array of that shape and x's dtype to write into."""
    name = "im2row"
    kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow = _image_windows(name, x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    _check_out(name, out, x, (x.shape[0], oh, ow, kh, kw, x.shape[1]))
    return _run(name, x, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow, out=out)


def row2im(rows, h, w, sy, sx, py, px, dil_h, dil_w, out=None):
    """rows (N, oh, ow, kh, kw, C) -> x (N, C, h, w), the adjoint of im2row. ``out``: an
    optional C-contiguous array of that shape and rows' dtype to write into."""
    name = "row2im"
    _check_array(name, "rows", rows, 6, "(N, oh, ow, kh, kw, C)")
    h, w = _ints(name, 1, h=h, w=w)
    n, oh, ow, kh, kw, c = rows.shape
    kh, kw, sy, sx, py, px, dil_h, dil_w = _window_args(name, kh, kw, sy, sx, py, px, dil_h, dil_w)
    _check_conv_out(name, "h", h, oh, kh, sy, py, dil_h)
    _check_conv_out(name, "w", w, ow, kw, sx, px, dil_w)
    _check_out(name, out, rows, (n, c, h, w))
    return _run(name, rows, h, w, sy, sx, py, px, dil_h, dil_w, out=out)


def swap_last_axes(x, out=None):
    """(..., A, B) -> (..., B, A) as a C-contiguous array (a transpose that is copied, e.g.
    NCL <-> NLC). ``out``: an optional C-contiguous array of that shape and x's dtype."""
    name = "swap_last_axes"
    _check_float(name, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{name}: x must have at least 2 dimensions, got shape {x.shape}")
    _check_out(name, out, x, x.shape[:-2] + (x.shape[-1], x.shape[-2]))
    return _run(name, x, out=out)


def _check_depthwise_weight(name, weight, channels):
    """weight (C*M, 1, kh, kw) for C input channels; returns (kh, kw)."""
    _check_array(name, "weight", weight, 4, "(C*M, 1, kh, kw)")
    out_channels, one, kh, kw = weight.shape
    if one != 1 or out_channels == 0 or out_channels % channels != 0:
        raise ValueError(f"{name}: weight must have shape (C*M, 1, kh, kw) with C={channels} "
                         f"input channels, got {weight.shape}")
    return _ints(name, 1, kh=kh, kw=kw)


def depthwise_conv2d_forward(x, weight, sy, sx, py, px, dil_h, dil_w, oh, ow):
    """x (N, C, H, W), weight (C*M, 1, kh, kw) -> y (N, C*M, oh, ow); output channel o
    convolves input channel o // M with weight[o]."""
    name = "depthwise_conv2d_forward"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    kh, kw = _check_depthwise_weight(name, weight, x.shape[1])
    _check_same_dtype(name, x=x, weight=weight)
    kh, kw, sy, sx, py, px, dil_h, dil_w = _window_args(name, kh, kw, sy, sx, py, px, dil_h, dil_w)
    oh, ow = _ints(name, 1, oh=oh, ow=ow)
    _check_conv_out(name, "h", x.shape[2], oh, kh, sy, py, dil_h)
    _check_conv_out(name, "w", x.shape[3], ow, kw, sx, px, dil_w)
    return _run(name, x, weight, sy, sx, py, px, dil_h, dil_w, oh, ow)


def depthwise_conv2d_backward_input(gy, weight, h, w, sy, sx, py, px, dil_h, dil_w, in_channels=None):
    """gy (N, C*M, oh, ow) -> gx (N, C, h, w). The shapes of gy and weight do not tell C
    apart from M: pass in_channels=C (None means C = C*M, a multiplier of 1)."""
    name = "depthwise_conv2d_backward_input"
    _check_array(name, "gy", gy, 4, "(N, C*M, oh, ow)")
    if in_channels is None:
        in_channels = gy.shape[1]
    (in_channels,) = _ints(name, 1, in_channels=in_channels)
    kh, kw = _check_depthwise_weight(name, weight, in_channels)
    _check_same_dtype(name, gy=gy, weight=weight)
    if gy.shape[1] != weight.shape[0]:
        raise ValueError(f"{name}: gy has {gy.shape[1]} channels, weight has {weight.shape[0]} filters")
    h, w = _ints(name, 1, h=h, w=w)
    kh, kw, sy, sx, py, px, dil_h, dil_w = _window_args(name, kh, kw, sy, sx, py, px, dil_h, dil_w)
    _check_conv_out(name, "h", h, gy.shape[2], kh, sy, py, dil_h)
    _check_conv_out(name, "w", w, gy.shape[3], kw, sx, px, dil_w)
    return _run(name, gy, weight, h, w, sy, sx, py, px, dil_h, dil_w, in_channels=in_channels)


def depthwise_conv2d_backward_weight(x, gy, kh, kw, sy, sx, py, px, dil_h, dil_w):
    """x (N, C, H, W), gy (N, C*M, oh, ow) -> gweight (C*M, 1, kh, kw)."""
    name = "depthwise_conv2d_backward_weight"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    _check_array(name, "gy", gy, 4, "(N, C*M, oh, ow)")
    _check_same_dtype(name, x=x, gy=gy)
    n, channels = x.shape[:2]
    if channels == 0 or gy.shape[0] != n or gy.shape[1] == 0 or gy.shape[1] % channels != 0:
        raise ValueError(f"{name}: gy must have shape (N={n}, C*M, oh, ow) with C={channels} "
                         f"input channels, got {gy.shape}")
    kh, kw, sy, sx, py, px, dil_h, dil_w = _window_args(name, kh, kw, sy, sx, py, px, dil_h, dil_w)
    _check_conv_out(name, "h", x.shape[2], gy.shape[2], kh, sy, py, dil_h)
    _check_conv_out(name, "w", x.shape[3], gy.shape[3], kw, sx, px, dil_w)
    return _run(name, x, gy, kh, kw, sy, sx, py, px, dil_h, dil_w)
