"""Dispatch of the normalisations (local response, batch) and of dropout's mask."""
import numpy as np

from .device import is_cupy_array
from .dispatch import _check_array, _check_float, _check_same_dtype, _check_shape, _ints, _real, _run


def _lrn_args(name, size, alpha, beta):
    (size,) = _ints(name, 1, size=size)
    return size, _real(name, "alpha", alpha), _real(name, "beta", beta)


def lrn_forward(x, size, alpha, beta, k):
    """x (N, C, H, W) -> (y, scale): scale = k + alpha * sum of x^2 over the channels
    [c - size//2, c + (size-1)//2] (alpha not divided by size, as in AlexNet), y = x * scale**-beta."""
    name = "lrn_forward"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    size, alpha, beta = _lrn_args(name, size, alpha, beta)
    return _run(name, x, size, alpha, beta, _real(name, "k", k))


def lrn_backward(x, y, scale, gy, size, alpha, beta):
    """Gradient of lrn_forward with respect to x, from its saved y and scale."""
    name = "lrn_backward"
    arrays = {"x": x, "y": y, "scale": scale, "gy": gy}
    for array_name, array in arrays.items():
        _check_array(name, array_name, array, 4, "(N, C, H, W)")
        _check_shape(name, array_name, array, x.shape)
    _check_same_dtype(name, **arrays)
    size, alpha, beta = _lrn_args(name, size, alpha, beta)
    return _run(name, x, y, scale, gy, size, alpha, beta)


# ---------------------------------------------------------------- batch normalisation


def _check_batch_norm(name, x, eps, **per_channel):
    """x (N, C, L) with N*L > 0 and (C,) vectors of the same dtype; returns eps as a float."""
    _check_array(name, "x", x, 3, "(N, C, L)")
    if x.shape[0] * x.shape[2] == 0:
        raise ValueError(f"{name}: x needs at least one value per channel, got shape {x.shape}")
    for vector_name, vector in per_channel.items():
        _check_array(name, vector_name, vector, 1, "(C,)")
        _check_shape(name, vector_name, vector, (x.shape[1],))
    _check_same_dtype(name, x=x, **per_channel)
    return _real(name, "eps", eps, minimum=0)


def batch_norm_forward_train(x, gamma, beta, eps, relu=False, relu_input=False):
    """x (N, C, L) -> (y, mean, var): normalise with the batch mean and biased variance
    over axes (0, 2), then y = xhat * gamma + beta. ``relu`` fuses y = max(y, 0) after it,
    ``relu_input`` a ReLU before it (the statistics and xhat of max(x, 0))."""
    name = "batch_norm_forward_train"
    eps = _check_batch_norm(name, x, eps, gamma=gamma, beta=beta)
    return _run(name, x, gamma, beta, eps, bool(relu), bool(relu_input))


def batch_norm_forward_eval(x, gamma, beta, mean, var, eps, relu=False, relu_input=False):
    """x (N, C, L) -> y = (x - mean) / sqrt(var + eps) * gamma + beta with given statistics;
    ``relu`` fuses y = max(y, 0) after it, ``relu_input`` x = max(x, 0) before it."""
    name = "batch_norm_forward_eval"
    eps = _check_batch_norm(name, x, eps, gamma=gamma, beta=beta, mean=mean, var=var)
    return _run(name, x, gamma, beta, mean, var, eps, bool(relu), bool(relu_input))


def batch_norm_backward(x, gy, gamma, mean, var, eps, y=None, relu_input=False):
    """Training-mode gradient (batch statistics) -> (gx, ggamma, gbeta). ``y``: the output of a
    forward with ``relu=True``; the gradient reaching BatchNorm is then gy where y > 0, else 0.
    ``relu_input``: the forward had ``relu_input=True``; gx is then 0 where x <= 0."""
    name = "batch_norm_backward"
    eps = _check_batch_norm(name, x, eps, gamma=gamma, mean=mean, var=var)
    _check_array(name, "gy", gy, 3, "(N, C, L)")
    _check_shape(name, "gy", gy, x.shape)
    _check_same_dtype(name, x=x, gy=gy)
    if y is not None:
        _check_array(name, "y", y, 3, "(N, C, L)")
        _check_shape(name, "y", y, x.shape)
        _check_same_dtype(name, x=x, y=y)
    return _run(name, x, gy, gamma, mean, var, eps, y, bool(relu_input))


def dropout_apply(x, mask, scale):
    """y = x * mask * scale with mask a bool array of x's shape (inverted dropout: scale = 1 / (1 - p))."""
    name = "dropout_apply"
    _check_float(name, "x", x)
    if not (isinstance(mask, np.ndarray) or is_cupy_array(mask)) or mask.dtype != np.bool_:
        got = getattr(mask, "dtype", type(mask).__name__)
        raise TypeError(f"{name}: mask must be a bool array, got {got}")
    _check_shape(name, "mask", mask, x.shape)
    return _run(name, x, mask, _real(name, "scale", scale, minimum=0))


def batch_norm_update_running(running_mean, running_var, mean, var, momentum, count):
    """In place: running_mean = (1 - momentum) * running_mean + momentum * mean, and the same for
    running_var with the unbiased batch variance var * count / (count - 1) (as PyTorch). One
    kernel on the GPU when all four share a dtype; array operations otherwise."""
    name = "batch_norm_update_running"
    for vector_name, vector in (("running_mean", running_mean), ("running_var", running_var),
                                ("mean", mean), ("var", var)):
        _check_array(name, vector_name, vector, 1, "(C,)")
        _check_shape(name, vector_name, vector, mean.shape)
    momentum = _real(name, "momentum", momentum, minimum=0)
    (count,) = _ints(name, 2, count=count)
    dtypes = {a.dtype for a in (running_mean, running_var, mean, var)}
    one_float_dtype = dtypes in ({np.dtype(np.float32)}, {np.dtype(np.float64)})
    if is_cupy_array(running_mean) and one_float_dtype and running_mean.flags.c_contiguous \
            and running_var.flags.c_contiguous:
        from . import cuda
        cuda.batch_norm_update_running(running_mean, running_var, mean, var, momentum, count)
        return
    running_mean *= 1 - momentum
    running_mean += momentum * mean.astype(running_mean.dtype)
    running_var *= 1 - momentum
    running_var += (momentum * count / (count - 1)) * var.astype(running_var.dtype)
