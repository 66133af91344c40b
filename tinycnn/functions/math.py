"""Elementwise arithmetic, matmul, reductions and shape ops.

Broadcasting ops reduce their gradient back to each input's shape with
``sum_to``, so ``(x + b)`` with ``b`` of shape (C,) gives ``b.grad`` of shape (C,).

    >>> import tinycnn, tinycnn.functions as F
    >>> a = tinycnn.Tensor([[1.0, 2.0]], requires_grad=True)
    >>> F.add(a, 1.0).sum().backward()
    >>> a.grad
    array([[1., 1.]], dtype=float32)
"""
import numpy as np

from .. import amp
from ..backend import get_array_module, to_device as _move
from ..tensor import Function, Tensor, as_array
from .validate import require_float


def sum_to(array, shape):
    """Sum ``array`` over the axes broadcasting added, so it has ``shape``."""
    if array.shape == shape:
        return array
    lead = array.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and array.shape[i + lead] != 1)
    out = array.sum(axis=axes, keepdims=True)
    return out.reshape(shape) if lead else out


def _tensors(a, b):
    """Wrap operands so Python scalars take the dtype of the tensor operand."""
    like = a.data if isinstance(a, Tensor) else (b.data if isinstance(b, Tensor) else None)
    return (a if isinstance(a, Tensor) else Tensor(as_array(a, like=like)),
            b if isinstance(b, Tensor) else Tensor(as_array(b, like=like)))


class Add(Function):
    saved_inputs, saves_outputs = (), False

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])


class Sub(Function):
    saved_inputs, saves_outputs = (), False

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])


class Mul(Function):
    saved_inputs, saves_outputs = None, False

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return sum_to(gy * self.b, self.a.shape), sum_to(gy * self.a, self.b.shape)


class Div(Function):
    saved_inputs, saves_outputs = None, False

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = gy / self.b
        return sum_to(ga, self.a.shape), sum_to(-ga * self.a / self.b, self.b.shape)


class Neg(Function):
    saved_inputs, saves_outputs = (), False

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """x ** c for a constant exponent c."""

    saved_inputs, saves_outputs = (0,), False

    def __init__(self, exponent):
        self.c = exponent

    def forward(self, x):
        self.x = x
        return x ** self.c

    def backward(self, gy):
        return gy * self.c * self.x ** (self.c - 1)


class Exp(Function):
    saved_inputs, saves_outputs = (), True

    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    saved_inputs, saves_outputs = (0,), False

    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    saved_inputs, saves_outputs = (), True

    def forward(self, x):
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


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


class Reshape(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        self.ndim = x.ndim
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        return gy.transpose(np.argsort([a % self.ndim for a in self.axes]))


class GetItem(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.shape, dtype=self.dtype)
        if _is_basic_index(self.index):
            gx[self.index] = gy             # slices never select an element twice
        elif xp is np:
            np.add.at(gx, self.index, gy)   # repeated fancy indices accumulate
        else:
            import cupyx
            cupyx.scatter_add(gx, self.index, gy)
        return gx


def _is_basic_index(index):
    """True for ints, slices, None and Ellipsis (NumPy basic indexing: no repeated elements)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)


class Cast(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.in_dtype)


class ToDevice(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.source = "cuda" if get_array_module(x) is not np else "cpu"
        return _move(x, self.device)

    def backward(self, gy):
        return _move(gy, self.source)


class Linear(Function):
    """y = x @ W.T + b with W of shape (out_features, in_features)."""

    saved_inputs, saves_outputs = (0, 1), False

    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        gx = gy @ self.weight
        rows = int(np.prod(gy.shape[:-1]))      # not -1: with 0 features the size says nothing
        gw = gy.reshape(rows, gy.shape[-1]).T @ self.x.reshape(rows, self.x.shape[-1])
        gb = gy.reshape(rows, gy.shape[-1]).sum(axis=0)
        return gx, gw, gb


# ----- public functions ---------------------------------------------------------

def add(a, b):
    """a + b with broadcasting."""
    return Add()(*_tensors(a, b))


def sub(a, b):
    """a - b with broadcasting."""
    return Sub()(*_tensors(a, b))


def mul(a, b):
    """a * b with broadcasting (e.g. squeeze-and-excitation gating (N,C,H,W) * (N,C,1,1))."""
    return Mul()(*_tensors(a, b))


def div(a, b):
    """a / b with broadcasting."""
    return Div()(*_tensors(a, b))


def neg(x):
    return Neg()(x)


def pow(x, exponent):
    """x ** exponent for a constant (Python number) exponent."""
    if isinstance(exponent, Tensor):
        raise TypeError("pow: the exponent must be a Python number, got a Tensor")
    return Pow(exponent)(x)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def matmul(a, b):
    """Matrix product with NumPy's rules (batch dimensions broadcast)."""
    a, b = _tensors(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
    return MatMul()(*amp.gemm_operands(a, b))


def sum(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    x = x if isinstance(x, Tensor) else Tensor(x)
    count = int(np.prod([x.shape[a] for a in _normalize_axes(axis, x.ndim)]))
    return mul(sum(x, axis, keepdims), 1.0 / (count or 1))


def max(x, axis=None, keepdims=False):
    return Max(axis, keepdims)(x)


def reshape(x, shape):
    shape = tuple(shape)
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.shape == shape:
        return x
    return Reshape(shape)(x)


def transpose(x, axes=None):
    return Transpose(None if axes is None else tuple(axes))(x)


def getitem(x, index):
    if isinstance(index, Tensor):
        index = index.data
    return GetItem(index)(x)


def cast(x, dtype):
    dtype = np.dtype(dtype)
    x = x if isinstance(x, Tensor) else Tensor(x)
    return x if x.dtype == dtype else Cast(dtype)(x)


def to_device(x, device):
    x = x if isinstance(x, Tensor) else Tensor(x)
    return x if x.device == device else ToDevice(device)(x)


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
