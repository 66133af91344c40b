"""Dispatch of max and average pooling."""
import numpy as np

from .device import is_cupy_array
from .dispatch import _check_array, _check_pool_out, _check_shape, _ints, _run, _window_args


def max_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow):
    """x (N, C, H, W) -> (y, argmax), both (N, C, oh, ow); argmax (int32) is iy*W + ix of the
    first maximum of each window in scan order. Padding is never selected; NaN propagates."""
    name = "max_pool2d_forward"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    kh, kw, sy, sx, py, px = _window_args(name, kh, kw, sy, sx, py, px)
    oh, ow = _ints(name, 1, oh=oh, ow=ow)
    _check_pool_out(name, "h", x.shape[2], oh, kh, sy, py)
    _check_pool_out(name, "w", x.shape[3], ow, kw, sx, px)
    return _run(name, x, kh, kw, sy, sx, py, px, oh, ow)


def max_pool2d_backward(gy, argmax, h, w, kh, kw, sy, sx, py, px):
    """gy, argmax (N, C, oh, ow) -> gx (N, C, h, w): each pixel sums gy over the windows whose
    argmax is that pixel."""
    name = "max_pool2d_backward"
    _check_array(name, "gy", gy, 4, "(N, C, oh, ow)")
    if not (isinstance(argmax, np.ndarray) or is_cupy_array(argmax)) or argmax.dtype != np.int32:
        got = getattr(argmax, "dtype", type(argmax).__name__)
        raise TypeError(f"{name}: argmax must be an int32 array, got {got}")
    _check_shape(name, "argmax", argmax, gy.shape)
    h, w = _ints(name, 1, h=h, w=w)
    kh, kw, sy, sx, py, px = _window_args(name, kh, kw, sy, sx, py, px)
    _check_pool_out(name, "h", h, gy.shape[2], kh, sy, py)
    _check_pool_out(name, "w", w, gy.shape[3], kw, sx, px)
    return _run(name, gy, argmax, h, w, kh, kw, sy, sx, py, px)


def avg_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow, count_include_pad):
    """x (N, C, H, W) -> y (N, C, oh, ow), the mean of each window. The divisor is PyTorch's:
    the window clipped to the padded input if count_include_pad, else to the input."""
    name = "avg_pool2d_forward"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    kh, kw, sy, sx, py, px = _window_args(name, kh, kw, sy, sx, py, px)
    oh, ow = _ints(name, 1, oh=oh, ow=ow)
    _check_pool_out(name, "h", x.shape[2], oh, kh, sy, py)
    _check_pool_out(name, "w", x.shape[3], ow, kw, sx, px)
    return _run(name, x, kh, kw, sy, sx, py, px, oh, ow, bool(count_include_pad))


def avg_pool2d_backward(gy, h, w, kh, kw, sy, sx, py, px, count_include_pad):
    """gy (N, C, oh, ow) -> gx (N, C, h, w): each pixel sums gy / divisor over its windows."""
    name = "avg_pool2d_backward"
    _check_array(name, "gy", gy, 4, "(N, C, oh, ow)")
    h, w = _ints(name, 1, h=h, w=w)
    kh, kw, sy, sx, py, px = _window_args(name, kh, kw, sy, sx, py, px)
    _check_pool_out(name, "h", h, gy.shape[2], kh, sy, py)
    _check_pool_out(name, "w", w, gy.shape[3], kw, sx, px)
    return _run(name, gy, h, w, kh, kw, sy, sx, py, px, bool(count_include_pad))
