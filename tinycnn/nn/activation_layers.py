"""ReLU6 and ZeroPad2d, the MobileNets' layers, as PyTorch's ``nn.ReLU6`` and ``nn.ZeroPad2d``.

    >>> import numpy as np, tinycnn, tinycnn.nn as nn
    >>> x = tinycnn.Tensor(np.full((1, 1, 2, 2), 9.0))
    >>> float(nn.ReLU6()(x).numpy().max())
    6.0
    >>> nn.ZeroPad2d((0, 1, 0, 1))(x).shape      # left, right, top, bottom
    (1, 1, 3, 3)
"""
from .. import functions as F
from ..functions.validate import integer, is_int
from .module import Module


class ReLU6(Module):
    """min(max(x, 0), 6) (F.relu6)."""

    def forward(self, x):
        return F.relu6(x)


class ZeroPad2d(Module):
    """Pads the last two axes (H, W) with zeros.

    ``padding``: an int for every side, or (left, right, top, bottom) as PyTorch orders it;
    Keras' ``ZeroPadding2D(((top, bottom), (left, right)))`` is ``ZeroPad2d((left, right, top, bottom))``.
    """

    def __init__(self, padding):
        super().__init__()
        sides = (padding,) * 4 if is_int(padding) else padding
        if not isinstance(sides, (tuple, list)) or len(sides) != 4:
            raise TypeError(f"ZeroPad2d: expected padding to be a non-negative int or four of them "
                            f"(left, right, top, bottom), got {padding!r}")
        self.padding = tuple(integer("ZeroPad2d", "padding", side, 0) for side in sides)

    def forward(self, x):
        if x.ndim not in (3, 4):
            raise ValueError(f"ZeroPad2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                             f"got shape {tuple(x.shape)}")
        left, right, top, bottom = self.padding
        return F.pad(x, ((0, 0),) * (x.ndim - 2) + ((top, bottom), (left, right)))

    def extra_repr(self):
        return f"padding={self.padding}"
