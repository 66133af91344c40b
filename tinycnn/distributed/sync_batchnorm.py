"""SyncBatchNorm: BatchNorm with the statistics of the whole batch, over every rank.

With data parallelism each rank sees only its part of the batch; plain BatchNorm would
normalize with that part's mean and variance (noisier, and different running statistics
on every rank). SyncBatchNorm all-reduces the per-channel sums of x and x² (forward) and
of the gradient terms (backward), so its outputs and gradients are those of one process
holding the whole batch, and the running statistics stay equal on every rank.

    >>> import numpy as np, tinycnn, tinycnn.nn as nn
    >>> from tinycnn import distributed as dist
    >>> dist.init()
    >>> model = dist.convert_sync_batchnorm(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)))
    >>> type(model[1]).__name__
    'SyncBatchNorm'
    >>> model(tinycnn.Tensor(np.ones((2, 1, 5, 5), np.float32))).shape
    (2, 4, 3, 3)
"""
import math

from .. import functions as F
from ..backend import get_array_module
from ..functions.validate import require_float
from ..nn.layers import _BatchNorm
from ..tensor import Function, Tensor
from . import comm


class SyncBatchNormFunction(Function):
    """Training-mode BatchNorm over (N, C, ...) with sums reduced across ranks (float64 sums).

    Backward follows DistributedDataParallel's convention: each rank's loss is a mean over
    its own batch of n_r samples and the ranks are weighted by n_r. The gradient reaching x
    on rank r is then gamma / std * (g - S_g / (n_r M) - xhat S_gx / (n_r M)), with M the
    values per channel over all ranks and S the sums over ranks of n_s times rank s's sums
    of g and g * xhat (with equal batches: the usual BatchNorm backward on the whole batch).
    gamma's and beta's gradients stay local sums: DistributedDataParallel averages them.
    """

    saved_inputs, saves_outputs = (0, 1), False

    def __init__(self, eps, momentum, running_mean, running_var):
        self.eps, self.momentum = eps, momentum
        self.running_mean, self.running_var = running_mean, running_var

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        self.shape, channels = x.shape, x.shape[1]
        x3 = x.reshape(x.shape[:2] + (math.prod(x.shape[2:]),))
        wide = x3.astype(xp.float64)
        stats = xp.concatenate([wide.sum(axis=(0, 2)), (wide * wide).sum(axis=(0, 2)),
                                xp.asarray([x3.shape[0] * x3.shape[2]], dtype=xp.float64)])
        comm.all_reduce(stats)
        self.count = count = stats[2 * channels:]            # values per channel, all ranks (stays on device)
        mean = stats[:channels] / count
        var = xp.maximum(stats[channels:2 * channels] / count - mean * mean, 0)
        if self.running_mean is not None:
            m = self.momentum
            self.running_mean *= 1 - m
            self.running_mean += (m * mean).astype(self.running_mean.dtype)
            self.running_var *= 1 - m
            self.running_var += (m * var * count / (count - 1)).astype(self.running_var.dtype)
        self.invstd = (1 / xp.sqrt(var + self.eps)).astype(x.dtype)
        self.xhat = (x3 - mean.astype(x.dtype)[:, None]) * self.invstd[:, None]
        self.gamma = gamma
        return (self.xhat * gamma[:, None] + beta[:, None]).reshape(self.shape)

    def backward(self, gy):
        xp = get_array_module(gy)
        channels, samples = self.shape[1], self.shape[0]
        gy3 = gy.reshape(self.xhat.shape)
        sums = xp.concatenate([gy3.sum(axis=(0, 2), dtype=xp.float64),
                               (gy3 * self.xhat).sum(axis=(0, 2), dtype=xp.float64)])
        gbeta, ggamma = sums[:channels].astype(gy.dtype), sums[channels:].astype(gy.dtype)
        weighted = comm.all_reduce(sums * samples)
        means = (weighted / (samples * self.count)).astype(gy.dtype)
        gx = (self.gamma * self.invstd)[:, None] * (gy3 - means[:channels, None] - self.xhat * means[channels:, None])
        return gx.reshape(self.shape), ggamma, gbeta


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C) or (N, C, H, W) whose training statistics span every rank
    (``tinycnn.distributed.init()`` first); in eval mode it is BatchNorm with its running
    statistics, no communication. ``relu``: None, "after" (relu(BN(x)), as nn.fuse's
    BatchNormReLU2d) or "before" (BN(relu(x)), as ReLUBatchNorm2d)."""

    expected_ndim = (2, 4)
    EVAL = {None: F.batch_norm, "after": F.batch_norm_relu, "before": F.relu_batch_norm}

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, relu=None):
        super().__init__(num_features, eps, momentum, affine)
        if relu not in self.EVAL:
            raise ValueError(f"SyncBatchNorm: relu must be None, 'after' or 'before', got {relu!r}")
        self.relu = relu

    def forward(self, x):
        if not self.training:
            return self._normalize(self.EVAL[self.relu], x)
        y = self._synchronized(F.relu(x) if self.relu == "before" else x)
        return F.relu(y) if self.relu == "after" else y

    def extra_repr(self):
        return super().extra_repr() + (f", relu={self.relu!r}" if self.relu else "")

    def _synchronized(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        require_float("SyncBatchNorm", x)
        if x.ndim not in self.expected_ndim or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: expected a 2-D or 4-D input with {self.num_features} channels "
                             f"(axis 1), got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("SyncBatchNorm: this rank's batch is empty; every rank needs samples "
                             "(tinycnn.distributed.DistributedDataLoader gives each at least one)")
        xp = get_array_module(x)
        gamma = self.weight if self.weight is not None else Tensor(xp.ones(self.num_features, dtype=x.dtype))
        beta = self.bias if self.bias is not None else Tensor(xp.zeros(self.num_features, dtype=x.dtype))
        function = SyncBatchNormFunction(self.eps, self.momentum, self.running_mean, self.running_var)
        return function(x, gamma, beta)


def convert_sync_batchnorm(module):
    """Replace every BatchNorm1d/2d in ``module`` (in place; nn.fuse's BatchNorm+ReLU layers
    too) by a SyncBatchNorm sharing its parameters and running statistics; returns the module
    (or the new layer if it was one)."""
    if _converts(module):
        return _synchronized_copy(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if _converts(child):
                parent._modules[name] = _synchronized_copy(child)     # not setattr: it would move it last
    return module


def _converts(layer):
    return isinstance(layer, _BatchNorm) and not isinstance(layer, SyncBatchNorm)


def _synchronized_copy(layer):
    relu = {F.batch_norm_relu: "after", F.relu_batch_norm: "before"}.get(getattr(type(layer), "function", None))
    sync = SyncBatchNorm(layer.num_features, layer.eps, layer.momentum, affine=layer.weight is not None, relu=relu)
    if layer.weight is not None:
        sync.weight, sync.bias = layer.weight, layer.bias
    sync.register_buffer("running_mean", layer.running_mean)
    sync.register_buffer("running_var", layer.running_var)
    return sync.train(layer.training)
