"""Batch normalization and local response normalization.

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> x = tinycnn.Tensor(np.random.default_rng(0).normal(size=(8, 3, 4, 4)))
    >>> mean, var = np.zeros(3), np.ones(3)
    >>> y = F.batch_norm(x, None, None, mean, var, training=True)
    >>> bool(abs(y.numpy().mean()) < 1e-6)
    True
"""
import math

from .. import amp, kernels
from ..backend import get_array_module
from ..tensor import Function, Tensor
from .validate import integer, real, require_float, require_ndim


class BatchNorm(Function):
    """Normalizes x viewed as (N, C, L): (N, C) -> (N, C, 1), (N, C, H, W) -> (N, C, H*W).
    With ``relu`` a ReLU follows in the same pass over memory; backward then keeps the output
    (its sign is the ReLU's mask) instead of a mask of its own. With ``relu_input`` a ReLU
    comes first, in the same pass: BatchNorm of max(x, 0), whose mask is the sign of x."""

    fresh_grads = True      # every path of backward allocates gx, ggamma and gbeta

    def __init__(self, training, eps, running_mean, running_var, momentum, relu=False, relu_input=False):
        self.training, self.eps, self.momentum = training, eps, momentum
        self.running_mean, self.running_var = running_mean, running_var
        self.relu, self.relu_input = relu, relu_input
        self.saved_inputs, self.saves_outputs = (0, 1), relu    # x, gamma; the output is the fused ReLU's mask

    def forward(self, x, gamma, beta):
        self.shape = x.shape
        x3 = x.reshape(x.shape[:2] + (math.prod(x.shape[2:]),))     # not -1: N may be 0
        self.x3, self.gamma = x3, gamma
        if x.size == 0:         # an empty batch: no statistics, running ones unchanged (as PyTorch)
            return get_array_module(x).empty_like(x)
        if self.training:
            y, self.mean, self.var = kernels.batch_norm_forward_train(x3, gamma, beta, self.eps, self.relu,
                                                                      self.relu_input)
            if self.running_mean is not None:
                kernels.batch_norm_update_running(self.running_mean, self.running_var, self.mean, self.var,
                                                  self.momentum, x3.shape[0] * x3.shape[2])
        else:
            # copies (C values): a training step before this backward updates the running ones in place
            self.mean, self.var = self.running_mean.copy(), self.running_var.copy()
            y = kernels.batch_norm_forward_eval(x3, gamma, beta, self.mean.astype(x.dtype),
                                                self.var.astype(x.dtype), self.eps, self.relu, self.relu_input)
        self.y3 = y if self.relu else None
        return y.reshape(self.shape)

    def backward(self, gy):
        gy3 = gy.reshape(self.x3.shape)
        if self.x3.size == 0:
            zeros = get_array_module(gy).zeros(self.shape[1], gy.dtype)
            return gy.copy(), zeros, zeros.copy()
        if self.training:
            gx, ggamma, gbeta = kernels.batch_norm_backward(self.x3, gy3, self.gamma, self.mean, self.var,
                                                            self.eps, self.y3, self.relu_input)
        else:   # statistics are constants: an affine map per channel
            xp = get_array_module(gy)
            if self.relu:
                gy3 = xp.where(self.y3 > 0, gy3, gy3.dtype.type(0))
            zero = gy3.dtype.type(0)
            x3 = xp.where(self.x3 < 0, zero, self.x3) if self.relu_input else self.x3
            invstd = 1 / xp.sqrt(self.var.astype(gy.dtype) + gy.dtype.type(self.eps))
            xhat = (x3 - self.mean.astype(gy.dtype)[:, None]) * invstd[:, None]
            gbeta = gy3.sum(axis=(0, 2))
            ggamma = (gy3 * xhat).sum(axis=(0, 2))
            gx = gy3 * (self.gamma * invstd)[:, None]
            if self.relu_input:
                gx = xp.where(self.x3 > 0, gx, zero)
        return gx.reshape(self.shape), ggamma, gbeta


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Batch normalization over (N, C) or (N, C, H, W), per channel C.

    Training uses the batch statistics and updates ``running_mean`` and the
    unbiased ``running_var`` in place (raw arrays, as PyTorch:
    ``running = (1 - momentum) * running + momentum * batch``); eval uses the
    running statistics. ``gamma``/``beta`` may be None (no affine transform).
    """
    return _batch_norm("batch_norm", x, gamma, beta, running_mean, running_var, training, momentum, eps)


def batch_norm_relu(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """relu(batch_norm(x, ...)) in one pass over memory, forward and backward; the same values.

    ``nn.fuse`` turns a BatchNorm followed by a ReLU into ``nn.BatchNormReLU2d`` (or 1d), which runs it.

        >>> import numpy as np, tinycnn, tinycnn.functions as F
        >>> x = tinycnn.Tensor(np.random.default_rng(0).normal(size=(8, 3, 4, 4)))
        >>> y = F.batch_norm_relu(x, None, None, np.zeros(3), np.ones(3), training=True)
        >>> bool((y.numpy() >= 0).all())
        True
    """
    return _batch_norm("batch_norm_relu", x, gamma, beta, running_mean, running_var, training, momentum, eps,
                       relu=True)


def relu_batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """batch_norm(relu(x), ...) in one pass over memory, forward and backward; the same values.

    ``nn.fuse`` turns a ReLU followed by a BatchNorm (MiniVGG's conv -> ReLU -> BN) into
    ``nn.ReLUBatchNorm2d`` (or 1d), which runs it.

        >>> import numpy as np, tinycnn, tinycnn.functions as F
        >>> x = tinycnn.Tensor(np.random.default_rng(0).normal(size=(8, 3, 4, 4)))
        >>> y = F.relu_batch_norm(x, None, None, np.zeros(3), np.ones(3), training=True)
        >>> bool(abs(y.numpy().mean()) < 1e-6)
        True
    """
    return _batch_norm("relu_batch_norm", x, gamma, beta, running_mean, running_var, training, momentum, eps,
                       relu_input=True)


def _batch_norm(op, x, gamma, beta, running_mean, running_var, training, momentum, eps, relu=False,
                relu_input=False):
    x = x if isinstance(x, Tensor) else Tensor(x)
    require_float(op, x)
    if x.dtype == amp.HALF and amp.is_autocast_enabled():    # statistics and normalisation in float32
        y = _batch_norm(op, amp.float32_input(x), gamma, beta, running_mean, running_var, training, momentum,
                        eps, relu, relu_input)
        return amp.restore_half(y, x)
    if x.ndim not in (2, 4):
        raise ValueError(f"{op}: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got shape {tuple(x.shape)}")
    xp = get_array_module(x)
    c = x.shape[1]
    gamma = gamma if gamma is not None else Tensor(xp.ones(c, dtype=x.dtype))
    beta = beta if beta is not None else Tensor(xp.zeros(c, dtype=x.dtype))
    running_mean = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    running_var = running_var.data if isinstance(running_var, Tensor) else running_var
    momentum, eps = batch_norm_arguments(op, momentum, eps)
    if c == 0:
        raise ValueError(f"{op}: expected at least one channel, got input shape {tuple(x.shape)}")
    for name, array in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        if array is not None and tuple(array.shape) != (c,):
            raise ValueError(f"{op}: {name} must have shape ({c},) for {c} channels, got {tuple(array.shape)}")
    if training and x.data.size // c == 1:   # N*H*W values per channel; none gives an empty output
        raise ValueError(f"{op}: training needs more than one value per channel, got input shape {tuple(x.shape)}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{op}: eval mode needs running_mean and running_var, got None")
    return BatchNorm(training, eps, running_mean, running_var, momentum, relu, relu_input)(x, gamma, beta)


def batch_norm_arguments(op, momentum, eps):
    """Checked (momentum, eps) as floats: momentum in [0, 1], eps >= 0."""
    if momentum is None:
        raise TypeError(f"{op}: momentum=None (PyTorch's cumulative average) is not supported; "
                        f"expected a number in [0, 1], got None")
    return real(op, "momentum", momentum, 0, 1), real(op, "eps", eps, 0)


class LocalResponseNorm(Function):
    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        self.x = x
        self.y, self.scale = kernels.lrn_forward(x, self.size, self.alpha, self.beta, self.k)
        return self.y

    def backward(self, gy):
        return kernels.lrn_backward(self.x, self.y, self.scale, gy, self.size, self.alpha, self.beta)


def local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """AlexNet's LRN: b_c = a_c / (k + alpha * sum of a^2 over ``size`` neighbouring channels)^beta.

    This is the paper's formula (Krizhevsky et al. 2012, section 3.3): alpha is NOT divided by ``size``.
    PyTorch's ``LocalResponseNorm`` divides alpha by size, so
    ``local_response_norm(x, n, alpha, b, k)`` equals ``torch.nn.LocalResponseNorm(n, alpha * n, b, k)(x)``.
    """
    op = "local_response_norm"
    x = x if isinstance(x, Tensor) else Tensor(x)
    require_float(op, x)
    require_ndim(op, x, 4, "(N, C, H, W)")
    arguments = lrn_arguments(op, size, alpha, beta, k)
    if x.data.size == 0:        # no values to normalize (PyTorch accepts N = 0 and C = 0)
        return x * 1.0
    return LocalResponseNorm(*arguments)(x)


def lrn_arguments(op, size, alpha, beta, k):
    """Checked (size, alpha, beta, k): a positive int, then floats with alpha >= 0 and k > 0."""
    size, alpha = integer(op, "size", size, 1), real(op, "alpha", alpha, 0)
    beta, k = real(op, "beta", beta), real(op, "k", k)
    if not k > 0:
        raise ValueError(f"{op}: k must be > 0, got {k!r}")
    return size, alpha, beta, k
