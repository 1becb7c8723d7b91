"""Cached computations of the activation, t-SNE and analysis views. Keys are ids and strings (model id, workspace
key, sample key, indices, layer, parameters); the loaded workspace and tensors travel as ``_``-prefixed arguments.

- ``sample_activations``: every Conv2d's raw output for one test image from ONE no-grad forward, so switching
  layer, channel count or statistic recomputes nothing.
- ``split_features``: penultimate features (input of ``workspace.classifier_layer``) of the test split, or of a
  seeded subset, extracted in batches with a progress callback; kept in memory and on disk, so a restarted app
  does not run the model over the split again before it can show a cached t-SNE.
- ``embedding`` / ``peek_embedding``: ``analysis.embedding.cached_embedding`` (memory + disk), and a look-up
  that never computes, so the t-SNE view can draw a cached embedding at once and ask before a long computation.
- ``grid_cams``: Grad-CAM of a handful of test images at one layer from ONE batched engine call.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from analysis.embedding import EmbeddingResult, cached_embedding, feature_separability
from dashboard.workspaces import LoadedWorkspace
from gradcam_core import denormalise

CACHE_ENV = "GRADCAM_CACHE_DIR"
FEATURE_BATCH = 256
DEFAULT_MAX_POINTS = 2000
SUBSET_SEED = 0
ProgressFn = Callable[[float, str], None]


def cache_dir() -> Path:
    """Where embeddings and features are stored: ``$GRADCAM_CACHE_DIR`` or ~/.cache/gradcam-dashboard/embeddings."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "gradcam-dashboard" / "embeddings"


# ------------------------------------------------------------------------------------------------ activations
@st.cache_data(show_spinner=False, max_entries=4)
def sample_activations(model_id: str, sample_key: str, index: int, _loaded: LoadedWorkspace) -> dict[str, np.ndarray]:
    """layer -> (C, h, w) float32 raw Conv2d output (no gradient weighting) of test image ``index``, all layers from
    one forward. Bounded to 4 images: a ResNet-50's activations of one 224 px image are about 40 MB, and a
    recomputation is one forward pass."""
    tensor = _loaded.workspace.test_set.tensors([int(index)]).float()
    with _loaded.lock:
        captured = _loaded.engine.activations(tensor, None)
    return {layer: np.ascontiguousarray(maps[0]) for layer, maps in captured.items()}


def display_maps(maps: np.ndarray) -> np.ndarray:
    """Channel maps (K, h, w) -> [0, 1] on ONE scale for the whole grid (negative responses as 0), so a brighter
    cell is a stronger response; an all-zero grid stays zero."""
    clipped = np.clip(np.asarray(maps, dtype=np.float32), 0.0, None)
    top = float(clipped.max()) if clipped.size else 0.0
    return clipped / top if top > 0 else clipped


# ------------------------------------------------------------------------------------------------ features
def subset_indices(num_test: int, max_points: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """All test indices when ``max_points`` covers the split; else a seeded random subset, ascending (a random
    subset rather than the first ones: folder test sets are sorted by class)."""
    if max_points >= num_test:
        return np.arange(num_test, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_test, size=int(max_points), replace=False)).astype(np.int64)


@dataclass(frozen=True)
class FeatureSet:
    """Penultimate features of some test images, with what the t-SNE's hover and colours need."""

    indices: np.ndarray  # (N,) int64 test indices
    features: np.ndarray  # (N, D) float32
    labels: np.ndarray  # (N,) int64 true classes
    predicted: np.ndarray  # (N,) int64
    confidence: np.ndarray  # (N,) float32 softmax probability of the predicted class
    source: str = "computed"  # "computed", "memory" or "disk"

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels


def dataset_key(loaded: LoadedWorkspace) -> str:
    """Names the test split: workspace key, size, and the first and last item ids."""
    test_set = loaded.workspace.test_set
    n = len(test_set)
    ends = f"{test_set.item_id(0)}|{test_set.item_id(n - 1)}" if n else ""
    return f"{loaded.key}|{n}|{ends}"


def features_key(loaded: LoadedWorkspace, indices: np.ndarray) -> str:
    chosen = hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]
    return f"{loaded.model_id}|{dataset_key(loaded)}|{loaded.workspace.classifier_layer}|{chosen}"


_FEATURES: OrderedDict[str, FeatureSet] = OrderedDict()
_FEATURES_SIZE = 8
_FEATURES_LOCK = threading.Lock()


def clear_feature_memory() -> None:
    with _FEATURES_LOCK:
        _FEATURES.clear()


def _features_path(key: str) -> Path:
    return cache_dir() / f"features-{hashlib.sha256(key.encode()).hexdigest()[:40]}.npz"


def _read_features(path: Path, key: str, indices: np.ndarray) -> FeatureSet | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"]) != key or not np.array_equal(stored["indices"], indices):
                return None
            return FeatureSet(indices=indices, features=np.array(stored["features"], dtype=np.float32),
                                labels=np.array(stored["labels"], dtype=np.int64),
                                predicted=np.array(stored["predicted"], dtype=np.int64),
                                confidence=np.array(stored["confidence"], dtype=np.float32), source="disk")
    except Exception:  # missing, truncated or foreign file: recompute and overwrite
        return None


def _write_features(path: Path, key: str, result: FeatureSet) -> None:
    """Atomically (temp file + rename); a read-only cache folder only costs a recomputation after a restart."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, key=np.array(key), indices=result.indices, features=result.features,
                     labels=result.labels, predicted=result.predicted, confidence=result.confidence)
        os.replace(tmp, path)
    except OSError:
        return


def cached_features(loaded: LoadedWorkspace, indices: np.ndarray) -> FeatureSet | None:
    """The features of ``indices`` if they are in memory or on disk; never runs the model."""
    key = features_key(loaded, indices)
    with _FEATURES_LOCK:
        hit = _FEATURES.get(key)
    if hit is not None:
        return FeatureSet(**{**hit.__dict__, "source": "memory"})
    stored = _read_features(_features_path(key), key, indices)
    if stored is not None:
        _remember(key, stored)
    return stored


def _remember(key: str, result: FeatureSet) -> None:
    with _FEATURES_LOCK:
        _FEATURES[key] = result
        _FEATURES.move_to_end(key)
        while len(_FEATURES) > _FEATURES_SIZE:
            _FEATURES.popitem(last=False)


def split_features(loaded: LoadedWorkspace, indices: np.ndarray, progress: ProgressFn | None = None) -> FeatureSet:
    """Penultimate features of test images ``indices`` (cached; on a miss: batched no-grad forwards under the
    model's lock, ``progress(fraction, message)`` after every batch)."""
    indices = np.asarray(indices, dtype=np.int64)
    found = cached_features(loaded, indices)
    if found is not None:
        return found
    workspace = loaded.workspace
    parts, logits_parts = [], []
    for start in range(0, len(indices), FEATURE_BATCH):
        batch = workspace.test_set.tensors([int(i) for i in indices[start:start + FEATURE_BATCH]]).float()
        with loaded.lock:
            features, logits = loaded.engine.features(batch, workspace.classifier_layer, batch_size=FEATURE_BATCH)
        parts.append(features)
        logits_parts.append(logits)
        if progress is not None:
            done = min(start + FEATURE_BATCH, len(indices))
            progress(done / len(indices), f"Features of {done} of {len(indices)} test images")
    logits = np.concatenate(logits_parts).astype(np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    predicted = probabilities.argmax(axis=1)
    result = FeatureSet(
        indices=indices, features=np.concatenate(parts).astype(np.float32),
        labels=np.asarray(workspace.test_set.labels, dtype=np.int64)[indices], predicted=predicted.astype(np.int64),
        confidence=probabilities[np.arange(len(indices)), predicted].astype(np.float32),
    )
    key = features_key(loaded, indices)
    _write_features(_features_path(key), key, result)
    _remember(key, result)
    return result


# ------------------------------------------------------------------------------------------------ t-SNE
class _NotCached(Exception):
    pass


def embedding_key(loaded: LoadedWorkspace) -> str:
    return f"{loaded.model_id}|{dataset_key(loaded)}|{loaded.workspace.classifier_layer}"


def embedding(loaded: LoadedWorkspace, features: FeatureSet, perplexity: float, seed: int = 0,
              progress: ProgressFn | None = None) -> EmbeddingResult:
    """PCA to 50 dims then seeded t-SNE, remembered in memory and on disk by ``analysis.embedding``."""
    return cached_embedding(features.features, cache_dir(), embedding_key(loaded), progress=progress,
                            perplexity=float(perplexity), seed=int(seed), pca_dims=50)


def peek_embedding(loaded: LoadedWorkspace, features: FeatureSet, perplexity: float,
                   seed: int = 0) -> EmbeddingResult | None:
    """The cached embedding, or None when it would have to be computed (nothing is computed).

    ``cached_embedding`` reports progress 1.0 on a memory or disk hit and a lower fraction before it starts a
    computation; the latter stops it here."""

    def refuse(fraction: float, _message: str) -> None:
        if fraction < 1.0:
            raise _NotCached

    try:
        return embedding(loaded, features, perplexity, seed, progress=refuse)
    except _NotCached:
        return None


@st.cache_data(show_spinner=False, max_entries=16)
def separability(features_id: str, _features: FeatureSet) -> dict:
    """k-NN accuracy and silhouette of the classes in feature space (not in the 2-D embedding)."""
    return feature_separability(_features.features, _features.labels, seed=0)


# ------------------------------------------------------------------------------------------------ Grad-CAM grids
@dataclass
class GridCams:
    indices: list[int]
    pixels: list[np.ndarray]  # (H, W, 3) uint8 each: the input as the model sees it
    cams: np.ndarray  # (K, h, w) float32 in [0, 1]
    targets: np.ndarray  # (K,) the class each map explains
    confidence: np.ndarray  # (K,) softmax probability of the explained class


@st.cache_data(show_spinner=False, max_entries=32)
def grid_cams(model_id: str, workspace_key: str, indices: tuple[int, ...], layer: str, target: str,
              _loaded: LoadedWorkspace) -> GridCams:
    """Grad-CAM at ``layer`` of several test images from ONE batched engine call. ``target``: "pred" explains
    each image's predicted class (what the model looked at when it decided), "true" its true class."""
    workspace = _loaded.workspace
    if not indices:
        return GridCams([], [], np.zeros((0, 1, 1), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))
    tensors = workspace.test_set.tensors(list(indices)).float()
    targets = None if target == "pred" else [int(workspace.test_set.label(i)) for i in indices]
    with _loaded.lock:
        result = _loaded.engine.explain(tensors, layers=[layer], targets=targets, methods=("gradcam",))
    logits = result.logits.astype(np.float64)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    explained = np.asarray(result.targets, dtype=np.int64)
    return GridCams(
        indices=list(indices),
        pixels=[denormalise(tensors[i], workspace.mean, workspace.std) for i in range(len(indices))],
        cams=np.asarray(result.cams["gradcam"][layer], dtype=np.float32),
        targets=explained,
        confidence=probabilities[np.arange(len(indices)), explained].astype(np.float32),
    )


def cell_examples(labels: Sequence[int], predicted: Sequence[int], true_class: int, pred_class: int,
                  limit: int) -> tuple[np.ndarray, int]:
    """Up to ``limit`` test indices of one confusion-matrix cell (the first ones), and how many there are."""
    from analysis.classification import cell_indices

    found = cell_indices(labels, predicted, true_class, pred_class)
    return found[:limit], int(found.size)
