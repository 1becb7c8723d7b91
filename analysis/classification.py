"""Misclassification analysis on plain numpy arrays: confusion matrix, per-class metrics, the samples behind one
confusion-matrix cell, correct-vs-misclassified splits for a class, and channel ranking for the activation view.

Everything here is numpy only (no scikit-learn at runtime); the results equal scikit-learn's
``confusion_matrix(labels=range(C))`` and ``precision_recall_fscore_support(zero_division=0)``, which the tests check.
Labels are class indices ``0 .. num_classes - 1``; anything else is an error, not a silently dropped sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ClassSplit",
    "accuracy",
    "cell_indices",
    "channel_mean_map",
    "confusion_matrix",
    "per_class_metrics",
    "rank_channels",
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
    """(num_classes, num_classes) int64 counts; row = true class, column = predicted class.

    Same as ``sklearn.metrics.confusion_matrix(y_true, y_pred, labels=range(num_classes))``; classes absent from
    both arrays get a row and a column of zeros.
    """
    true, pred = _pair(y_true, y_pred, num_classes)
    counts = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples with ``y_pred == y_true``; ValueError when there are none."""
    true, pred = _pair(y_true, y_pred)
    if true.size == 0:
        raise ValueError("accuracy of zero samples is undefined; y_true and y_pred are empty")
    return float(np.mean(true == pred))


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def per_class_metrics(y_true, y_pred, num_classes: int, class_names: Sequence[str] | None = None) -> list[dict]:
    """One dict per class, in class order: ``index, name, precision, recall, f1, support, predicted, correct``.

    ``support`` = samples whose true class it is, ``predicted`` = samples predicted as it, ``correct`` = both.
    A ratio whose denominator is zero is 0.0, as scikit-learn's ``precision_recall_fscore_support(
    zero_division=0)``; F1 is ``2 tp / (2 tp + fp + fn)``, which equals the harmonic mean of precision and recall.
    """
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"got {len(class_names)} class names for num_classes={num_classes}")
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _safe_ratio(tp, predicted)
    recall = _safe_ratio(tp, support)
    f1 = _safe_ratio(2 * tp, predicted + support)
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    return [
        {
            "index": i,
            "name": names[i],
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "predicted": int(predicted[i]),
            "correct": int(tp[i]),
        }
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


# ------------------------------------------------------------------------------------------------ channels
def _chw(activation) -> np.ndarray:
    array = np.asarray(activation)
    if array.ndim != 3:
        hint = "; for a batch pick one image first, e.g. acts[i]" if array.ndim == 4 else ""
        raise ValueError(f"activation must have shape (C, h, w), got {array.shape}{hint}")
    return array


def rank_channels(activation, statistic: str = "mean", top: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Channels of one activation (C, h, w), strongest first: (indices int64, values float32).

    ``statistic`` is the spatial "mean" (how much of the map fires) or "max" (its strongest response); ties keep
    channel order. ``top`` = how many to return (None: all C; more than C: all C).
    """
    array = _chw(activation)
    if statistic == "mean":
        values = array.reshape(array.shape[0], -1).mean(axis=1, dtype=np.float64)
    elif statistic == "max":
        values = array.reshape(array.shape[0], -1).max(axis=1).astype(np.float64)
    else:
        raise ValueError(f"statistic must be 'mean' or 'max', got {statistic!r}")
    if top is not None and (int(top) != top or top < 1):
        raise ValueError(f"top must be None or a positive int, got {top!r}")
    order = np.argsort(-values, kind="stable")
    if top is not None:
        order = order[: int(top)]
    return order.astype(np.int64), values[order].astype(np.float32)


def channel_mean_map(activation, channels: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """(h, w) float32 mean over channels of one activation (C, h, w), optionally over ``channels`` only."""
    array = _chw(activation)
    if channels is not None:
        picked = np.asarray(channels, dtype=np.int64).ravel()
        if picked.size == 0:
            raise ValueError("channels is empty; pass None for all channels")
        bad = picked[(picked < 0) | (picked >= array.shape[0])]
        if bad.size:
            raise ValueError(f"channel {int(bad[0])} is out of range for an activation with {array.shape[0]} channels")
        array = array[picked]
    return array.mean(axis=0, dtype=np.float64).astype(np.float32)
