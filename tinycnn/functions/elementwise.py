"""Elementwise arithmetic with broadcasting: add, sub, mul, div, neg, pow, exp, log, sqrt.

Broadcasting ops reduce their gradient back to each input's shape with
``sum_to``, so ``(x + b)`` with ``b`` of shape (C,) gives ``b.grad`` of shape (C,).

    >>> import tinycnn, tinycnn.functions as F
    >>> a = tinycnn.Tensor([[1.0, 2.0]], requires_grad=True)
    >>> F.add(a, 1.0).sum().backward()
    >>> a.grad
    array([[1., 1.]], dtype=float32)
"""
from ..backend import get_array_module
from ..tensor import Function, Tensor, as_array


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
