"""rank-k accuracy, confusion matrix, classification report and its plot."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

import tinycnn
from tinycnn.train.metrics import classification_report, confusion_matrix, plot_confusion_matrix, rank_k_accuracy

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# MiniVGG on the CIFAR-10 test set, from the lecture notes: the confusion matrix ...
SEED_CONFUSION = np.array([
    [816, 10, 43, 13, 27, 7, 10, 6, 41, 27],
    [6, 909, 1, 5, 1, 4, 6, 3, 15, 50],
    [39, 3, 705, 43, 78, 50, 64, 13, 4, 1],
    [9, 5, 40, 649, 56, 143, 74, 18, 0, 6],
    [3, 3, 34, 35, 848, 18, 29, 22, 6, 2],
    [7, 1, 19, 119, 40, 765, 21, 25, 0, 3],
    [4, 1, 18, 30, 23, 12, 908, 3, 1, 0],
    [6, 0, 21, 25, 48, 52, 4, 837, 3, 4],
    [31, 12, 8, 8, 9, 4, 5, 4, 906, 13],
    [15, 40, 4, 7, 3, 2, 7, 11, 17, 894],
])
# ... and the classification report printed for the same run (precision recall f1-score support)
SEED_REPORT = """
airplane 0.87 0.82 0.84 1000
automobile 0.92 0.91 0.92 1000
bird 0.79 0.70 0.74 1000
cat 0.69 0.65 0.67 1000
deer 0.75 0.85 0.80 1000
dog 0.72 0.77 0.74 1000
frog 0.80 0.91 0.85 1000
horse 0.89 0.84 0.86 1000
ship 0.91 0.91 0.91 1000
truck 0.89 0.89 0.89 1000
accuracy 0.82 10000
macro avg 0.83 0.82 0.82 10000
weighted avg 0.83 0.82 0.82 10000
"""

# scikit-learn's documented example of classification_report (its text, verbatim)
SKLEARN_EXAMPLE = (
    "              precision    recall  f1-score   support\n"
    "\n"
    "     class 0       0.50      1.00      0.67         1\n"
    "     class 1       0.00      0.00      0.00         1\n"
    "     class 2       1.00      0.67      0.80         3\n"
    "\n"
    "    accuracy                           0.60         5\n"
    "   macro avg       0.50      0.56      0.49         5\n"
    "weighted avg       0.70      0.60      0.61         5\n"
)


def labels_from_confusion(cm):
    """y_true, y_pred with exactly the counts of cm."""
    rows, cols = np.indices(cm.shape)
    return np.repeat(rows.ravel(), cm.ravel()), np.repeat(cols.ravel(), cm.ravel())


def parse_report(text):
    """{row name: [numbers]} from a report, whatever the spacing."""
    table = {}
    for line in text.strip().splitlines():
        words = line.split()
        numbers = [w for w in words if w[0].isdigit()]
        if numbers and len(numbers) < len(words):
            table[" ".join(words[:len(words) - len(numbers)])] = [float(n) for n in numbers]
    return table


# ----- rank-k accuracy -------------------------------------------------------------------
def brute_force_rank_k(scores, labels, k):
    """Position of the true class in a stable descending sort (ties: lower class first)."""
    hits = 0
    for row, label in zip(scores, labels):
        order = sorted(range(len(row)), key=lambda c: (-row[c], c))
        hits += order.index(label) < k
    return hits / len(labels)


def test_rank_k_by_hand():
    scores = np.array([
        [0.1, 0.5, 0.2, 0.15, 0.05],  # label 1 is first
        [0.3, 0.1, 0.4, 0.05, 0.15],  # label 0 is second
        [0.3, 0.1, 0.4, 0.05, 0.15],  # label 3 is last
        [0.2, 0.2, 0.2, 0.2, 0.2],  # all tied: label 2 ranks third, as argmax would
    ])
    labels = np.array([1, 0, 3, 2])
    assert rank_k_accuracy(scores, labels, k=(1, 2, 3, 5)) == (0.25, 0.5, 0.75, 1.0)
    assert rank_k_accuracy(scores, labels, k=1) == 0.25
    assert rank_k_accuracy(scores, labels) == (0.25, 1.0)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), num_classes=st.integers(5, 12), levels=st.sampled_from([3, 1000]),
       seed=st.integers(0, 10_000))
def test_rank_k_matches_brute_force(n, num_classes, levels, seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, size=(n, num_classes)).astype(np.float32)  # levels=3: many ties
    labels = rng.integers(0, num_classes, size=n)
    ks = (1, 2, 5, num_classes)
    expected = tuple(brute_force_rank_k(scores, labels, k) for k in ks)
    assert rank_k_accuracy(scores, labels, k=ks) == pytest.approx(expected)
    assert rank_k_accuracy(scores, labels, k=1) == pytest.approx(np.mean(scores.argmax(axis=1) == labels))


def test_rank_k_accepts_one_hot_labels_and_tensors():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((50, 10))
    labels = rng.integers(0, 10, 50)
    one_hot = np.eye(10, dtype=np.float32)[labels]
    expected = rank_k_accuracy(scores, labels)
    assert rank_k_accuracy(tinycnn.Tensor(scores), one_hot) == expected
    assert 0 < expected[0] < expected[1] < 1


def test_rank_k_bad_input():
    scores = np.zeros((4, 3))
    with pytest.raises(ValueError, match="rank_k_accuracy: k must be in 1..3"):
        rank_k_accuracy(scores, [0, 1, 2, 0], k=(1, 5))
    with pytest.raises(ValueError, match="rank_k_accuracy: 4 rows of scores but 3 labels"):
        rank_k_accuracy(scores, [0, 1, 2], k=1)
    with pytest.raises(ValueError, match=r"rank_k_accuracy: scores must be \(N, C\)"):
        rank_k_accuracy(np.zeros(4), [0, 1, 2, 0], k=1)
    with pytest.raises(ValueError, match="labels has class 3, expected < 3 classes"):
        rank_k_accuracy(scores, [0, 1, 3, 0], k=1)
    with pytest.raises(ValueError, match="scores contain NaN"):
        rank_k_accuracy(np.full((4, 3), np.nan), [0, 1, 2, 0], k=1)


# ----- confusion matrix -------------------------------------------------------------------
def test_confusion_matrix_by_hand():
    cm = confusion_matrix([0, 1, 2, 2, 2, 1], [0, 0, 2, 2, 1, 1])
    np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 1, 0], [0, 1, 2]])
    wider = confusion_matrix([0, 1], [1, 1], num_classes=4)
    assert wider.shape == (4, 4) and wider.sum() == 2 and wider[0, 1] == 1 and wider[1, 1] == 1


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 200), num_classes=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_confusion_matrix_matches_counting(n, num_classes, seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, num_classes, n), rng.integers(0, num_classes, n)
    expected = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, num_classes), expected)
    scores = rng.standard_normal((n, num_classes))  # (N, C) predictions are argmax-ed
    np.testing.assert_array_equal(confusion_matrix(y_true, scores, num_classes),
                                  confusion_matrix(y_true, scores.argmax(axis=1), num_classes))


def test_confusion_matrix_round_trips_the_seed_matrix():
    y_true, y_pred = labels_from_confusion(SEED_CONFUSION)
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred), SEED_CONFUSION)


def test_confusion_matrix_bad_input():
    with pytest.raises(ValueError, match="confusion_matrix: y_true has 3 samples, y_pred has 2"):
        confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="confusion_matrix: y_pred has class 5, expected < 3 classes"):
        confusion_matrix([0, 1, 2], [0, 1, 5], num_classes=3)
    with pytest.raises(ValueError, match="negative class index"):
        confusion_matrix([0, -1], [0, 1])
    with pytest.raises(TypeError, match="y_true must hold integer class indices"):
        confusion_matrix([0.5, 1.0], [0, 1])
    np.testing.assert_array_equal(confusion_matrix([0.0, 1.0], [0, 1]), np.eye(2))


# ----- classification report ---------------------------------------------------------------
def test_report_has_sklearns_layout():
    report = classification_report([0, 1, 2, 2, 2], [0, 0, 2, 2, 1], ["class 0", "class 1", "class 2"])
    assert report == SKLEARN_EXAMPLE


def test_report_reproduces_the_seed_report():
    y_true, y_pred = labels_from_confusion(SEED_CONFUSION)
    report = classification_report(y_true, y_pred, CIFAR10)
    assert parse_report(report) == parse_report(SEED_REPORT)
    lines = report.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[1] == "" and lines[12] == "" and len(lines) == 16
    assert lines[2] == "    airplane       0.87      0.82      0.84      1000"


def expected_report(y_true, y_pred, num_classes):
    """Per-class precision/recall/f1/support counted sample by sample, then the averages."""
    rows = []
    for c in range(num_classes):
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == c and p == c)
        predicted = sum(1 for p in y_pred if p == c)
        support = sum(1 for t in y_true if t == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((precision, recall, f1, support))
    total = len(y_true)
    macro = [sum(r[i] for r in rows) / num_classes for i in range(3)]
    weighted = [sum(r[i] * r[3] for r in rows) / total for i in range(3)]
    accuracy = sum(1 for t, p in zip(y_true, y_pred) if t == p) / total
    return rows, accuracy, macro, weighted


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), num_classes=st.integers(2, 7), digits=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_report_matches_an_independent_computation(n, num_classes, digits, seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, num_classes, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, num_classes, n))
    names = [f"class_{c}" for c in range(num_classes)]
    rows, accuracy, macro, weighted = expected_report(y_true, y_pred, num_classes)

    report = classification_report(y_true, y_pred, names, output_dict=True)
    for name, (precision, recall, f1, support) in zip(names, rows):
        assert report[name] == pytest.approx({"precision": precision, "recall": recall, "f1-score": f1,
                                              "support": support})
    assert report["accuracy"] == pytest.approx(accuracy)
    assert [report["macro avg"][h] for h in ("precision", "recall", "f1-score")] == pytest.approx(macro)
    assert [report["weighted avg"][h] for h in ("precision", "recall", "f1-score")] == pytest.approx(weighted)
    assert report["macro avg"]["support"] == report["weighted avg"]["support"] == n

    table = parse_report(classification_report(y_true, y_pred, names, digits=digits))
    for name, row in zip(names, rows):
        assert table[name] == pytest.approx(list(row), abs=0.51 * 10 ** -digits)
    assert table["accuracy"] == pytest.approx([accuracy, n], abs=0.51 * 10 ** -digits)
    assert table["macro avg"] == pytest.approx(macro + [n], abs=0.51 * 10 ** -digits)


def test_report_handles_a_class_never_predicted_or_absent():
    report = classification_report([0, 0, 1, 1], [0, 0, 0, 0], ["a", "b", "c"], output_dict=True)
    assert report["b"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 2}
    assert report["c"]["support"] == 0
    assert report["a"]["precision"] == 0.5 and report["a"]["recall"] == 1.0
    assert report["macro avg"]["recall"] == pytest.approx(1 / 3)
    text = classification_report([0, 0, 1, 1], [0, 0, 0, 0])
    assert text.splitlines()[3].split() == ["1", "0.00", "0.00", "0.00", "2"]


def test_report_bad_input():
    with pytest.raises(ValueError, match="classification_report: y_true has class 3, expected < 2 classes"):
        classification_report([0, 3], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="class names must be unique"):
        classification_report([0, 1], [0, 1], ["a", "a"])
    with pytest.raises(ValueError, match="got no samples"):
        classification_report([], [], ["a", "b"])


# ----- the plot ------------------------------------------------------------------------------
def test_plot_writes_a_png_of_the_expected_size(tmp_path):
    path = plot_confusion_matrix(SEED_CONFUSION, CIFAR10, tmp_path / "cm.png", figsize=(8, 6), dpi=50)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (400, 300)
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1


def test_plot_draws_the_counts_and_normalizes(tmp_path):
    def pixels(**kwargs):
        path = plot_confusion_matrix(SEED_CONFUSION[:3, :3], CIFAR10[:3], tmp_path / "cm.png", dpi=40, **kwargs)
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    plain, counted, normalized = pixels(annotate=False), pixels(), pixels(normalize=True)
    assert plain.shape == counted.shape == normalized.shape
    assert not np.array_equal(plain, counted)  # the numbers are drawn in the cells
    assert not np.array_equal(counted, normalized)  # fractions instead of counts


def test_plot_bad_input(tmp_path):
    with pytest.raises(ValueError, match="plot_confusion_matrix: expected a square matrix, got shape \\(2, 3\\)"):
        plot_confusion_matrix(np.zeros((2, 3)), ["a", "b"], tmp_path / "cm.png")
    with pytest.raises(ValueError, match="plot_confusion_matrix: 3 class names for a 2x2 matrix"):
        plot_confusion_matrix(np.zeros((2, 2)), ["a", "b", "c"], tmp_path / "cm.png")


def test_metrics_never_import_pyplot(tmp_path):
    """Neither importing tinycnn nor plotting touches pyplot (so no global backend switch)."""
    code = ("import sys, numpy as np\n"
            "import tinycnn, tinycnn.train.metrics as m\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n"
            f"m.plot_confusion_matrix(np.eye(2, dtype=int), ['a', 'b'], {str(tmp_path / 'cm.png')!r})\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
