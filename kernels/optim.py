"""Dispatch of the optimizers' multi-tensor steps: one kernel updates a whole flat buffer of
parameters (tinycnn/optim/multi_tensor.py packs them). The GPU runs kernels/cuda/optim.cu; the
host keeps its per-parameter loop (tinycnn/optim), so these take CuPy arrays only."""
from .device import is_cupy_array
from .dispatch import _check_float, _check_same_dtype, _check_shape, _real


def _check_flat(name, **arrays):
    for array_name, array in arrays.items():
        _check_float(name, array_name, array)
        if not is_cupy_array(array):
            raise TypeError(f"{name}: {array_name} must be a CuPy array (the host updates parameter by "
                            f"parameter), got {type(array).__name__}")
        if array.ndim != 1 or not array.flags.c_contiguous:
            raise ValueError(f"{name}: {array_name} must be a flat C-contiguous array, got shape {array.shape}")
        _check_shape(name, array_name, array, next(iter(arrays.values())).shape)
    _check_same_dtype(name, **arrays)


def sgd_step(param, grad, buffer, lr, momentum, dampening, weight_decay, nesterov, first):
    """In place, for every element: g = grad + weight_decay * param; buffer = g (``first``) or
    momentum * buffer + (1 - dampening) * g; g = g + momentum * buffer (``nesterov``) or buffer;
    param -= lr * g. With momentum 0 the buffer is not touched."""
    name = "sgd_step"
    _check_flat(name, param=param, grad=grad, buffer=buffer)
    from . import cuda
    cuda.sgd_step(param, grad, buffer, _real(name, "lr", lr), _real(name, "momentum", momentum, 0),
                  _real(name, "dampening", dampening), _real(name, "weight_decay", weight_decay),
                  bool(nesterov), bool(first))


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step_size, beta1, beta2, bias2_sqrt, eps,
              weight_decay, decay, decoupled, amsgrad):
    """In place: Adam's step (AdamW's with ``decoupled``: param *= decay first) with the bias
    corrections folded into ``step_size`` = lr / (1 - beta1**t) and ``bias2_sqrt`` =
    sqrt(1 - beta2**t); ``max_exp_avg_sq`` is read and written with ``amsgrad`` only."""
    name = "adam_step"
    _check_flat(name, param=param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq,
                max_exp_avg_sq=max_exp_avg_sq)
    numbers = [_real(name, n, v) for n, v in (("step_size", step_size), ("beta1", beta1), ("beta2", beta2),
                                             ("bias2_sqrt", bias2_sqrt), ("eps", eps),
                                             ("weight_decay", weight_decay), ("decay", decay))]
    from . import cuda
    cuda.adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *numbers, bool(decoupled), bool(amsgrad))
