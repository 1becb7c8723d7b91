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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from analysis.disk_cache import default_cache_dir
from analysis.embedding import EmbeddingResult, cached_embedding, feature_separability, stored_embedding
from analysis.features import FeatureSet, dataset_id, stored_features, workspace_features
from dashboard.workspaces import LoadedWorkspace
from gradcam_core import denormalise, softmax

DEFAULT_MAX_POINTS = 2000
SUBSET_SEED = 0
ProgressFn = Callable[[float, str], None]


def cache_dir() -> Path:
    """Where embeddings and features are stored: ``$GRADCAM_CACHE_DIR`` or ~/.cache/gradcam-dashboard/embeddings."""
    return default_cache_dir()


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


def cached_features(loaded: LoadedWorkspace, indices: np.ndarray) -> FeatureSet | None:
    """The features of ``indices`` if they are on disk; never runs the model."""
    return stored_features(loaded.workspace, indices, cache_dir())


def split_features(loaded: LoadedWorkspace, indices: np.ndarray, progress: ProgressFn | None = None) -> FeatureSet:
    """Penultimate features of test images ``indices``: from disk, else batched no-grad forwards on the shared
    engine, ``progress(fraction, message)`` after every batch."""
    return workspace_features(loaded.workspace, indices, cache_dir(), engine=loaded.engine, progress=progress)


# ------------------------------------------------------------------------------------------------ t-SNE
def embedding_key(loaded: LoadedWorkspace) -> str:
    workspace = loaded.workspace
    return f"{loaded.model_id}|{dataset_id(workspace)}|{workspace.classifier_layer}"


def embedding(loaded: LoadedWorkspace, features: FeatureSet, perplexity: float, seed: int = 0,
              progress: ProgressFn | None = None) -> EmbeddingResult:
    """PCA to 50 dims then seeded t-SNE, stored on disk by ``analysis.embedding``."""
    return cached_embedding(features.features, cache_dir(), embedding_key(loaded), progress=progress,
                            perplexity=float(perplexity), seed=int(seed), pca_dims=50)


def peek_embedding(loaded: LoadedWorkspace, features: FeatureSet, perplexity: float,
                   seed: int = 0) -> EmbeddingResult | None:
    """The stored embedding, or None when it would have to be computed (nothing is computed)."""
    return stored_embedding(features.features, cache_dir(), embedding_key(loaded), perplexity=float(perplexity),
                            seed=int(seed), pca_dims=50)


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
    probabilities = softmax(result.logits, axis=1)
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
