"""Penultimate features of a workspace's test images (what the t-SNE view embeds): one batched forward, kept in the
disk cache, so a restarted dashboard draws a stored t-SNE without running the model over the set again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from analysis.disk_cache import DiskCache, cache_key
from analysis.forward import ProgressFn, engine_for, forward_image_set
from gradcam_core import CamEngine

#: Bump when a change makes stored features wrong or different.
FEATURES_VERSION = 2


@dataclass(frozen=True)
class FeatureSet:
    """Penultimate features of some test images, with what the t-SNE's hover and colours need."""

    indices: np.ndarray  # (N,) int64 test indices
    features: np.ndarray  # (N, D) float32
    labels: np.ndarray  # (N,) int64 true classes
    predicted: np.ndarray  # (N,) int64
    confidence: np.ndarray  # (N,) float32 softmax probability of the predicted class
    source: str = "computed"  # "computed" or "disk"

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels


def dataset_id(workspace) -> str:
    """Names a workspace's test set: its workspace file (or name), size, and first and last item ids."""
    test_set = workspace.test_set
    n = len(test_set)
    ends = f"{test_set.item_id(0)}|{test_set.item_id(n - 1)}" if n else ""
    return f"{getattr(workspace, 'toml_path', None) or workspace.name}|{n}|{ends}"


def features_key(workspace, indices: np.ndarray) -> str:
    """Everything the features of ``indices`` depend on: model, data set, layer and the indices themselves."""
    return cache_key(FEATURES_VERSION, workspace.model_id, dataset_id(workspace), workspace.classifier_layer,
                     np.asarray(indices, dtype=np.int64))


def _cache(cache_dir: Path | str) -> DiskCache:
    return DiskCache(Path(cache_dir), "features")


def stored_features(workspace, indices: np.ndarray, cache_dir: Path | str) -> FeatureSet | None:
    """The features of ``indices`` if they are on disk; never runs the model."""
    indices = np.asarray(indices, dtype=np.int64)
    found = _cache(cache_dir).load(features_key(workspace, indices))
    if found is None or set(found.arrays) != {"features", "labels", "predicted", "confidence"}:
        return None
    arrays = found.arrays
    if any(len(a) != len(indices) for a in arrays.values()):
        return None
    return FeatureSet(indices=indices, features=arrays["features"].astype(np.float32),
                      labels=arrays["labels"].astype(np.int64), predicted=arrays["predicted"].astype(np.int64),
                      confidence=arrays["confidence"].astype(np.float32), source="disk")


def workspace_features(workspace, indices: np.ndarray, cache_dir: Path | str, *, engine: CamEngine | None = None,
                      progress: ProgressFn | None = None) -> FeatureSet:
    """Penultimate features of test images ``indices``: from disk, else one batched forward (stored for next
    time). ``engine``: the workspace's shared engine, when there is one."""
    indices = np.asarray(indices, dtype=np.int64)
    stored = stored_features(workspace, indices, cache_dir)
    if stored is not None:
        return stored
    result = forward_image_set(engine or engine_for(workspace.model), workspace.test_set, indices,
                               features_of=workspace.classifier_layer, progress=progress)
    computed = FeatureSet(indices=indices, features=result.features,
                          labels=np.asarray(workspace.test_set.labels, dtype=np.int64)[indices],
                          predicted=result.predicted, confidence=result.confidence.astype(np.float32))
    arrays = {name: getattr(computed, name) for name in ("features", "labels", "predicted", "confidence")}
    _cache(cache_dir).save(features_key(workspace, indices), arrays)
    return replace(computed, source="computed")
