"""Classification analysis: equality with scikit-learn on random data, hand-checked small cases, and the label
checks scikit-learn does not make."""

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support

from analysis.classification import (
    accuracy,
    cell_indices,
    confusion_matrix,
    per_class_metrics,
    split_correct_misclassified,
    top_confusions,
)


def random_labels(seed: int, n: int, num_classes: int, absent: tuple[int, ...] = ()):
    """Predictions right about 60% of the time; classes in ``absent`` never occur as true labels, and the last
    of them never as a prediction either (covers empty rows, empty columns and both)."""
    rng = np.random.default_rng(seed)
    present = [c for c in range(num_classes) if c not in absent]
    y_true = rng.choice(present, size=n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, num_classes, size=n))
    if absent:
        y_pred[y_pred == absent[-1]] = present[0]
    return y_true, y_pred


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("absent", [(), (2,), (0, 6)])
def test_confusion_matrix_equals_sklearn(seed, absent):
    y_true, y_pred = random_labels(seed, 300, 7, absent)
    ours = confusion_matrix(y_true, y_pred, 7)
    np.testing.assert_array_equal(ours, sk_confusion_matrix(y_true, y_pred, labels=list(range(7))))
    assert ours.shape == (7, 7) and ours.dtype == np.int64
    assert ours.sum() == 300


def test_confusion_matrix_by_hand():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 4)
    np.testing.assert_array_equal(cm, [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("absent", [(), (3,), (1, 4)])
def test_per_class_metrics_equal_sklearn(seed, absent):
    y_true, y_pred = random_labels(seed, 250, 6, absent)
    names = [f"class{i}" for i in range(6)]
    rows = per_class_metrics(y_true, y_pred, 6, names)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(6)), zero_division=0
    )
    assert [r["name"] for r in rows] == names and [r["index"] for r in rows] == list(range(6))
    np.testing.assert_allclose([r["precision"] for r in rows], precision, rtol=0, atol=1e-12)
    np.testing.assert_allclose([r["recall"] for r in rows], recall, rtol=0, atol=1e-12)
    np.testing.assert_allclose([r["f1"] for r in rows], f1, rtol=0, atol=1e-12)
    assert [r["support"] for r in rows] == support.tolist()
    for absent_class in absent:
        assert rows[absent_class]["support"] == 0 and rows[absent_class]["recall"] == 0.0


def test_per_class_metrics_zero_division_is_zero():
    # class 1 is never predicted (precision 0/0) and never true (recall 0/0); class 2 predicted but never right
    rows = per_class_metrics([0, 0, 2], [0, 2, 0], 3)
    assert rows[1] == {"index": 1, "name": "1", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
                       "predicted": 0, "correct": 0}
    assert rows[0]["precision"] == 0.5 and rows[0]["recall"] == 0.5 and rows[0]["f1"] == 0.5
    assert rows[2]["precision"] == 0.0 and rows[2]["recall"] == 0.0 and rows[2]["f1"] == 0.0


def test_accuracy():
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    with pytest.raises(ValueError, match="zero samples"):
        accuracy([], [])


def test_bad_labels_are_errors_not_dropped_samples():
    with pytest.raises(ValueError, match="class index 5"):
        confusion_matrix([0, 5], [0, 1], 3)
    with pytest.raises(ValueError, match="y_true has 2 labels but y_pred has 3"):
        confusion_matrix([0, 1], [0, 1, 1], 3)
    with pytest.raises(TypeError, match="integer class indices"):
        confusion_matrix([0.5, 1], [0, 1], 3)
    with pytest.raises(ValueError, match="got 2 class names"):
        per_class_metrics([0], [0], 3, ["a", "b"])
    # float labels that are whole numbers (e.g. from a pandas column) are fine
    np.testing.assert_array_equal(confusion_matrix(np.array([0.0, 1.0]), [0, 1], 2), np.eye(2, dtype=np.int64))


def test_cell_indices():
    y_true = np.array([0, 1, 1, 2, 1, 0, 1])
    y_pred = np.array([0, 2, 1, 2, 2, 1, 2])
    np.testing.assert_array_equal(cell_indices(y_true, y_pred, 1, 2), [1, 4, 6])
    np.testing.assert_array_equal(cell_indices(y_true, y_pred, 1, 1), [2])
    assert cell_indices(y_true, y_pred, 2, 0).size == 0
    assert cell_indices(y_true, y_pred, 1, 2).dtype == np.int64
    # every sample is in exactly one cell, and cell sizes are the confusion matrix
    cm = confusion_matrix(y_true, y_pred, 3)
    cells = [cell_indices(y_true, y_pred, t, p) for t in range(3) for p in range(3)]
    assert [c.size for c in cells] == cm.ravel().tolist()
    assert sorted(np.concatenate(cells).tolist()) == list(range(7))


def test_split_correct_misclassified_definitions():
    y_true = np.array([3, 3, 3, 1, 3, 0, 2, 3])
    y_pred = np.array([3, 1, 3, 3, 0, 3, 2, 3])
    split = split_correct_misclassified(y_true, y_pred, cls=3)
    np.testing.assert_array_equal(split.correct, [0, 2, 7])  # true 3, predicted 3
    np.testing.assert_array_equal(split.misclassified, [1, 4])  # true 3, predicted something else
    np.testing.assert_array_equal(split.false_positives, [3, 5])  # other classes predicted as 3
    assert (split.n_correct, split.n_misclassified, split.n_false_positives) == (3, 2, 2)


def test_split_limit_is_a_seeded_random_subset():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, size=600)
    y_pred = np.where(rng.random(600) < 0.7, y_true, rng.integers(0, 3, size=600))
    full = split_correct_misclassified(y_true, y_pred, 1)
    a = split_correct_misclassified(y_true, y_pred, 1, limit=10, seed=4)
    b = split_correct_misclassified(y_true, y_pred, 1, limit=10, seed=4)
    c = split_correct_misclassified(y_true, y_pred, 1, limit=10, seed=5)
    for group in ("correct", "misclassified", "false_positives"):
        got, everything = getattr(a, group), getattr(full, group)
        assert got.size == 10 and np.all(np.diff(got) > 0) and np.isin(got, everything).all()
        np.testing.assert_array_equal(got, getattr(b, group))
    assert not np.array_equal(a.correct, c.correct)
    assert not np.array_equal(a.correct, full.correct[:10])  # not simply the first ones
    assert (a.n_correct, a.n_misclassified) == (full.n_correct, full.n_misclassified)
    assert a.n_correct == full.correct.size > 10


def test_top_confusions():
    cm = np.array([[5, 2, 0], [7, 4, 2], [0, 1, 9]])
    assert top_confusions(cm, k=3) == [(1, 0, 7), (0, 1, 2), (1, 2, 2)]
    assert top_confusions(np.eye(3, dtype=int) * 4) == []


def test_an_empty_selection_is_all_zeros_not_an_error():
    # scikit-learn refuses empty input; a page that filters a test set down to nothing must still draw
    np.testing.assert_array_equal(confusion_matrix([], [], 3), np.zeros((3, 3), np.int64))
    assert [(r["support"], r["precision"], r["f1"]) for r in per_class_metrics([], [], 2)] == [(0, 0.0, 0.0)] * 2
