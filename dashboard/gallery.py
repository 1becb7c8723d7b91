"""The explorer's gallery: a seeded random sample of the test split (pure numpy, no streamlit), and the sorted,
paginated views of a store (what each sort means, the filter as a ``store.RowFilter``).

``sample_gallery`` here and ``Store.sample`` (``store/draw.py``) draw the same 20 images from the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from store import RowFilter

GALLERY_SIZE = 20
# With the "all" filter the gallery always shows some misclassified images when the test split has any, even
# for an accurate model whose natural share would round to zero: the comparison is the point of the page.
MIN_MISCLASSIFIED = 5

FILTER_ALL, FILTER_CORRECT, FILTER_WRONG = "all", "correct", "misclassified"
CLASS_FILTER_PREFIX = "class:"


def class_filter(class_index: int) -> str:
    return f"{CLASS_FILTER_PREFIX}{int(class_index)}"


def filter_options(num_classes: int) -> list[str]:
    return [FILTER_ALL, FILTER_CORRECT, FILTER_WRONG, *(class_filter(c) for c in range(num_classes))]


def filter_pool(labels: np.ndarray, predicted: np.ndarray, filter_name: str) -> np.ndarray:
    """Test indices a filter admits, ascending."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if filter_name == FILTER_ALL:
        return np.arange(len(labels))
    if filter_name == FILTER_CORRECT:
        return np.flatnonzero(labels == predicted)
    if filter_name == FILTER_WRONG:
        return np.flatnonzero(labels != predicted)
    if filter_name.startswith(CLASS_FILTER_PREFIX):
        return np.flatnonzero(labels == int(filter_name[len(CLASS_FILTER_PREFIX):]))
    raise ValueError(f"unknown gallery filter {filter_name!r}; use one of {filter_options(0)[:3]} or 'class:<index>'")


def lead_index(labels: np.ndarray, seed: int, filter_name: str = FILTER_ALL) -> int | None:
    """The gallery's first image, chosen from the labels alone (no predictions needed), or None when the filter
    depends on predictions (correct / misclassified) or admits nothing.

    The page shows this image while the test split is still being classified, so the first heatmap does not wait
    for the whole-split forward pass.
    """
    labels = np.asarray(labels)
    if filter_name == FILTER_ALL:
        pool = np.arange(len(labels))
    elif filter_name.startswith(CLASS_FILTER_PREFIX):
        pool = np.flatnonzero(labels == int(filter_name[len(CLASS_FILTER_PREFIX):]))
    else:
        return None
    if not len(pool):
        return None
    return int(np.random.default_rng([int(seed), 1]).choice(pool))


def sample_gallery(
    labels: np.ndarray,
    predicted: np.ndarray,
    seed: int,
    filter_name: str = FILTER_ALL,
    size: int = GALLERY_SIZE,
    min_misclassified: int = MIN_MISCLASSIFIED,
) -> np.ndarray:
    """Up to ``size`` distinct test indices, deterministic in (labels, predictions, seed, filter).

    ``lead_index`` (when not None) comes first; the rest are drawn without replacement with
    ``np.random.default_rng(seed)``. With ``filter_name="all"`` and misclassified images in the split, at least
    ``min(min_misclassified, #misclassified)`` of them are in the sample (more when the model's error rate gives
    more), in random order among correct ones.
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    rng = np.random.default_rng(int(seed))
    lead = lead_index(labels, seed, filter_name)
    head = [] if lead is None else [lead]
    pool = filter_pool(labels, predicted, filter_name)
    if lead is not None:
        pool = pool[pool != lead]
    room = max(size - len(head), 0)
    if filter_name != FILTER_ALL:
        rest = rng.choice(pool, size=min(room, len(pool)), replace=False) if len(pool) else pool
        return np.asarray([*head, *rest], dtype=np.int64)
    wrong_mask = labels[pool] != predicted[pool]
    wrong, right = pool[wrong_mask], pool[~wrong_mask]
    lead_wrong = int(lead is not None and labels[lead] != predicted[lead])
    total_wrong = len(wrong) + lead_wrong
    natural = round(size * total_wrong / max(len(labels), 1))
    n_wrong = max(min(total_wrong, max(natural, min_misclassified), size) - lead_wrong, 0)
    n_right = min(len(right), room - n_wrong)
    n_wrong = min(len(wrong), room - n_right)
    rest = np.concatenate([
        rng.choice(wrong, size=n_wrong, replace=False),
        rng.choice(right, size=n_right, replace=False),
    ]).astype(np.int64)
    rng.shuffle(rest)
    return np.asarray([*head, *rest], dtype=np.int64)


# ------------------------------------------------------------------------------------------ sorted views
SORT_DRAW = "draw"
PAGE_SIZE = GALLERY_SIZE


@dataclass(frozen=True)
class SortMode:
    label: str
    column: str | None = None  # store column; None: the seeded draw
    descending: bool = False
    shows: str | None = None  # the value a tile's caption shows: "loss", "prob" or "margin"


SORT_MODES: dict[str, SortMode] = {
    SORT_DRAW: SortMode("Seeded draw of 20"),
    "loss": SortMode("Highest loss first", "loss", True, "loss"),
    "confidence": SortMode("Least confident first", "prob", False, "prob"),
    "confident": SortMode("Most confident first", "prob", True, "prob"),
    "margin": SortMode("Smallest margin first", "margin", False, "margin"),
    "index": SortMode("Test index", "index"),
}


@dataclass(frozen=True)
class ScoreFilter:
    """The sorted gallery's score bounds (inclusive): confidence range, largest margin, smallest loss."""

    min_prob: float = 0.0
    max_prob: float = 1.0
    max_margin: float = 1.0
    min_loss: float = 0.0

    @property
    def active(self) -> bool:
        return self != ScoreFilter()


def row_filter(filter_name: str, scores: ScoreFilter = ScoreFilter()) -> RowFilter:
    """The gallery filter ("all", "correct", "misclassified", "class:<k>") and score bounds as a store RowFilter."""
    outcome, label = "all", None
    if filter_name in (FILTER_CORRECT, FILTER_WRONG):
        outcome = filter_name
    elif filter_name.startswith(CLASS_FILTER_PREFIX):
        label = int(filter_name[len(CLASS_FILTER_PREFIX):])
    elif filter_name != FILTER_ALL:
        raise ValueError(f"unknown gallery filter {filter_name!r}; use one of {filter_options(0)[:3]} or "
                         "'class:<index>'")
    return RowFilter(
        outcome=outcome, label=label,
        min_prob=scores.min_prob if scores.min_prob > 0 else None,
        max_prob=scores.max_prob if scores.max_prob < 1 else None,
        max_margin=scores.max_margin if scores.max_margin < 1 else None,
        min_loss=scores.min_loss if scores.min_loss > 0 else None,
    )


def page_count(total: int, page_size: int = PAGE_SIZE) -> int:
    return max(1, -(-int(total) // page_size))
