"""The store's 2-D map of the embeddings: openTSNE fitted on up to ``FIT_MAX`` points, the rest placed into the
fitted map by ``TSNEEmbedding.prepare_partial`` (each at the median of its nearest fitted neighbours).

Why openTSNE and not UMAP: openTSNE is already a dependency (the dashboard's t-SNE view), it places new points
into a fitted map, and it is deterministic for a seed; umap-learn is not installed here, so it could not be
measured against it. The pipeline and settings follow the dashboard's t-SNE (``gradcam_core.embedding``, moving
to ``analysis.embedding``): centre, PCA to 50 dims, shortened schedule, Barnes-Hut theta 0.8 below 10,000 points,
FFT above; exact neighbours up to 10,000, Annoy above. TODO(lead): with ``analysis/`` merged, take the numbers
from ``analysis.embedding.TSNE_SETTINGS`` instead of this copy. This module calls openTSNE directly because
``embed_tsne`` does not return the fitted map that placing new points needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Most points the t-SNE is fitted on; the others are placed into the fitted map.
FIT_MAX = 100_000
PCA_DIMS = 50
SETTINGS: dict[str, Any] = {
    "perplexity": 30.0,
    "early_exaggeration": 12.0,
    "early_exaggeration_iter": 125,
    "n_iter": 250,
    "learning_rate": "auto",
    "theta": 0.8,
    "exact_neighbors_max_n": 10_000,
    "bh_max_n": 10_000,
}
#: Fitted neighbours whose median position places a new point.
PLACE_NEIGHBOURS = 25
#: Below this many points there are no neighbourhoods to speak of: the map is the first two PCA components.
MIN_TSNE_POINTS = 10


@dataclass
class FittedMap:
    """A fitted 2-D map: the PCA (mean, components) and the openTSNE embedding (None for PCA-only maps)."""

    mean: np.ndarray
    components: np.ndarray | None
    embedding: Any
    xy: np.ndarray
    params: dict[str, Any]

    def reduce(self, features: np.ndarray) -> np.ndarray:
        centred = features.astype(np.float64) - self.mean
        return centred if self.components is None else centred @ self.components.T

    def place(self, features: np.ndarray) -> np.ndarray:
        """(n, 2) float32 coordinates of new points in this map."""
        if len(features) == 0:
            return np.zeros((0, 2), np.float32)
        reduced = self.reduce(features)
        if self.embedding is None:
            return _pad_to_2d(reduced)
        # prepare_partial puts each point at the median of its 25 nearest fitted neighbours. transform() then
        # optimises 250 more iterations: 5x the CPU time (0.8 vs 0.15 ms a point) to move points by ~2% of the
        # map's spread (measured on 5,000 + 2,000 clustered 512-d points), which matters at 10M points.
        partial = self.embedding.prepare_partial(reduced, initialization="median", k=PLACE_NEIGHBOURS)
        return np.asarray(partial, dtype=np.float32).copy()


def _pad_to_2d(reduced: np.ndarray) -> np.ndarray:
    out = np.zeros((len(reduced), 2), np.float32)
    out[:, : min(2, reduced.shape[1])] = reduced[:, :2]
    return out


def _pca(features: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(mean, components or None, reduced) — PCA to PCA_DIMS, or only centring when that is narrower already."""
    x = features.astype(np.float64)
    mean = x.mean(axis=0)
    if x.shape[1] <= PCA_DIMS:
        return mean, None, x - mean
    from sklearn.decomposition import PCA

    k = min(PCA_DIMS, x.shape[0])
    pca = PCA(n_components=k, svd_solver="covariance_eigh" if x.shape[1] <= 1024 else "randomized",
              random_state=seed).fit(x - mean)
    return mean, pca.components_.astype(np.float64), (x - mean) @ pca.components_.T


def fit_map(features: np.ndarray, seed: int = 0, n_jobs: int | None = None) -> FittedMap:
    """Fit the 2-D map on ``features`` (n, D); ``xy`` of the result is their coordinates."""
    import openTSNE

    features = np.asarray(features, dtype=np.float32)
    n = len(features)
    mean, components, reduced = _pca(features, seed)
    params = {"method": "openTSNE", "fit_points": n, "pca_dims": int(reduced.shape[1]) if n else 0, "seed": seed}
    if n < MIN_TSNE_POINTS or not np.any(reduced != reduced[:1]):
        return FittedMap(mean, components, None, _pad_to_2d(reduced), {**params, "method": "pca"})
    # One thread below 10,000 points: on busy cores OpenMP threads spin waiting for each other (2 threads took
    # 4x the CPU time of one for 2,000 points here); FFT gradients for bigger maps do use more cores.
    n_jobs = n_jobs or (1 if n < SETTINGS["bh_max_n"] else max(1, min(8, os.cpu_count() or 1)))
    perplexity = float(min(SETTINGS["perplexity"], (n - 1) / 3))
    tsne = openTSNE.TSNE(
        perplexity=perplexity,
        early_exaggeration=SETTINGS["early_exaggeration"],
        early_exaggeration_iter=SETTINGS["early_exaggeration_iter"],
        n_iter=SETTINGS["n_iter"],
        learning_rate=SETTINGS["learning_rate"],
        theta=SETTINGS["theta"],
        negative_gradient_method="bh" if n < SETTINGS["bh_max_n"] else "fft",
        neighbors="exact" if n <= SETTINGS["exact_neighbors_max_n"] else "annoy",
        n_jobs=n_jobs,
        random_state=seed,
    )
    embedding = tsne.fit(reduced)
    xy = np.asarray(embedding, dtype=np.float32).copy()
    if not np.isfinite(xy).all():
        raise RuntimeError(f"the t-SNE of {n} embeddings diverged (non-finite coordinates); check the embedding "
                           "column for extreme values")
    return FittedMap(mean, components, embedding, xy, {**params, "perplexity": perplexity, **SETTINGS})


def fit_subset(row_count: int, fit_max: int = FIT_MAX, seed: int = 0) -> np.ndarray:
    """Row positions (ascending) the map is fitted on: all rows, or a seeded sample of ``fit_max``."""
    if row_count <= fit_max:
        return np.arange(row_count)
    return np.sort(np.random.default_rng(seed).choice(row_count, size=fit_max, replace=False))
