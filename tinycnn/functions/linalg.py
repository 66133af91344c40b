"""Linear algebra: matmul (NumPy's rules, batch dimensions broadcast) and linear layers' op.

Both are GEMMs, so inside ``tinycnn.amp.autocast`` their float32 GPU operands are cast to
float16 first (recorded casts: the float32 inputs still get float32 gradients).

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> F.matmul(tinycnn.Tensor(np.ones((5, 2, 3))), tinycnn.Tensor(np.ones((3, 4)))).shape
    (5, 2, 4)
"""
import numpy as np

from .. import amp
from ..backend import get_array_module
from ..tensor import Function
from .elementwise import _tensors, sum_to
from .validate import require_float


class MatMul(Function):
    """a @ b for 1-D to n-D operands (NumPy's matmul rules, batch dims broadcast)."""

    saved_inputs, saves_outputs = None, False

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        xp = get_array_module(gy)
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a          # promote vectors to matrices
        b2 = b[:, None] if b.ndim == 1 else b
        g = gy
        if b.ndim == 1:     # before a's axis, so vector @ vector (gy 0-D) becomes (1, 1)
            g = xp.expand_dims(g, -1)
        if a.ndim == 1:
            g = xp.expand_dims(g, -2)
        ga = g @ xp.swapaxes(b2, -1, -2)
        gb = xp.swapaxes(a2, -1, -2) @ g
        ga = sum_to(ga, a2.shape).reshape(a.shape)
        gb = sum_to(gb, b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Function):
    """y = x @ W.T + b with W of shape (out_features, in_features)."""

    saved_inputs, saves_outputs = (0, 1), False
    fresh_grads = True      # new products and sums

    def forward(self, x, weight, bias=None):
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        gx = gy @ self.weight
        rows = int(np.prod(gy.shape[:-1]))      # not -1: with 0 features the size says nothing
        gw = gy.reshape(rows, gy.shape[-1]).T @ self.x.reshape(rows, self.x.shape[-1])
        gb = gy.reshape(rows, gy.shape[-1]).sum(axis=0) if self.has_bias else None
        return gx, gw, gb


def matmul(a, b):
    """Matrix product with NumPy's rules (batch dimensions broadcast)."""
    a, b = _tensors(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
    return MatMul()(*amp.gemm_operands(a, b))


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias, weight of shape (out_features, in_features).

        >>> import numpy as np, tinycnn, tinycnn.functions as F
        >>> F.linear(tinycnn.Tensor(np.ones((2, 3))), tinycnn.Tensor(np.ones((4, 3)))).shape
        (2, 4)
    """
    require_float("linear", x)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1] if x.ndim else 0} features, weight expects "
                         f"{weight.shape[1]} (weight shape {weight.shape})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    x, weight, bias = amp.gemm_operands(x, weight, bias)    # float16 under amp.autocast on the GPU
    if bias is None:
        return Linear()(x, weight)
    return Linear()(x, weight, bias)
