"""Weight initialisation, in place, drawing from tinycnn's seeded generator.

Fans of a conv weight (OC, C/groups, KH, KW): fan_in = C/groups*KH*KW, fan_out = OC*KH*KW.

    >>> import numpy as np, tinycnn
    >>> w = tinycnn.nn.Parameter(np.empty((64, 3, 3, 3), dtype=np.float32))
    >>> _ = kaiming_normal_(w)
    >>> w.dtype
    dtype('float32')
"""
import math

import numpy as np

from ..backend import get_array_module
from ..random import get_rng


def _fans(shape):
    if len(shape) < 2:
        raise ValueError(f"init: fan in/out needs a weight of at least 2 dimensions, got shape {tuple(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _gain(nonlinearity, a=0.0):
    gains = {"linear": 1.0, "conv2d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0),
             "leaky_relu": math.sqrt(2.0 / (1 + a * a)), "selu": 0.75}
    if nonlinearity not in gains:
        raise ValueError(f"init: unknown nonlinearity {nonlinearity!r}; known: {sorted(gains)}")
    return gains[nonlinearity]


def _fill(tensor, sample):
    """Replace tensor.data's values by ``sample(rng, shape)`` keeping dtype and device."""
    array = tensor.data
    xp = get_array_module(array)
    values = sample(get_rng(np), array.shape)
    array[...] = xp.asarray(values, dtype=array.dtype)
    tensor._bump_version("nn.init")   # an in-place change, like any other
    return tensor


def uniform_(tensor, low=0.0, high=1.0):
    return _fill(tensor, lambda rng, shape: rng.uniform(low, high, shape))


def normal_(tensor, mean=0.0, std=1.0):
    return _fill(tensor, lambda rng, shape: rng.normal(mean, std, shape))


def constant_(tensor, value):
    tensor.data[...] = value
    tensor._bump_version("nn.init")
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def xavier_uniform_(tensor, gain=1.0):
    """Glorot uniform (Keras' default): U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    """Glorot normal: N(0, std), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor.shape)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He uniform: U(-b, b), b = gain * sqrt(3 / fan). PyTorch's layer default uses a=sqrt(5)."""
    fan = _fans(tensor.shape)[0 if mode == "fan_in" else 1]
    bound = _gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="relu"):
    """He normal: N(0, std), std = gain / sqrt(fan)."""
    fan = _fans(tensor.shape)[0 if mode == "fan_in" else 1]
    return normal_(tensor, 0.0, _gain(nonlinearity, a) / math.sqrt(fan))


def default_init_(weight, bias=None):
    """PyTorch's Conv2d/Linear default: weight kaiming_uniform(a=sqrt(5)), i.e. U(+-1/sqrt(fan_in));
    bias U(+-1/sqrt(fan_in))."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1.0 / math.sqrt(_fans(weight.shape)[0])
        uniform_(bias, -bound, bound)
