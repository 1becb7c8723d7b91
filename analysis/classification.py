"""Classification analysis on arrays of class indices: the confusion matrix and per-class precision / recall / F1
come from ``sklearn.metrics``; this module adds only what scikit-learn lacks for the dashboard — the most frequent
confusions, the samples behind one cell, the correct / misclassified split of a class — and refuses labels outside
``0 .. num_classes - 1`` (scikit-learn's ``labels=`` silently drops such samples, which would make a matrix that
does not add up to the test set).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn import metrics

__all__ = [
    "ClassSplit",
    "accuracy",
    "cell_indices",
    "confusion_matrix",
    "per_class_metrics",
    "split_correct_misclassified",
    "top_confusions",
]


# ------------------------------------------------------------------------------------------------ validation
def _labels(values, name: str, num_classes: int | None = None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {array.shape}")
    kind = array.dtype.kind
    whole_floats = kind == "f" and bool(np.all(np.isfinite(array))) and bool(np.all(array == np.round(array)))
    if array.size and kind not in "iu" and not whole_floats:
        raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}: {array[:5]!r}")
    array = array.astype(np.int64, copy=False)
    if num_classes is not None and array.size:
        bad = array[(array < 0) | (array >= num_classes)]
        if bad.size:
            raise ValueError(
                f"{name} holds class index {int(bad[0])}, outside 0..{num_classes - 1} for num_classes={num_classes}; "
                "pass the model's number of classes, or map labels to indices first"
            )
    return array


def _pair(y_true, y_pred, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    if num_classes is not None and (int(num_classes) != num_classes or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    true = _labels(y_true, "y_true", num_classes)
    pred = _labels(y_pred, "y_pred", num_classes)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.shape[0]} labels but y_pred has {pred.shape[0]}; they must pair up")
    return true, pred


def _class_index(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or int(value) != value:
        raise TypeError(f"{name} must be a class index (int), got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------------------ metrics
def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; row = true class, column = predicted class; classes absent from
    both arrays get a row and a column of zeros. ``sklearn.metrics.confusion_matrix`` after the label check."""
    true, pred = _pair(y_true, y_pred, num_classes)
    if true.size == 0:  # scikit-learn refuses empty input; an empty selection is a matrix of zeros
        return np.zeros((num_classes, num_classes), np.int64)
    return metrics.confusion_matrix(true, pred, labels=np.arange(num_classes)).astype(np.int64, copy=False)


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples with ``y_pred == y_true``; ValueError when there are none."""
    true, pred = _pair(y_true, y_pred)
    if true.size == 0:
        raise ValueError("accuracy of zero samples is undefined; y_true and y_pred are empty")
    return float(metrics.accuracy_score(true, pred))


def per_class_metrics(y_true, y_pred, num_classes: int, class_names: Sequence[str] | None = None) -> list[dict]:
    """One dict per class, in class order: ``index, name, precision, recall, f1, support, predicted, correct``.

    Precision, recall, F1 and support are ``sklearn.metrics.precision_recall_fscore_support(zero_division=0)``;
    ``predicted`` = samples predicted as the class, ``correct`` = predicted as it and truly it.
    """
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"got {len(class_names)} class names for num_classes={num_classes}")
    true, pred = _pair(y_true, y_pred, num_classes)
    matrix = confusion_matrix(true, pred, num_classes)
    if true.size:
        precision, recall, f1, support = metrics.precision_recall_fscore_support(
            true, pred, labels=np.arange(num_classes), zero_division=0)
    else:
        precision = recall = f1 = support = np.zeros(num_classes)
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    return [
        {"index": i, "name": names[i], "precision": float(precision[i]), "recall": float(recall[i]),
         "f1": float(f1[i]), "support": int(support[i]), "predicted": int(matrix[:, i].sum()),
         "correct": int(matrix[i, i])}
        for i in range(num_classes)
    ]


def top_confusions(matrix: np.ndarray, k: int = 10) -> list[tuple[int, int, int]]:
    """The ``k`` most frequent mistakes as ``(true_class, pred_class, count)``, largest first (ties: row-major).

    Only off-diagonal cells with a count above zero are listed.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"expected a square confusion matrix, got shape {matrix.shape}")
    off = matrix.astype(np.int64, copy=True)
    np.fill_diagonal(off, 0)
    flat = off.ravel()
    order = np.argsort(-flat, kind="stable")[: max(int(k), 0)]
    size = matrix.shape[0]
    return [(int(i // size), int(i % size), int(flat[i])) for i in order if flat[i] > 0]


# ------------------------------------------------------------------------------------------------ samples
def cell_indices(y_true, y_pred, true_class: int, pred_class: int) -> np.ndarray:
    """Indices (ascending, int64) of the samples in one confusion-matrix cell: true == true_class and
    pred == pred_class. The diagonal cell (a == b) gives the correctly classified samples of that class."""
    true, pred = _pair(y_true, y_pred)
    t = _class_index(true_class, "true_class")
    p = _class_index(pred_class, "pred_class")
    return np.flatnonzero((true == t) & (pred == p)).astype(np.int64)


@dataclass(frozen=True)
class ClassSplit:
    """Samples of one class, split by outcome. Index arrays are ascending int64, at most ``limit`` long each;
    the ``n_*`` counts are before limiting, so a page can say "showing 12 of 40".

    - ``correct``: true == cls and pred == cls
    - ``misclassified``: true == cls and pred != cls (the class's missed samples, false negatives)
    - ``false_positives``: true != cls and pred == cls (other classes' samples wrongly predicted as cls)
    """

    cls: int
    correct: np.ndarray
    misclassified: np.ndarray
    false_positives: np.ndarray
    n_correct: int
    n_misclassified: int
    n_false_positives: int


def _subsample(indices: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or indices.size <= limit:
        return indices
    return np.sort(rng.choice(indices, size=limit, replace=False))


def split_correct_misclassified(y_true, y_pred, cls: int, limit: int | None = None, seed: int = 0) -> ClassSplit:
    """Correct, misclassified (missed) and falsely-predicted samples of class ``cls``; see ``ClassSplit``.

    With ``limit``, each group larger than it is reduced to a random subset of ``limit`` samples, drawn with
    ``seed`` (same arrays + seed -> same subset), so the gallery shows a fair sample and not just the first ones.
    """
    true, pred = _pair(y_true, y_pred)
    c = _class_index(cls, "cls")
    if limit is not None and (int(limit) != limit or limit < 0):
        raise ValueError(f"limit must be None or a non-negative int, got {limit!r}")
    is_true, is_pred = true == c, pred == c
    groups = [np.flatnonzero(m).astype(np.int64) for m in (is_true & is_pred, is_true & ~is_pred, ~is_true & is_pred)]
    rng = np.random.default_rng(seed)
    limited = [_subsample(g, None if limit is None else int(limit), rng) for g in groups]
    return ClassSplit(c, *limited, *(int(g.size) for g in groups))
