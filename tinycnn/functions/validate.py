"""Input checks shared by the ops and layers: each error names the op, what it expected and what came.

Sizes follow PyTorch: Python and NumPy integers are integers, bools are not.

    >>> import numpy as np
    >>> pair("conv2d", "stride", np.int64(2), 1)
    (2, 2)
    >>> pair("conv2d", "stride", 1.5, 1)
    Traceback (most recent call last):
    TypeError: conv2d: expected stride to be a positive int or a pair of them, got 1.5
"""
import numbers

from ..kernels.geometry import conv_output_size

_KINDS = {0: "non-negative", 1: "positive"}


def require_float(op, *tensors):
    for t in tensors:
        if t is not None and t.dtype.kind != "f":
            raise TypeError(f"{op}: expected a floating-point input, got dtype {t.dtype}")


def require_ndim(op, tensor, ndim, layout):
    if tensor.ndim != ndim:
        raise ValueError(f"{op}: expected a {ndim}-D input {layout}, got shape {tuple(tensor.shape)}")


def require_same_dtype(op, *tensors):
    dtypes = {t.dtype for t in tensors if t is not None}
    if len(dtypes) > 1:
        raise TypeError(f"{op}: inputs must share one dtype, got {sorted(str(d) for d in dtypes)}")


def is_int(value):
    """A Python or NumPy integer; a bool is not a size."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(op, name, value, minimum):
    """`value` as a Python int >= minimum (0 or 1)."""
    if not is_int(value):
        raise TypeError(f"{op}: expected {name} to be a {_KINDS[minimum]} int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: {name} must be {_KINDS[minimum]}, got {value!r}")
    return int(value)


def pair(op, name, value, minimum):
    """An int or a pair (tuple or list) of ints >= minimum (0 or 1) -> a pair of Python ints."""
    values = (value, value) if is_int(value) else value
    if not (isinstance(values, (tuple, list)) and len(values) == 2 and all(is_int(v) for v in values)):
        raise TypeError(f"{op}: expected {name} to be a {_KINDS[minimum]} int or a pair of them, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{op}: {name} must be {_KINDS[minimum]}, got {value!r}")
    return tuple(int(v) for v in values)


def real(op, name, value, low=None, high=None):
    """`value` as a Python float in [low, high] (either bound may be None); bools are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: expected {name} to be a real number, got {value!r}")
    if (low is not None and not value >= low) or (high is not None and not value <= high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{op}: {name} must be {bounds}, got {value!r}")
    return float(value)


def out_size(op, size, kernel, stride, pad, dilation, ceil_mode=False):
    """Output length of a sliding window (tinycnn.conv_output_size), refused when no window fits."""
    span = dilation * (kernel - 1) + 1
    if size + 2 * pad < span:
        raise ValueError(f"{op}: kernel (extent {span}) is larger than the padded input (size {size} + 2*{pad})")
    return conv_output_size(size, kernel, stride, pad, dilation, ceil_mode)
