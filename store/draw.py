"""The gallery's seeded 20-image draw, computed on a store without loading its labels and predictions.

Same semantics as ``dashboard/sampling.py`` (``sample_gallery``), applied to the store's rows in index order:
when the store has every image of the test set (no skipped files), ``draw(store, seed, f)`` equals
``sample_gallery(labels, preds, seed, f)``; a misclassified row is one whose label differs from pred there.
``numpy.random.Generator.choice`` over an array picks by position, with random draws that depend only on the
array's length — so the positions are drawn here from counts, and only the chosen rows' indices are fetched.
(``dashboard`` sits above ``store`` and cannot be imported from here; tests/store checks both agree.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

GALLERY_SIZE = 20
MIN_MISCLASSIFIED = 5
FILTER_ALL, FILTER_CORRECT, FILTER_WRONG = "all", "correct", "misclassified"
CLASS_FILTER_PREFIX = "class:"

#: count(condition, exclude) -> rows matching; nth(condition, exclude, positions) -> their indices, in order
Count = Callable[[str, int | None], int]
Nth = Callable[[str, int | None, Sequence[int]], np.ndarray]


def pool_condition(filter_name: str) -> str:
    """SQL condition of the rows a gallery filter admits."""
    if filter_name == FILTER_ALL:
        return "TRUE"
    if filter_name == FILTER_CORRECT:
        return "label = pred"
    if filter_name == FILTER_WRONG:
        return "label <> pred"
    if filter_name.startswith(CLASS_FILTER_PREFIX):
        try:
            return f"label = {int(filter_name[len(CLASS_FILTER_PREFIX):])}"
        except ValueError:
            pass
    raise ValueError(f"unknown gallery filter {filter_name!r}; use 'all', 'correct', 'misclassified' or "
                     "'class:<index>'")


def _lead(count: Count, nth: Nth, seed: int, filter_name: str) -> int | None:
    """``sampling.lead_index``: chosen from labels alone with ``default_rng([seed, 1])``."""
    if filter_name in (FILTER_CORRECT, FILTER_WRONG):
        return None
    condition = pool_condition(filter_name)
    size = count(condition, None)
    if not size:
        return None
    position = int(np.random.default_rng([int(seed), 1]).choice(size))
    return int(nth(condition, None, [position])[0])


def draw(count: Count, nth: Nth, is_wrong: Callable[[int], bool], seed: int, filter_name: str = FILTER_ALL,
         size: int = GALLERY_SIZE, min_misclassified: int = MIN_MISCLASSIFIED) -> np.ndarray:
    """Up to ``size`` distinct indices, deterministic in (rows, seed, filter); see ``sampling.sample_gallery``."""
    condition = pool_condition(filter_name)
    rng = np.random.default_rng(int(seed))
    lead = _lead(count, nth, seed, filter_name)
    head = [] if lead is None else [lead]
    room = max(size - len(head), 0)
    if filter_name != FILTER_ALL:
        pool_size = count(condition, lead)
        positions = rng.choice(pool_size, size=min(room, pool_size), replace=False) if pool_size else []
        return np.asarray([*head, *nth(condition, lead, positions)], dtype=np.int64)
    total_rows = count("TRUE", None)
    wrong_size = count("label <> pred", lead)
    right_size = count("label = pred", lead)
    lead_wrong = int(lead is not None and is_wrong(lead))
    total_wrong = wrong_size + lead_wrong
    natural = round(size * total_wrong / max(total_rows, 1))
    n_wrong = max(min(total_wrong, max(natural, min_misclassified), size) - lead_wrong, 0)
    n_right = min(right_size, room - n_wrong)
    n_wrong = min(wrong_size, room - n_right)
    wrong_positions = rng.choice(wrong_size, size=n_wrong, replace=False)
    right_positions = rng.choice(right_size, size=n_right, replace=False)
    rest = np.concatenate([nth("label <> pred", lead, wrong_positions),
                           nth("label = pred", lead, right_positions)]).astype(np.int64)
    rng.shuffle(rest)
    return np.asarray([*head, *rest], dtype=np.int64)
