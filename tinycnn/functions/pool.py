"""Max, average and global average pooling (NCHW).

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> x = tinycnn.Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    >>> F.max_pool2d(x, 2).numpy().ravel()
    array([ 5.,  7., 13., 15.])
    >>> F.adaptive_avg_pool2d(x, 2).numpy().ravel()
    array([ 2.5,  4.5, 10.5, 12.5])
"""
import numpy as np

from .. import kernels
from ..backend import get_array_module
from ..tensor import Function, Tensor
from .math import matmul
from .validate import out_size, pair, require_float, require_ndim


class MaxPool2d(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, kernel, stride, padding, out):
        self.kernel, self.stride, self.padding, self.out = kernel, stride, padding, out

    def forward(self, x):
        (kh, kw), (sy, sx), (py, px), (oh, ow) = self.kernel, self.stride, self.padding, self.out
        self.in_size = x.shape[2:]
        y, self.argmax = kernels.max_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow)
        return y

    def backward(self, gy):
        (kh, kw), (sy, sx), (py, px), (h, w) = self.kernel, self.stride, self.padding, self.in_size
        return kernels.max_pool2d_backward(gy, self.argmax, h, w, kh, kw, sy, sx, py, px)


class AvgPool2d(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, kernel, stride, padding, out, count_include_pad):
        self.kernel, self.stride, self.padding, self.out = kernel, stride, padding, out
        self.count_include_pad = count_include_pad

    def forward(self, x):
        (kh, kw), (sy, sx), (py, px), (oh, ow) = self.kernel, self.stride, self.padding, self.out
        self.in_size = x.shape[2:]
        return kernels.avg_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow, self.count_include_pad)

    def backward(self, gy):
        (kh, kw), (sy, sx), (py, px), (h, w) = self.kernel, self.stride, self.padding, self.in_size
        return kernels.avg_pool2d_backward(gy, h, w, kh, kw, sy, sx, py, px, self.count_include_pad)


def pool_window(op, kernel_size, stride, padding):
    """Checked (kernel, stride, padding) pairs of a pooling window; stride None means the kernel.
    Shared with nn.MaxPool2d and nn.AvgPool2d."""
    kernel = pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair(op, "stride", stride, 1)
    padding = pair(op, "padding", padding, 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
    return kernel, stride, padding


def _pool_arguments(op, x, kernel_size, stride, padding, ceil_mode):
    require_float(op, x)
    require_ndim(op, x, 4, "(N, C, H, W)")
    kernel, stride, padding = pool_window(op, kernel_size, stride, padding)
    if 0 in x.shape[1:]:        # PyTorch refuses these too; an empty batch (N = 0) is fine
        raise ValueError(f"{op}: expected an input with channels, height and width above 0, "
                         f"got shape {tuple(x.shape)}")
    out = tuple(out_size(op, n, k, s, p, 1, ceil_mode) for n, k, s, p in zip(x.shape[2:], kernel, stride, padding))
    return kernel, stride, padding, out


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Maximum over each window; on ties the gradient goes to the first maximum (as PyTorch)."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    return MaxPool2d(*_pool_arguments("max_pool2d", x, kernel_size, stride, padding, ceil_mode))(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over each window; ``count_include_pad`` counts padded zeros in the divisor (PyTorch's rule)."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    arguments = _pool_arguments("avg_pool2d", x, kernel_size, stride, padding, ceil_mode)
    return AvgPool2d(*arguments, bool(count_include_pad))(x)


def global_avg_pool2d(x, keepdims=False):
    """Mean over H and W: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with keepdims."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    require_float("global_avg_pool2d", x)
    require_ndim("global_avg_pool2d", x, 4, "(N, C, H, W)")
    return x.mean(axis=(2, 3), keepdims=keepdims)


def averaging_matrix(size, output_size):
    """(output_size, size) window weights: row i averages inputs floor(i*size/out) .. ceil((i+1)*size/out)-1."""
    matrix = np.zeros((output_size, size))
    for i in range(output_size):
        start, stop = (i * size) // output_size, -((-(i + 1) * size) // output_size)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


def adaptive_avg_pool2d(x, output_size):
    """(N, C, H, W) -> (N, C, *output_size) with PyTorch's adaptive windows: output cell i along an
    axis of length n -> m averages inputs floor(i*n/m) to ceil((i+1)*n/m) - 1 (windows overlap when
    m does not divide n and repeat inputs when m > n).

    Averaging is linear, so the op is two matrix products ``A_h @ x @ A_w.T`` with one row of window
    weights per output cell; its gradient is theirs, and ONNX export sees two MatMuls.
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    output_size = pair("adaptive_avg_pool2d", "output_size", output_size, 1)
    require_float("adaptive_avg_pool2d", x)
    if x.ndim != 4 or 0 in x.shape[2:]:
        raise ValueError(f"adaptive_avg_pool2d: expected a (N, C, H, W) input with H, W >= 1, "
                         f"got shape {tuple(x.shape)}")
    height, width = x.shape[2:]
    if (height, width) == output_size:   # every window is one pixel
        return x
    xp = get_array_module(x.data)
    rows = xp.asarray(averaging_matrix(height, output_size[0]), dtype=x.dtype)
    columns = xp.asarray(averaging_matrix(width, output_size[1]).T, dtype=x.dtype)
    return matmul(matmul(rows, x), columns)
