"""Dispatch of the convolution primitives: im2col / col2im (every device), im2row / row2im and
swap_last_axes (the CPU's transposed layout), and the direct depthwise convolution.

Each takes its geometry as one ``kernels.Window`` (kernel, stride, padding, dilation as (h, w)
pairs); the output size follows from the window and the image, and the gradients that map back
onto an image take that image's ``size`` (h, w):

    >>> import numpy as np
    >>> from tinycnn import kernels
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> window = kernels.Window.of(3, padding=1)
    >>> with kernels.use("reference"):
    ...     col = kernels.im2col(x, window)
    ...     back = kernels.col2im(col, window, (4, 4))
    >>> col.shape, back.shape          # col is (N, C, kh, kw, oh, ow)
    ((1, 1, 3, 3, 4, 4), (1, 1, 4, 4))
"""
import numpy as np

from .device import is_cupy_array
from .dispatch import _check_array, _check_float, _check_out, _check_same_dtype, _ints, _run
from .geometry import Window


def _check_window(name, window):
    """The window with Python ints; TypeError unless it is a kernels.Window."""
    if not isinstance(window, Window):
        raise TypeError(f"{name}: expected a kernels.Window as the window, got {type(window).__name__} "
                        f"(build one with kernels.Window.of(kernel, stride=1, padding=0, dilation=1))")
    return window.checked(name)


def _output_size(name, window, h, w):
    """(oh, ow) of the window on an h x w image; ValueError when no window fits."""
    oh, ow = window.output_size(h, w)
    if oh < 1 or ow < 1:
        (kh, kw), _, (py, px), (dil_h, dil_w) = window
        span = f"{dil_h * (kh - 1) + 1}x{dil_w * (kw - 1) + 1}"
        raise ValueError(f"{name}: no window fits an image of {h}x{w}: the dilated kernel spans {span}, "
                         f"the padded image is {h + 2 * py}x{w + 2 * px} ({window})")
    return oh, ow


def _check_kernel(name, window, array_name, kernel):
    if window.kernel != tuple(kernel):
        raise ValueError(f"{name}: the window's kernel {window.kernel} does not match the kernel axes "
                         f"{tuple(kernel)} of {array_name}")


def _check_output(name, window, size, array_name, output):
    """The window slides over an image of `size` to `array_name`'s output (oh, ow)."""
    expected = _output_size(name, window, *size)
    if expected != tuple(output):
        raise ValueError(f"{name}: {window} on an image of {size[0]}x{size[1]} gives an output of "
                         f"{expected[0]}x{expected[1]}, but {array_name} has {output[0]}x{output[1]}")


def _image_size(name, size):
    """`size` as (h, w) Python ints."""
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise TypeError(f"{name}: size must be the image's (h, w), got {size!r}")
    return tuple(_ints(name, 1, h=size[0], w=size[1]))


def _image_window(name, x, window):
    """Checks of im2col, im2row and im2col_by_channel: x is (N, C, H, W) and the window fits it.
    Returns the checked window and (oh, ow)."""
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    window = _check_window(name, window)
    return window, _output_size(name, window, *x.shape[2:])


def _columns_window(name, window, size, array_name, kernel, output):
    """Checks of col2im, row2im and col2im_by_channel: the window's kernel is the array's kernel
    axes, and on an image of `size` it gives the array's (oh, ow). Returns the window and size."""
    window, size = _check_window(name, window), _image_size(name, size)
    _check_kernel(name, window, array_name, kernel)
    _check_output(name, window, size, array_name, output)
    return window, size


def im2col(x, window, out=None):
    """x (N, C, H, W) -> col (N, C, kh, kw, oh, ow) with
    col[n, c, i, j, y, x] = x[n, c, y*sy - py + i*dil_h, x*sx - px + j*dil_w] (0 outside the input),
    where (kh, kw), (sy, sx), (py, px), (dil_h, dil_w) = window. ``out``: an optional C-contiguous
    array of that shape and x's dtype to write into."""
    name = "im2col"
    window, (oh, ow) = _image_window(name, x, window)
    _check_out(name, out, x, x.shape[:2] + window.kernel + (oh, ow))
    return _run(name, x, window, out=out)


def im2col_by_channel(x, window, out=None):
    """x (N, C, H, W) -> col (C, kh, kw, N, oh, ow), im2col with the batch inside each row:
    col[c, i, j, n, y, x] = x[n, c, y*sy - py + i*dil_h, x*sx - px + j*dil_w], so the columns of
    the whole batch are one (C*kh*kw, N*oh*ow) matrix (the GPU's weight gradient is one GEMM).
    On the host it is im2col's result transposed (the CPU convolutions never ask for it)."""
    name = "im2col_by_channel"
    window, (oh, ow) = _image_window(name, x, window)
    _check_out(name, out, x, (x.shape[1], *window.kernel, x.shape[0], oh, ow))
    if is_cupy_array(x):
        return _run(name, x, window, out=out)
    col = _run("im2col", x, window).transpose(1, 2, 3, 0, 4, 5)
    if out is None:
        return np.ascontiguousarray(col)
    out[...] = col
    return out


def col2im_by_channel(col, window, size, out=None):
    """col (C, kh, kw, N, oh, ow) -> x (N, C, h, w) with size = (h, w), the adjoint of
    im2col_by_channel: each pixel sums the column entries copied from it. On the host it is
    col2im of the columns transposed."""
    name = "col2im_by_channel"
    _check_array(name, "col", col, 6, "(C, kh, kw, N, oh, ow)")
    c, kh, kw, n, oh, ow = col.shape
    window, size = _columns_window(name, window, size, "col", (kh, kw), (oh, ow))
    _check_out(name, out, col, (n, c) + size)
    if is_cupy_array(col):
        return _run(name, col, window, size, out=out)
    return _run("col2im", np.ascontiguousarray(col.transpose(3, 0, 1, 2, 4, 5)), window, size, out=out)


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


def col2im(col, window, size, out=None):
    """col (N, C, kh, kw, oh, ow) -> x (N, C, h, w) with size = (h, w), the adjoint of im2col:
    each pixel sums the column entries that were copied from it. ``out``: an optional
    C-contiguous array of that shape and col's dtype to write into."""
    name = "col2im"
    _check_array(name, "col", col, 6, "(N, C, kh, kw, oh, ow)")
    window, size = _columns_window(name, window, size, "col", col.shape[2:4], col.shape[4:])
    _check_out(name, out, col, col.shape[:2] + size)
    return _run(name, col, window, size, out=out)


def im2row(x, window, out=None):
    """x (N, C, H, W) -> rows (N, oh, ow, kh, kw, C): im2col's windows laid out one row per
    output pixel, rows[n, y, x, i, j, c] = col[n, c, i, j, y, x]. ``out``: an optional
    C-contiguous array of that shape and x's dtype to write into."""
    name = "im2row"
    window, (oh, ow) = _image_window(name, x, window)
    _check_out(name, out, x, (x.shape[0], oh, ow, *window.kernel, x.shape[1]))
    return _run(name, x, window, out=out)


def row2im(rows, window, size, out=None):
    """rows (N, oh, ow, kh, kw, C) -> x (N, C, h, w) with size = (h, w), the adjoint of im2row.
    ``out``: an optional C-contiguous array of that shape and rows' dtype to write into."""
    name = "row2im"
    _check_array(name, "rows", rows, 6, "(N, oh, ow, kh, kw, C)")
    n, oh, ow, kh, kw, c = rows.shape
    window, size = _columns_window(name, window, size, "rows", (kh, kw), (oh, ow))
    _check_out(name, out, rows, (n, c) + size)
    return _run(name, rows, window, size, out=out)


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
    """weight (C*M, 1, kh, kw) for C input channels."""
    _check_array(name, "weight", weight, 4, "(C*M, 1, kh, kw)")
    out_channels, one = weight.shape[:2]
    if one != 1 or out_channels == 0 or out_channels % channels != 0:
        raise ValueError(f"{name}: weight must have shape (C*M, 1, kh, kw) with C={channels} "
                         f"input channels, got {weight.shape}")


def depthwise_conv2d_forward(x, weight, window):
    """x (N, C, H, W), weight (C*M, 1, kh, kw) -> y (N, C*M, oh, ow); output channel o
    convolves input channel o // M with weight[o]. window.kernel is (kh, kw)."""
    name = "depthwise_conv2d_forward"
    window, _ = _image_window(name, x, window)
    _check_depthwise_weight(name, weight, x.shape[1])
    _check_same_dtype(name, x=x, weight=weight)
    _check_kernel(name, window, "weight", weight.shape[2:])
    return _run(name, x, weight, window)


def depthwise_conv2d_backward_input(gy, weight, window, size, in_channels=None):
    """gy (N, C*M, oh, ow) -> gx (N, C, h, w) with size = (h, w). The shapes of gy and weight do
    not tell C apart from M: pass in_channels=C (None means C = C*M, a multiplier of 1)."""
    name = "depthwise_conv2d_backward_input"
    _check_array(name, "gy", gy, 4, "(N, C*M, oh, ow)")
    if in_channels is None:
        in_channels = gy.shape[1]
    (in_channels,) = _ints(name, 1, in_channels=in_channels)
    _check_depthwise_weight(name, weight, in_channels)
    _check_same_dtype(name, gy=gy, weight=weight)
    if gy.shape[1] != weight.shape[0]:
        raise ValueError(f"{name}: gy has {gy.shape[1]} channels, weight has {weight.shape[0]} filters")
    window, size = _check_window(name, window), _image_size(name, size)
    _check_kernel(name, window, "weight", weight.shape[2:])
    _check_output(name, window, size, "gy", gy.shape[2:])
    return _run(name, gy, weight, window, size, in_channels=in_channels)


def depthwise_conv2d_backward_weight(x, gy, window):
    """x (N, C, H, W), gy (N, C*M, oh, ow) -> gweight (C*M, 1, kh, kw), (kh, kw) = window.kernel."""
    name = "depthwise_conv2d_backward_weight"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    _check_array(name, "gy", gy, 4, "(N, C*M, oh, ow)")
    _check_same_dtype(name, x=x, gy=gy)
    n, channels = x.shape[:2]
    if channels == 0 or gy.shape[0] != n or gy.shape[1] == 0 or gy.shape[1] % channels != 0:
        raise ValueError(f"{name}: gy must have shape (N={n}, C*M, oh, ow) with C={channels} "
                         f"input channels, got {gy.shape}")
    window = _check_window(name, window)
    _check_output(name, window, x.shape[2:], "gy", gy.shape[2:])
    return _run(name, x, gy, window)
