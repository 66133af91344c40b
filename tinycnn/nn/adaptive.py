"""``AdaptiveAvgPool2d``: average pooling to a fixed output size, whatever the input size.

    >>> import numpy as np, tinycnn
    >>> x = tinycnn.Tensor(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    >>> AdaptiveAvgPool2d(2)(x).numpy()[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    >>> AdaptiveAvgPool2d((3, 3))(tinycnn.Tensor(np.ones((1, 2, 1, 1), dtype=np.float32))).shape
    (1, 2, 3, 3)
"""
from .. import functions as F
from ..functions.validate import pair
from .module import Module


class AdaptiveAvgPool2d(Module):
    """(N, C, H, W) -> (N, C, *output_size) with PyTorch's windows (see F.adaptive_avg_pool2d)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = pair("AdaptiveAvgPool2d", "output_size", output_size, 1)

    def forward(self, x):
        if x.ndim != 4 or 0 in x.shape[2:]:
            raise ValueError(f"AdaptiveAvgPool2d: expected a (N, C, H, W) input with H, W >= 1, "
                             f"got shape {tuple(x.shape)}")
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
