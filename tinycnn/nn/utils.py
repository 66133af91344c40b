"""Gradient clipping, as ``torch.nn.utils``: call between ``backward()`` and ``optimizer.step()``.

    >>> import numpy as np, tinycnn
    >>> w = tinycnn.nn.Parameter(np.zeros(2))
    >>> w.grad = np.array([3.0, 4.0])
    >>> float(clip_grad_norm_([w], max_norm=1.0))       # the norm before clipping
    5.0
    >>> w.grad.round(6)                                 # scaled by 1 / (5 + 1e-6), as PyTorch
    array([0.6, 0.8])
"""
import math

from ..backend import get_array_module
from ..tensor import Tensor


def _with_grads(parameters, op):
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in parameters:
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: expected Parameters (or Tensors), got {type(p).__name__}")
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0):
    """Scale the gradients in place so that their total ``norm_type`` norm (over all of them, as if
    concatenated) is at most ``max_norm``; returns that norm before clipping (a float).

    As PyTorch: the scale is ``max_norm / (total + 1e-6)``, applied only when below 1;
    ``norm_type=inf`` uses the largest absolute value.
    """
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not max_norm >= 0 or not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: expected max_norm >= 0 and norm_type > 0, got {max_norm}, {norm_type}")
    grads = [p.grad for p in _with_grads(parameters, "clip_grad_norm_")]
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(abs(g).max()) if g.size else 0.0 for g in grads)
    else:
        total = sum(float((abs(g.astype("float64")) ** norm_type).sum()) for g in grads) ** (1.0 / norm_type)
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= g.dtype.type(scale)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clip every gradient element to [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: expected clip_value >= 0, got {clip_value}")
    for p in _with_grads(parameters, "clip_grad_value_"):
        get_array_module(p.grad).clip(p.grad, -clip_value, clip_value, out=p.grad)
