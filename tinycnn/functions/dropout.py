"""Inverted dropout.

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> F.dropout(tinycnn.Tensor(np.ones(4)), p=0.5, training=False)
    tensor([1., 1., 1., 1.])
"""
from .. import kernels
from ..backend import get_array_module
from ..random import get_rng
from ..tensor import Function
from .validate import real, require_float


class Dropout(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        xp = get_array_module(x)
        self.keep = get_rng(xp).random(x.shape) >= self.p      # bool mask, True with probability 1 - p
        return kernels.dropout_apply(x, self.keep, 1.0 / (1.0 - self.p))

    def backward(self, gy):
        return kernels.dropout_apply(gy, self.keep, 1.0 / (1.0 - self.p))


def dropout(x, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p); identity in eval."""
    require_float("dropout", x)
    p = real("dropout", "p", p, 0, 1)
    if p == 1.0:
        return x * 0.0 if training else x
    if not training or p == 0.0:
        return x
    return Dropout(p)(x)
