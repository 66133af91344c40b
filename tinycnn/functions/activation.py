"""Activations and softmax.

    >>> import tinycnn, tinycnn.functions as F
    >>> F.relu(tinycnn.Tensor([-1.0, 2.0]))
    tensor([0., 2.], dtype=float32)
"""
from .. import kernels
from ..backend import get_array_module
from ..tensor import Function
from .validate import require_float


class ReLU(Function):
    saved_inputs, saves_outputs = (), True      # backward reads the output: y > 0 is the mask, as in PyTorch

    def forward(self, x):
        self.y = kernels.relu_forward(x)
        return self.y

    def backward(self, gy):
        return kernels.relu_backward(gy, self.y)


class ReLU6(Function):
    """min(max(x, 0), 6), MobileNet's activation; the gradient passes where 0 < x < 6."""

    saved_inputs, saves_outputs = (), False         # backward reads only the mask made in forward

    def forward(self, x):
        self.mask = (x > 0) & (x < 6)
        return get_array_module(x).clip(x, 0, 6)

    def backward(self, gy):
        return gy * self.mask


class LeakyReLU(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        xp = get_array_module(x)
        self.mask = x > 0
        return xp.where(self.mask, x, x * x.dtype.type(self.slope))

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.where(self.mask, gy, gy * gy.dtype.type(self.slope))


class ELU(Function):
    saved_inputs, saves_outputs = (0,), True

    def __init__(self, alpha):
        self.alpha = alpha

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        alpha = x.dtype.type(self.alpha)
        self.y = xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0)))
        return self.y

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.where(self.x > 0, gy, gy * (self.y + gy.dtype.type(self.alpha)))


class Sigmoid(Function):
    saved_inputs, saves_outputs = (), True

    def forward(self, x):
        xp = get_array_module(x)
        self.y = (xp.tanh(x * x.dtype.type(0.5)) + 1) * x.dtype.type(0.5)   # stable for large |x|
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class Tanh(Function):
    saved_inputs, saves_outputs = (), True

    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


class Softmax(Function):
    saved_inputs, saves_outputs = (), True

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, gy):
        gx = self.y * gy
        return gx - self.y * gx.sum(axis=self.axis, keepdims=True)


class LogSoftmax(Function):
    saved_inputs, saves_outputs = (), True

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.y = log_softmax_array(x, self.axis)
        return self.y

    def backward(self, gy):
        xp = get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


def log_softmax_array(x, axis):
    """log(softmax(x)) computed with the max subtracted first (stable for |x| ~ 1e4)."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def relu(x):
    """max(x, 0)."""
    require_float("relu", x)
    return ReLU()(x)


def relu6(x):
    """min(max(x, 0), 6), as PyTorch's ``F.relu6`` (MobileNets).

        >>> import tinycnn, tinycnn.functions as F
        >>> F.relu6(tinycnn.Tensor([-1.0, 3.0, 8.0]))
        tensor([0., 3., 6.], dtype=float32)
    """
    require_float("relu6", x)
    return ReLU6()(x)


def leaky_relu(x, negative_slope=0.01):
    """x for x > 0, negative_slope * x otherwise."""
    require_float("leaky_relu", x)
    return LeakyReLU(negative_slope)(x)


def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    require_float("elu", x)
    return ELU(alpha)(x)


def sigmoid(x):
    """1 / (1 + exp(-x))."""
    require_float("sigmoid", x)
    return Sigmoid()(x)


def tanh(x):
    require_float("tanh", x)
    return Tanh()(x)


def softmax(x, axis=1):
    """exp(x) / sum(exp(x)) along ``axis`` (default 1, the class axis of (N, K))."""
    require_float("softmax", x)
    return Softmax(axis)(x)


def log_softmax(x, axis=1):
    """log(softmax(x)), numerically stable."""
    require_float("log_softmax", x)
    return LogSoftmax(axis)(x)
