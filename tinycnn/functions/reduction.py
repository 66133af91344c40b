"""Reductions over axes: sum, mean and max.

The gradient of a reduction spreads ``gy`` back over the reduced axes: evenly for
``sum`` (and ``mean``, a sum times 1/count), to the maxima for ``max`` (shared
equally among ties).

    >>> import tinycnn, tinycnn.functions as F
    >>> x = tinycnn.Tensor([[1.0, 3.0], [3.0, 2.0]], requires_grad=True)
    >>> F.max(x).backward()
    >>> x.grad
    array([[0. , 0.5],
           [0.5, 0. ]], dtype=float32)
"""
import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .elementwise import mul


class Sum(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.broadcast_to(_restore_dims(gy, self.shape, self.axis, self.keepdims), self.shape).copy()


class Max(Function):
    """Maximum over axes; the gradient is shared equally among tied maxima."""

    saved_inputs, saves_outputs = (0,), True

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x = x
        self.y = x.max(axis=self.axis, keepdims=True)
        return self.y if self.keepdims else _drop_dims(self.y, self.axis)

    def backward(self, gy):
        mask = (self.x == self.y).astype(gy.dtype)
        mask /= mask.sum(axis=self.axis, keepdims=True)
        return mask * _restore_dims(gy, self.x.shape, self.axis, self.keepdims)


def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % ndim for a in axes)


def _restore_dims(gy, shape, axis, keepdims):
    """Re-insert reduced axes as size 1 so gy broadcasts against the input."""
    if keepdims:
        return gy
    return gy.reshape([1 if i in _normalize_axes(axis, len(shape)) else n for i, n in enumerate(shape)])


def _drop_dims(y, axis):
    axes = _normalize_axes(axis, y.ndim)
    return y.reshape([n for i, n in enumerate(y.shape) if i not in axes])


def sum(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    x = x if isinstance(x, Tensor) else Tensor(x)
    count = int(np.prod([x.shape[a] for a in _normalize_axes(axis, x.ndim)]))
    return mul(sum(x, axis, keepdims), 1.0 / (count or 1))


def max(x, axis=None, keepdims=False):
    return Max(axis, keepdims)(x)
