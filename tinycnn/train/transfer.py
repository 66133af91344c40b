"""Transfer learning on arrays: features of a trained network, and a softmax-regression head on them.

The feature-extraction recipe: run a trained network over new images up to one layer, keep its
outputs as arrays, then train a linear classifier on those arrays (the lecture notes use
scikit-learn's LogisticRegression; ``LogisticRegression`` here is the same model trained with
tinycnn's own optimizer).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(60, 2)).astype(np.float32)
    >>> y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    >>> LogisticRegression(epochs=50).fit(x, y).score(x, y) > 0.95
    True

For images: ``features, labels = extract_features(model, "features", loader)``.
"""
import numpy as np

from .. import functions as F
from ..backend import to_device
from ..tensor import Tensor, no_grad


class _Captured(Exception):
    """Raised by extract_features' hook: the layer's output is kept, the rest of the forward skipped."""


def extract_features(model, layer, loader):
    """``(features, labels)``: NumPy arrays of the outputs of ``model``'s submodule ``layer`` (a
    name from ``named_modules()``, e.g. ``"features"``), flattened to (N, -1), and the labels of
    every batch of ``loader`` (an iterable of ``(images, labels)``).

    The model runs in eval mode without recording a graph, and stops at ``layer``: a forward
    hook takes its output and ends the pass, so the layers after it never run.
    """
    target = model.get_submodule(layer)

    def hook(module, inputs, output):
        raise _Captured(output)

    features, labels = [], []
    handle = target.register_forward_hook(hook)
    was_training, device = model.training, model.device
    model.eval()
    try:
        with no_grad():
            for images, batch_labels in loader:
                try:
                    model(Tensor(to_device(getattr(images, "data", images), device)))
                except _Captured as captured:
                    output = captured.args[0]
                else:
                    raise RuntimeError(f"extract_features: the layer {layer!r} did not run in the model's forward")
                output = output[0] if isinstance(output, (tuple, list)) else output
                array = to_device(getattr(output, "data", output), "cpu")
                features.append(array.reshape(len(array), -1))
                labels.append(to_device(getattr(batch_labels, "data", batch_labels), "cpu"))
    finally:
        handle.remove()
        model.train(was_training)
    if not features:
        raise ValueError("extract_features: the loader produced no batches")
    return np.concatenate(features), np.concatenate(labels)


class LogisticRegression:
    """Softmax regression with an L2 penalty, trained by tinycnn's optimizers on arrays.

    Minimises ``mean cross entropy + l2 / 2 * ||W||^2`` (the bias is not penalised) over
    ``epochs`` passes of ``batch_size`` rows (None: the whole set, full-batch descent) with SGD
    (``lr``, ``momentum``) from zero weights, so a run is deterministic (shuffled with ``seed``).
    ``standardize`` first scales each feature to zero mean and unit variance on the training set,
    which makes one ``lr`` fit features of any scale. Labels may be any values: ``classes_`` holds
    them sorted, as scikit-learn's ``LogisticRegression`` does.
    """

    def __init__(self, l2=1e-4, lr=0.1, momentum=0.9, epochs=100, batch_size=None, standardize=True, seed=0):
        if not l2 >= 0 or not lr > 0 or int(epochs) < 1:
            raise ValueError(f"LogisticRegression: expected l2 >= 0, lr > 0, epochs >= 1; got {l2}, {lr}, {epochs}")
        self.l2, self.lr, self.momentum, self.epochs = float(l2), float(lr), float(momentum), int(epochs)
        self.batch_size, self.standardize, self.seed = batch_size, bool(standardize), seed
        self.weight = self.bias = self.classes_ = None
        self.history = []

    def _inputs(self, x, op):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"LogisticRegression.{op}: expected features of shape (N, D), got {x.shape}")
        if self.weight is not None and x.shape[1] != self.weight.shape[1]:
            raise ValueError(f"LogisticRegression.{op}: fitted on {self.weight.shape[1]} features, got {x.shape[1]}")
        return (x - self.mean_) / self.scale_ if self.weight is not None else x

    def fit(self, x, y):
        """Train on features ``x`` (N, D) and labels ``y`` (N,); returns self (``history``: loss per epoch)."""
        from ..optim import SGD
        from ..nn import Parameter

        x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
        if x.ndim != 2 or y.shape != (len(x),) or len(x) == 0:
            raise ValueError(f"LogisticRegression.fit: expected features (N, D) and labels (N,), got {x.shape} "
                             f"and {y.shape}")
        self.weight = None
        self.classes_, targets = np.unique(y, return_inverse=True)
        self.mean_ = x.mean(axis=0) if self.standardize else np.zeros(x.shape[1], np.float32)
        self.scale_ = x.std(axis=0) if self.standardize else np.ones(x.shape[1], np.float32)
        self.scale_ = np.where(self.scale_ > 0, self.scale_, 1).astype(np.float32)  # constant features stay 0
        x = (x - self.mean_) / self.scale_
        weight = Parameter(np.zeros((len(self.classes_), x.shape[1]), np.float32))
        bias = Parameter(np.zeros(len(self.classes_), np.float32))
        optimizer = SGD([weight, bias], lr=self.lr, momentum=self.momentum)
        size = len(x) if self.batch_size is None else int(self.batch_size)
        rng = np.random.default_rng(self.seed)
        self.history = []
        for _ in range(self.epochs):
            order = np.arange(len(x)) if size >= len(x) else rng.permutation(len(x))
            total = 0.0
            for start in range(0, len(x), size):
                rows = order[start:start + size]
                loss = F.softmax_cross_entropy(F.linear(Tensor(x[rows]), weight, bias), targets[rows])
                if self.l2:
                    loss = loss + (weight * weight).sum() * (self.l2 / 2)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.item()) * len(rows)
            self.history.append(total / len(x))
        self.weight, self.bias = weight.numpy(), bias.numpy()
        return self

    def decision_function(self, x):
        """Logits (N, classes) of features ``x``."""
        if self.weight is None:
            raise RuntimeError("LogisticRegression: call fit() first")
        return self._inputs(x, "decision_function") @ self.weight.T + self.bias

    def predict_proba(self, x):
        """Class probabilities (N, classes), columns in the order of ``classes_``."""
        logits = self.decision_function(x)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, x):
        """The most probable class of each row (values from ``classes_``)."""
        return self.classes_[self.decision_function(x).argmax(axis=1)]

    def score(self, x, y):
        """Accuracy on ``(x, y)``."""
        return float(np.mean(self.predict(x) == np.asarray(y)))
