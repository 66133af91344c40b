"""Losses.

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> logits = tinycnn.Tensor(np.zeros((2, 4)))
    >>> round(F.softmax_cross_entropy(logits, np.array([0, 3])).item(), 4)   # log(4)
    1.3863
"""
import numpy as np

from .. import amp
from ..backend import get_array_module
from ..tensor import Function, Tensor
from .activation import log_softmax_array
from .validate import require_float


class SoftmaxCrossEntropy(Function):
    """Cross entropy of softmax(logits) against target distributions (N, K)."""

    saved_inputs, saves_outputs = (), False

    def __init__(self, targets, reduction):
        self.targets, self.reduction = targets, reduction

    def forward(self, logits):
        xp = get_array_module(logits)
        self.log_p = log_softmax_array(logits, axis=1)
        losses = -(self.targets * self.log_p).sum(axis=1)
        if self.reduction == "none":
            return losses
        total = losses.sum()
        return total / logits.dtype.type(len(losses)) if self.reduction == "mean" else total

    def backward(self, gy):
        xp = get_array_module(gy)
        # d/dlogits of -sum(t * log_softmax) = softmax * sum(t) - t
        grad = xp.exp(self.log_p) * self.targets.sum(axis=1, keepdims=True) - self.targets
        if self.reduction == "none":
            return grad * gy[:, None]
        if self.reduction == "mean":
            grad /= grad.dtype.type(len(grad))
        return grad * gy


def softmax_cross_entropy(logits, labels, label_smoothing=0.0, reduction="mean"):
    """Cross entropy of softmax(logits) with integer labels (N,) or one-hot/probabilities (N, K).

    ``label_smoothing`` mixes the targets with the uniform distribution, as
    ``torch.nn.functional.cross_entropy``; ``reduction`` is "mean", "sum" or "none".
    """
    op = "softmax_cross_entropy"
    require_float(op, logits)
    if amp.is_autocast_enabled():       # float16 logits: the softmax and its sums run in float32
        logits = amp.float32_input(logits)
    if logits.ndim != 2:
        raise ValueError(f"{op}: expected logits of shape (N, K), got {tuple(logits.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    n, k = logits.shape
    xp = get_array_module(logits)
    labels = labels.data if isinstance(labels, Tensor) else xp.asarray(labels)
    if labels.ndim == 1:
        if labels.dtype.kind not in "iu":
            raise TypeError(f"{op}: integer class labels expected, got dtype {labels.dtype} "
                            "(pass one-hot targets as an (N, K) float array)")
        if len(labels) != n:
            raise ValueError(f"{op}: {n} logits rows but {len(labels)} labels")
        if xp is np and len(labels) and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f"{op}: labels must lie in [0, {k}), got values from {labels.min()} to {labels.max()}")
        targets = xp.zeros((n, k), dtype=logits.dtype)
        targets[xp.arange(n), labels] = 1
    elif labels.ndim == 2:
        if labels.shape != (n, k):
            raise ValueError(f"{op}: one-hot targets must have shape {(n, k)}, got {labels.shape}")
        targets = labels.astype(logits.dtype)
    else:
        raise ValueError(f"{op}: labels must be (N,) integers or (N, K) targets, got shape {labels.shape}")
    if label_smoothing:
        targets = targets * (1 - label_smoothing) + label_smoothing / k
    if xp is np and not np.isfinite(logits.data).all():
        raise ValueError(f"{op}: the loss is not finite: logits contain NaN or infinity")
    return SoftmaxCrossEntropy(targets.astype(logits.dtype), reduction)(logits)
