"""Channel ranking of one layer's raw activation (C, h, w) for the activation-maps view: which channels respond
most to an image, and their mean map. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["channel_mean_map", "rank_channels"]


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
