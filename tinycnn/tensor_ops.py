"""Tensor's operators and math methods: each one is a call into ``tinycnn.functions.math``.

``x + y``, ``x @ w``, ``x[1:]``, ``x.sum()``, ``x.reshape(2, -1)``, ``x.to("cuda")``: every
op that builds a graph node is a Function in functions/math.py, and the methods here only
forward to it, so ``Tensor`` (tensor.py) can stay about data, gradients and versions.
``functions.math`` is imported at the first call, because it imports ``Tensor`` itself.

    >>> import tinycnn
    >>> x = tinycnn.Tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> (2 * x - 1).T.sum(axis=1)
    tensor([ 6., 10.], dtype=float32)
"""
import numpy as np

from .backend import normalize_device


def _math():
    from .functions import math
    return math


class TensorOps:
    """The operator overloads and methods that ``Tensor`` inherits (a mixin: no state of its own)."""

    # ----- operators -----------------------------------------------------------
    def __neg__(self):
        return _math().neg(self)

    def __add__(self, other):
        return _math().add(self, other)

    def __radd__(self, other):
        return _math().add(other, self)

    def __sub__(self, other):
        return _math().sub(self, other)

    def __rsub__(self, other):
        return _math().sub(other, self)

    def __mul__(self, other):
        return _math().mul(self, other)

    def __rmul__(self, other):
        return _math().mul(other, self)

    def __truediv__(self, other):
        return _math().div(self, other)

    def __rtruediv__(self, other):
        return _math().div(other, self)

    def __matmul__(self, other):
        return _math().matmul(self, other)

    def __rmatmul__(self, other):
        return _math().matmul(other, self)

    def __pow__(self, exponent):
        return _math().pow(self, exponent)

    def __getitem__(self, index):
        return _math().getitem(self, index)

    # ----- methods --------------------------------------------------------------
    @property
    def T(self):
        return self.transpose()

    def sum(self, axis=None, keepdims=False):
        return _math().sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _math().mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _math().max(self, axis, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _math().reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _math().transpose(self, axes or None)

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge dimensions start_dim..end_dim into one (as torch.flatten)."""
        ndim = self.ndim
        start, end = start_dim % max(ndim, 1), end_dim % max(ndim, 1)
        if ndim == 0:
            return self.reshape((1,))
        middle = int(np.prod(self.shape[start:end + 1]))
        return self.reshape(self.shape[:start] + (middle,) + self.shape[end + 1:])

    def exp(self):
        return _math().exp(self)

    def log(self):
        return _math().log(self)

    def sqrt(self):
        return _math().sqrt(self)

    # ----- device and dtype ---------------------------------------------------
    def to(self, target):
        """Move to a device ("cpu", "cuda") or cast to a dtype; differentiable either way."""
        if isinstance(target, str) and (target in ("cpu", "gpu") or target.startswith("cuda")):
            return _math().to_device(self, normalize_device(target))
        return _math().cast(self, np.dtype(target))

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return _math().cast(self, np.float32)

    def double(self):
        return _math().cast(self, np.float64)
