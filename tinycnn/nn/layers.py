"""Layers: Modules that hold parameters (or modes) and call tinycnn.functions.

Weights are initialised as PyTorch does by default (kaiming_uniform with
a=sqrt(5), i.e. U(+-1/sqrt(fan_in)), bias U(+-1/sqrt(fan_in))); pass a function
from tinycnn.nn.init afterwards to change it. Arguments are checked when the layer is built,
with PyTorch's rules: Python or NumPy integers for sizes (not bools), zero features allowed
where PyTorch allows them (``Linear(0, 4)`` outputs its bias, which is then zero).

    >>> import numpy as np, tinycnn
    >>> conv = Conv2d(3, 8, 3, padding=1)
    >>> conv(tinycnn.Tensor(np.zeros((1, 3, 5, 5), dtype=np.float32))).shape
    (1, 8, 5, 5)
"""
import numpy as np

from .. import functions as F
from ..functions.conv import conv_arguments
from ..functions.norm import batch_norm_arguments, lrn_arguments
from ..functions.pool import pool_window
from ..functions.validate import integer, pair, real
from . import init
from .module import Module, Parameter


def _empty(*shape):
    return np.empty(shape, dtype=np.float32)


def _default_init(weight, bias):
    """init.default_init_, or for an empty weight PyTorch's result: nothing to draw, and a bias
    bound 1/sqrt(fan_in) taken as 0 when fan_in is 0."""
    if weight.data.size:
        init.default_init_(weight, bias)
    elif bias is not None:
        init.zeros_(bias)


class Conv2d(Module):
    """2-D convolution; weight (out_channels, in_channels/groups, kh, kw), PyTorch default init."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__()
        op = "Conv2d"
        in_channels = integer(op, "in_channels", in_channels, 0)
        out_channels = integer(op, "out_channels", out_channels, 1)
        kh, kw = pair(op, "kernel_size", kernel_size, 1)
        groups = conv_arguments(op, stride, padding, dilation, groups)[3]
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups ({groups}) must divide in_channels ({in_channels}) "
                             f"and out_channels ({out_channels})")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.weight = Parameter(_empty(out_channels, in_channels // groups, kh, kw))
        self.bias = Parameter(_empty(out_channels)) if bias else None
        _default_init(self.weight, self.bias)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        extras = f", stride={self.stride}, padding={self.padding!r}"
        extras += f", dilation={self.dilation}" if self.dilation != 1 else ""
        extras += f", groups={self.groups}" if self.groups != 1 else ""
        extras += ", bias=False" if self.bias is None else ""
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}{extras}"


class Linear(Module):
    """y = x @ W.T + b, weight (out_features, in_features), PyTorch default init."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = integer("Linear", "in_features", in_features, 0)
        self.out_features = integer("Linear", "out_features", out_features, 0)
        self.weight = Parameter(_empty(self.out_features, self.in_features))
        self.bias = Parameter(_empty(self.out_features)) if bias else None
        _default_init(self.weight, self.bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        pool_window("MaxPool2d", kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        pool_window("AvgPool2d", kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class GlobalAvgPool2d(Module):
    """(N, C, H, W) -> (N, C), as Keras' GlobalAveragePooling2D (keepdims=True gives (N, C, 1, 1))."""

    def __init__(self, keepdims=False):
        super().__init__()
        self.keepdims = keepdims

    def forward(self, x):
        return F.global_avg_pool2d(x, self.keepdims)


class LocalResponseNorm(Module):
    """AlexNet's LRN with the paper's alpha (not divided by size, unlike PyTorch); see F.local_response_norm."""

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = lrn_arguments("LocalResponseNorm", size, alpha, beta, k)

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class _BatchNorm(Module):
    """gamma (weight) and beta (bias) are parameters; running_mean/var are buffers."""

    expected_ndim = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True):
        super().__init__()
        op = type(self).__name__
        num_features = integer(op, "num_features", num_features, 1)
        batch_norm_arguments(op, momentum, eps)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype=np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32)) if affine else None
        self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))

    def forward(self, x):
        return self._normalize(F.batch_norm, x)

    def _normalize(self, function, x):
        if x.ndim not in self.expected_ndim:
            raise ValueError(f"{type(self).__name__}: expected a {' or '.join(f'{n}-D' for n in self.expected_ndim)} "
                             f"input, got shape {tuple(x.shape)}")
        return function(x, self.weight, self.bias, self.running_mean, self.running_var,
                        self.training, self.momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """BatchNorm over (N, C) features."""
    expected_ndim = (2,)


class BatchNorm2d(_BatchNorm):
    """BatchNorm over the channels of (N, C, H, W)."""
    expected_ndim = (4,)


class Dropout(Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.p = real("Dropout", "p", p, 0, 1)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class _Activation(Module):
    function = None

    def forward(self, x):
        return type(self).function(x)


class ReLU(_Activation):
    function = staticmethod(F.relu)


class Sigmoid(_Activation):
    function = staticmethod(F.sigmoid)


class Tanh(_Activation):
    function = staticmethod(F.tanh)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class ELU(Module):
    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return F.elu(x, self.alpha)


class Softmax(Module):
    def __init__(self, axis=1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        return F.softmax(x, self.axis)


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim)


class Identity(Module):
    def forward(self, x):
        return x
