"""``fuse(model)``: a BatchNorm next to a ReLU becomes one op, with the same parameters and values.

A BatchNorm followed by a ReLU, or a ReLU followed by a BatchNorm (MiniVGG's order), inside
an ``nn.Sequential`` can run as one pass over memory, forward and backward
(``F.batch_norm_relu``, ``F.relu_batch_norm``) instead of two. Nothing fuses by itself: a
model runs every layer as written until ``fuse`` rewrites it, and the rewrite shows in
``print(model)``, ``tinycnn.summary`` and in what forward hooks see.

    >>> import tinycnn.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.BatchNorm2d(8))
    >>> keys = list(net.state_dict())
    >>> net = nn.fuse(net)
    >>> [type(m).__name__ for m in net]
    ['Conv2d', 'Identity', 'ReLUBatchNorm2d']
    >>> list(net.state_dict()) == keys
    True

``tinycnn.train.fit``, the ``tinycnn`` command and ``bench/`` call it; call it yourself
before a hand-written training loop.
"""
from .. import functions as F
from .containers import Sequential
from .layers import BatchNorm1d, BatchNorm2d, Identity, ReLU
from .module import Module


class _FusedBatchNorm:
    """A BatchNorm and the ReLU next to it, run as ``function`` (F.batch_norm_relu or
    F.relu_batch_norm). It shares the BatchNorm's parameters and buffers (the same tables),
    so state_dict keys, checkpoints, ``.to()`` and training are those of the BatchNorm."""

    function = None

    def __init__(self, batch_norm):
        Module.__init__(self)       # for a table of forward hooks of its own
        # the same parameter and buffer tables, settings and mode (weight=None when not affine)
        self.__dict__.update((name, value) for name, value in vars(batch_norm).items() if name != "_forward_hooks")

    def forward(self, x):
        return self._normalize(type(self).function, x)


class BatchNormReLU1d(_FusedBatchNorm, BatchNorm1d):
    """relu(BatchNorm1d(x)) as one op (F.batch_norm_relu)."""
    function = staticmethod(F.batch_norm_relu)


class BatchNormReLU2d(_FusedBatchNorm, BatchNorm2d):
    """relu(BatchNorm2d(x)) as one op (F.batch_norm_relu)."""
    function = staticmethod(F.batch_norm_relu)


class ReLUBatchNorm1d(_FusedBatchNorm, BatchNorm1d):
    """BatchNorm1d(relu(x)) as one op (F.relu_batch_norm)."""
    function = staticmethod(F.relu_batch_norm)


class ReLUBatchNorm2d(_FusedBatchNorm, BatchNorm2d):
    """BatchNorm2d(relu(x)) as one op (F.relu_batch_norm)."""
    function = staticmethod(F.relu_batch_norm)


BATCH_NORM_THEN_RELU = {BatchNorm1d: BatchNormReLU1d, BatchNorm2d: BatchNormReLU2d}
RELU_THEN_BATCH_NORM = {BatchNorm1d: ReLUBatchNorm1d, BatchNorm2d: ReLUBatchNorm2d}


def fuse(model):
    """Fuse, in place, every BatchNorm1d/2d and ReLU that follow each other in an nn.Sequential;
    returns ``model``.

    The pair's BatchNorm becomes a ``BatchNormReLU2d`` (BatchNorm then ReLU) or a
    ``ReLUBatchNorm2d`` (ReLU then BatchNorm), or their 1d twins, at the BatchNorm's place
    and with its parameters and buffers; the ReLU's place takes an ``nn.Identity`` (as
    PyTorch's ``fuse_modules``), so names, indices and state_dict keys stay. The outputs and
    gradients are those of the two layers, up to float rounding.

    Layers stay as written when either has a forward hook (the hook needs the output
    between them) or a ``forward`` of its own (a subclass: it may not be a plain ReLU or
    BatchNorm). Fusing twice changes nothing more.
    """
    if not isinstance(model, Module):
        raise TypeError(f"fuse: expected a tinycnn.nn.Module, got {type(model).__name__}")
    for module in list(model.modules()):
        if isinstance(module, Sequential):
            _fuse_pairs(module)
    return model


def _fuse_pairs(sequential):
    names = list(sequential._modules)
    index = 0
    while index + 1 < len(names):
        first, second = sequential._modules[names[index]], sequential._modules[names[index + 1]]
        if _plain(first, BATCH_NORM_THEN_RELU) and _plain(second, (ReLU,)):
            fused = BATCH_NORM_THEN_RELU[type(first)](first), Identity()
        elif _plain(first, (ReLU,)) and _plain(second, RELU_THEN_BATCH_NORM):
            fused = Identity(), RELU_THEN_BATCH_NORM[type(second)](second)
        else:
            index += 1
            continue
        # assigned in the table, not by setattr, which would move the names to the end
        sequential._modules[names[index]], sequential._modules[names[index + 1]] = fused
        index += 2


def _plain(module, types):
    """``module`` is of one of ``types`` itself (not a subclass, not fused yet) and has no forward hook."""
    return type(module) in types and not module._forward_hooks
