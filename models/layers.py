"""Two layers the zoo's torchvision variants need: adaptive average pooling and Inception's input transform.

``AdaptiveAvgPool2d(output_size)`` pools any H x W to ``output_size`` with PyTorch's windows:
output cell i along an axis of length n -> m averages input rows floor(i*n/m) to
ceil((i+1)*n/m) - 1. The windows overlap when m does not divide n, and repeat inputs when
m > n (a 1x1 map pooled to 7x7 is that value 49 times). Averaging is linear, so the layer is
two matrix products, ``A_h @ x @ A_w.T``, with one row of window weights per output cell:

    >>> import numpy as np, tinycnn
    >>> x = tinycnn.Tensor(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    >>> AdaptiveAvgPool2d(2)(x).numpy()[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    >>> AdaptiveAvgPool2d((3, 3))(tinycnn.Tensor(np.ones((1, 2, 1, 1), dtype=np.float32))).shape
    (1, 2, 3, 3)
"""
import numpy as np

import tinycnn.functions as F
import tinycnn.nn as nn
from tinycnn.backend import get_array_module
from tinycnn.functions.validate import pair


def averaging_matrix(size, output_size):
    """(output_size, size) window weights: row i averages inputs floor(i*size/out) .. ceil((i+1)*size/out)-1."""
    matrix = np.zeros((output_size, size))
    for i in range(output_size):
        start, stop = (i * size) // output_size, -((-(i + 1) * size) // output_size)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


class AdaptiveAvgPool2d(nn.Module):
    """(N, C, H, W) -> (N, C, *output_size), averaging PyTorch's adaptive windows (see the module docstring)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = pair("AdaptiveAvgPool2d", "output_size", output_size, 1)

    def forward(self, x):
        if x.ndim != 4 or 0 in x.shape[2:]:
            raise ValueError(f"AdaptiveAvgPool2d: expected a (N, C, H, W) input with H, W >= 1, "
                             f"got shape {tuple(x.shape)}")
        height, width = x.shape[2:]
        if (height, width) == self.output_size:   # every window is one pixel
            return x
        xp = get_array_module(x.data)
        rows = xp.asarray(averaging_matrix(height, self.output_size[0]), dtype=x.dtype)
        columns = xp.asarray(averaging_matrix(width, self.output_size[1]).T, dtype=x.dtype)
        return F.matmul(F.matmul(rows, x), columns)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class TransformInput(nn.Module):
    """torchvision's ``transform_input`` of GoogLeNet and Inception v3: an image normalised with the
    ImageNet mean and std becomes one normalised as (x - 0.5) / 0.5, the normalisation those
    networks' released weights were trained with: x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5.
    """

    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"TransformInput: expected (N, 3, H, W) images, got shape {tuple(x.shape)}")
        xp = get_array_module(x.data)
        scale = xp.asarray((self.std / 0.5).reshape(1, 3, 1, 1), dtype=x.dtype)
        shift = xp.asarray(((self.mean - 0.5) / 0.5).reshape(1, 3, 1, 1), dtype=x.dtype)
        return x * scale + shift
