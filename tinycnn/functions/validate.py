"""Input checks shared by the ops: each error names the op, what it expected and what came."""
import numbers


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


def pair(op, name, value, minimum):
    """Turn an int or a pair into a pair of ints >= minimum."""
    values = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, numbers.Integral) for v in values):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in values):
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{op}: {name} must be {kind}, got {value!r}")
    return tuple(int(v) for v in values)


def out_size(op, size, kernel, stride, pad, dilation, ceil_mode=False):
    """Output length of a sliding window (PyTorch's rule, including ceil_mode)."""
    span = dilation * (kernel - 1) + 1
    if size + 2 * pad < span:
        raise ValueError(f"{op}: kernel (extent {span}) is larger than the padded input (size {size} + 2*{pad})")
    steps = size + 2 * pad - span
    out = -(-steps // stride) + 1 if ceil_mode else steps // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1   # the last window must start inside the input or its left padding
    return out
