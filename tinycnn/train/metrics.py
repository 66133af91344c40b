"""Classification metrics: rank-k accuracy, confusion matrix, classification report, plot.

Labels may be class indices ``(N,)`` or rows of scores / one-hot vectors
``(N, C)`` (their argmax is taken); NumPy, CuPy or Tensors are all accepted.

    >>> import numpy as np
    >>> y_true = np.array([0, 1, 2, 2, 2])
    >>> y_pred = np.array([0, 0, 2, 2, 1])
    >>> confusion_matrix(y_true, y_pred)
    array([[1, 0, 0],
           [1, 0, 0],
           [0, 1, 2]])
    >>> print(classification_report(y_true, y_pred, ["cat", "dog", "frog"]))
                  precision    recall  f1-score   support
    <BLANKLINE>
             cat       0.50      1.00      0.67         1
             dog       0.00      0.00      0.00         1
            frog       1.00      0.67      0.80         3
    <BLANKLINE>
        accuracy                           0.60         5
       macro avg       0.50      0.56      0.49         5
    weighted avg       0.70      0.60      0.61         5
    <BLANKLINE>
"""
import numpy as np

from ..backend import to_device, unwrap

_HEADERS = ("precision", "recall", "f1-score", "support")


def rank_k_accuracy(scores, labels, k=(1, 5)):
    """Fraction of samples whose true class is among the ``k`` highest scores.

    ``scores`` is ``(N, C)`` (logits or probabilities); returns one float per
    entry of ``k`` (a tuple), or a float when ``k`` is a single int. Equal scores
    rank by class index, as ``argmax`` does, so rank-1 equals argmax accuracy.

        >>> scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
        >>> rank_k_accuracy(scores, np.array([2, 1]), k=(1, 2))
        (0.0, 1.0)
    """
    scores = _numpy(scores)
    if scores.ndim != 2:
        raise ValueError(f"rank_k_accuracy: scores must be (N, C), got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("rank_k_accuracy: scores contain NaN")
    n, num_classes = scores.shape
    labels = _class_indices(labels, "labels", "rank_k_accuracy", num_classes)
    if len(labels) != n:
        raise ValueError(f"rank_k_accuracy: {n} rows of scores but {len(labels)} labels")
    ks = (k,) if isinstance(k, (int, np.integer)) else tuple(k)
    for kk in ks:
        if not 1 <= kk <= num_classes:
            raise ValueError(f"rank_k_accuracy: k must be in 1..{num_classes} (the number of classes), got {kk}")

    true_scores = scores[np.arange(n), labels][:, None]  # (N, 1)
    classes = np.arange(num_classes)[None, :]  # (1, C)
    # rank of the true class (0 = top): classes scored higher, plus tied classes with a smaller index
    rank = (scores > true_scores).sum(axis=1) + ((scores == true_scores) & (classes < labels[:, None])).sum(axis=1)
    accuracies = tuple(float(np.mean(rank < kk)) for kk in ks)
    return accuracies[0] if isinstance(k, (int, np.integer)) else accuracies


def confusion_matrix(y_true, y_pred, num_classes=None):
    """``cm[i, j]`` = number of samples of true class i predicted as class j.

    ``num_classes`` defaults to the largest label seen + 1.

        >>> confusion_matrix([0, 1, 1], [0, 1, 0], num_classes=2)
        array([[1, 0],
               [1, 1]])
    """
    return _confusion_matrix(y_true, y_pred, num_classes, "confusion_matrix")


def classification_report(y_true, y_pred, class_names=None, digits=2, output_dict=False):
    """Precision, recall, f1-score and support per class, then accuracy, macro and weighted averages.

    The text has scikit-learn's layout; ``output_dict=True`` returns
    ``{name: {"precision", "recall", "f1-score", "support"}, "accuracy": float,
    "macro avg": {...}, "weighted avg": {...}}``. A ratio with a zero
    denominator (a class never predicted) counts as 0. See the module docstring
    for an example.
    """
    num_classes = None if class_names is None else len(class_names)
    cm = _confusion_matrix(y_true, y_pred, num_classes, "classification_report")
    if class_names is None:
        class_names = [str(i) for i in range(len(cm))]
    class_names = [str(name) for name in class_names]
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"classification_report: class names must be unique, got {class_names}")
    if cm.sum() == 0:
        raise ValueError("classification_report: got no samples")

    true_positives = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)  # samples of each true class
    predicted = cm.sum(axis=0)  # samples predicted as each class
    precision = _divide(true_positives, predicted)
    recall = _divide(true_positives, support)
    f1 = _divide(2 * true_positives, support + predicted)  # = 2PR / (P + R)
    total = int(support.sum())

    rows = {name: (precision[i], recall[i], f1[i], int(support[i])) for i, name in enumerate(class_names)}
    averages = {
        "macro avg": (precision.mean(), recall.mean(), f1.mean(), total),
        "weighted avg": tuple(np.average(m, weights=support) for m in (precision, recall, f1)) + (total,),
    }
    accuracy = float(true_positives.sum() / total)
    if output_dict:
        report = {name: _row_dict(row) for name, row in rows.items()}
        report["accuracy"] = accuracy
        report.update({name: _row_dict(row) for name, row in averages.items()})
        return report
    return _format_report(rows, accuracy, total, averages, digits)


def plot_confusion_matrix(cm, class_names=None, path="confusion_matrix.png", title="Confusion Matrix",
                          normalize=False, cmap="Blues", figsize=None, dpi=100, annotate=None):
    """Save a confusion matrix as a PNG: true labels down, predictions across, counts in the cells.

    ``normalize=True`` shows each row as fractions (per-class recall). Cells are
    annotated when ``annotate`` is True, by default up to 40 classes. The image
    is ``figsize * dpi`` pixels (figsize grows with the number of classes when
    None). Returns ``path``.

        >>> import os, tempfile
        >>> cm = np.array([[816, 10], [6, 909]])
        >>> path = plot_confusion_matrix(cm, ["airplane", "automobile"], os.path.join(tempfile.mkdtemp(), "cm.png"))
    """
    # the object-oriented API with the Agg canvas: no pyplot, no global backend change
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = _numpy(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a square matrix, got shape {cm.shape}")
    num_classes = cm.shape[0]
    class_names = [str(i) for i in range(num_classes)] if class_names is None else [str(c) for c in class_names]
    if len(class_names) != num_classes:
        raise ValueError(f"plot_confusion_matrix: {len(class_names)} class names for a {num_classes}x{num_classes} matrix")
    values = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    if figsize is None:
        side = max(5.0, 0.6 * num_classes + 2.5)
        figsize = (side + 1.0, side)  # a little wider for the colour bar

    figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap=cmap, interpolation="nearest")
    figure.colorbar(image, ax=axes)
    axes.set_xticks(range(num_classes), labels=class_names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(num_classes), labels=class_names)
    axes.set_xlabel("Predicted label")
    axes.set_ylabel("True label")
    axes.set_title(title)
    if annotate if annotate is not None else num_classes <= 40:
        threshold = values.max() / 2
        for i in range(num_classes):
            for j in range(num_classes):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(values[i, j])}"
                axes.text(j, i, text, ha="center", va="center", fontsize=8 if num_classes > 12 else 10,
                          color="white" if values[i, j] > threshold else "black")
    figure.savefig(path, dpi=dpi)
    return path


# ----- helpers ---------------------------------------------------------------------
def _numpy(values):
    """A NumPy array from a NumPy/CuPy array, a Tensor or a list."""
    return np.asarray(to_device(unwrap(values), "cpu"))


def _class_indices(values, name, caller, num_classes=None):
    """1-D int64 class indices; (N, C) rows become their argmax."""
    values = _numpy(values)
    if values.ndim == 2:
        values = values.argmax(axis=1)
    if values.ndim != 1:
        raise ValueError(f"{caller}: {name} must be (N,) class indices or (N, C) rows, got shape {values.shape}")
    if values.dtype.kind not in "iub":
        if values.dtype.kind != "f" or not np.all(values == np.round(values)):
            raise TypeError(f"{caller}: {name} must hold integer class indices, got dtype {values.dtype}")
    values = values.astype(np.int64)
    if values.size and values.min() < 0:
        raise ValueError(f"{caller}: {name} has a negative class index ({values.min()})")
    if num_classes is not None and values.size and values.max() >= num_classes:
        raise ValueError(f"{caller}: {name} has class {values.max()}, expected < {num_classes} classes")
    return values


def _confusion_matrix(y_true, y_pred, num_classes, caller):
    y_true = _class_indices(y_true, "y_true", caller, num_classes)
    y_pred = _class_indices(y_pred, "y_pred", caller, num_classes)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{caller}: y_true has {len(y_true)} samples, y_pred has {len(y_pred)}")
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    # each (true, predicted) pair gets one bin of a flat histogram: bin = true * C + predicted
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _divide(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0."""
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(denominator), where=denominator != 0)


def _row_dict(row):
    precision, recall, f1, support = row
    return {"precision": float(precision), "recall": float(recall), "f1-score": float(f1), "support": int(support)}


def _format_report(rows, accuracy, total, averages, digits):
    """scikit-learn's text layout: right-aligned names, 9-wide columns, blank lines around the classes."""
    width = max(max(len(name) for name in rows), len("weighted avg"), digits)
    header = f"{'':>{width}} " + "".join(f" {h:>9}" for h in _HEADERS)

    def line(name, precision, recall, f1, support):
        return (f"{name:>{width}} " + "".join(f" {v:>9.{digits}f}" for v in (precision, recall, f1))
                + f" {support:>9}")

    lines = [header, ""]
    lines += [line(name, *row) for name, row in rows.items()]
    lines += ["", f"{'accuracy':>{width}} " + " " * 20 + f" {accuracy:>9.{digits}f} {total:>9}"]
    lines += [line(name, *row) for name, row in averages.items()]
    return "\n".join(lines) + "\n"
