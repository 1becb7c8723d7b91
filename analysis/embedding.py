"""t-SNE of penultimate-layer features for the dashboard's embedding view, cached on disk, and a feature-space
separability summary (k-NN accuracy, silhouette).

Pipeline of ``embed_tsne``: centre (no per-dimension scaling by default) -> PCA to ``pca_dims`` -> openTSNE with
perplexity affinities on exact neighbours, PCA initialisation, Barnes-Hut gradients and a shortened schedule
(Annoy neighbours and FFT gradients from 10,000 points). Why each choice: the notes on ``TSNE_SETTINGS`` below;
the comparison with scikit-learn: ``python -m bench.tsne_bench``.

numpy + scikit-learn + openTSNE (imported when used); no torch and no streamlit here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.disk_cache import DiskCache, cache_key

__all__ = [
    "TSNE_SETTINGS",
    "EmbeddingResult",
    "cached_embedding",
    "embed_tsne",
    "feature_separability",
    "pca_reduce",
    "stored_embedding",
]

ProgressFn = Callable[[float, str], None]

# Bump when a change makes old cached embeddings wrong or different (settings, pipeline, file layout).
CACHE_VERSION = 1

#: The t-SNE settings ``embed_tsne`` uses unless overridden. Measured on 2 shared cores with bench/tsne_bench.py
#: and side-by-side runs (CPU seconds, as other jobs made wall times noisy), on synthetic CNN-like features:
#:
#: - 125 early-exaggeration + 250 normal iterations instead of openTSNE's 250 + 500 (scikit-learn: 250 + 750):
#:   with openTSNE's learning rate N / exaggeration the layout has settled by then. Trustworthiness stayed within
#:   0.002 of the long schedule at 2k and 5k points (2-D 5-NN accuracy within 0.025) at half the time.
#: - Barnes-Hut with theta 0.8 below 10,000 points: 1.4-1.5x less CPU than theta 0.5 and 1.4-2x less than FFT
#:   interpolation (whose grid cost does not shrink with N) at 2k-5k points, at the same trustworthiness; the
#:   layout comes out about 15% more compact. From 10,000 points openTSNE's own rule picks FFT.
#: - Exact neighbours (scikit-learn, BLAS) up to 10,000 points: 2-4x faster than Annoy at 2k-5k points, and exact.
#: - One thread unless the caller asks for more (``n_jobs=2``): two threads were 1.4x (2k) to 1.65x (5k) faster on
#:   idle cores, but 2x slower while other jobs kept the cores busy, and 25-30x slower (400 points: 0.9 s -> 25 s)
#:   on 2 cores shared with a load average of 8, because OpenMP threads spin waiting for each other. A single
#:   thread is never far from the best and never that far from it; the result does not depend on the thread count
#:   (tested). An earlier version guessed the idle cores from /proc; one predictable default is simpler.
TSNE_SETTINGS: dict[str, Any] = {
    "early_exaggeration": 12.0,
    "early_exaggeration_iter": 125,
    "n_iter": 250,
    "learning_rate": "auto",  # openTSNE: N / exaggeration in each phase (Belkina et al. 2019)
    "negative_gradient_method": "auto",  # "bh" below 10,000 points, else "fft"
    "theta": 0.8,
    "exact_neighbors_max_n": 10_000,
    "n_jobs": 1,
}


@dataclass(frozen=True)
class EmbeddingResult:
    """A 2-D embedding of N samples.

    ``xy`` (N, 2) float32 in sample order; ``seconds``: wall time of the computation (the original computation's
    time also when served from a cache); ``params``: every setting that shaped the result (after defaults and
    clipping, e.g. the perplexity actually used); ``timings``: seconds per stage; ``pca_variance``: fraction of
    the (centred) feature variance the PCA kept; ``source``: "computed" or "disk".
    """

    xy: np.ndarray
    seconds: float
    params: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    pca_variance: float = 1.0
    source: str = "computed"


# ------------------------------------------------------------------------------------------------ inputs
def _check_features(features: Any, min_samples: int = 1) -> np.ndarray:
    array = np.asarray(features)
    if array.ndim != 2:
        hint = "; flatten per-sample features to (N, D) first" if array.ndim > 2 else ""
        raise ValueError(f"features must be a 2-D array (N, D), got shape {array.shape}{hint}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"features must be numeric, got dtype {array.dtype}")
    if array.shape[0] < min_samples or array.shape[1] < 1:
        raise ValueError(f"features has shape {array.shape}; need at least {min_samples} samples and 1 dimension")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ValueError(f"features contain NaN or infinite values (first in row {bad})")
    return array


def _report(progress: ProgressFn | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)


# ------------------------------------------------------------------------------------------------ PCA
def pca_reduce(features: np.ndarray, dims: int | None = 50, standardize: bool = False,
               seed: int = 0) -> tuple[np.ndarray, float]:
    """Centre (and with ``standardize``, scale each dimension to unit variance), then project onto the top ``dims``
    principal components. Returns (float32 (N, k), fraction of variance kept), k = min(dims, D, N).

    When ``dims`` is None or not below D the data are only centred: a rotation would not change any distance.
    """
    x = _check_features(features).astype(np.float64)
    x = x - x.mean(axis=0)
    if standardize:
        std = x.std(axis=0)
        x = x / np.where(std > 0, std, 1.0)
    n, d = x.shape
    if dims is None or dims >= d:
        return x.astype(np.float32), 1.0
    if int(dims) != dims or dims < 1:
        raise ValueError(f"pca_dims must be a positive int or None, got {dims!r}")
    k = min(int(dims), n)
    from sklearn.decomposition import PCA

    # Eigen-decomposing the D x D covariance is 5-10x faster than an SVD of the N x D data for the usual widths
    # (0.02-0.1 s for 5,000 x 256-512); for very wide features a randomized SVD is cheaper.
    solver = "covariance_eigh" if d <= 1024 else "randomized"
    pca = PCA(n_components=k, svd_solver=solver, random_state=seed)
    reduced = pca.fit_transform(x)
    kept = float(pca.explained_variance_ratio_.sum())
    return reduced.astype(np.float32), kept


# ------------------------------------------------------------------------------------------------ t-SNE
def _resolve_settings(n_samples: int, perplexity: float, overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(TSNE_SETTINGS))
    if unknown:
        raise TypeError(f"unknown t-SNE setting(s) {unknown}; known: {sorted(TSNE_SETTINGS)}")
    settings = {**TSNE_SETTINGS, **overrides}
    if not perplexity > 0:
        raise ValueError(f"perplexity must be positive, got {perplexity!r}")
    # openTSNE uses 3 * perplexity neighbours, which must be fewer than the other samples.
    settings["perplexity"] = float(min(perplexity, (n_samples - 1) / 3))
    settings["neighbors"] = "exact" if n_samples <= settings.pop("exact_neighbors_max_n") else "annoy"
    if settings["negative_gradient_method"] == "auto":
        settings["negative_gradient_method"] = "bh" if n_samples < 10_000 else "fft"
    if int(settings["n_jobs"]) != settings["n_jobs"] or settings["n_jobs"] < 1:
        raise ValueError(f"n_jobs must be a positive whole number of threads, got {settings['n_jobs']!r}")
    return settings


def _initial_layout(reduced: np.ndarray, seed: int) -> np.ndarray:
    """openTSNE's PCA initialisation (top two components, std 1e-4, seeded jitter); one column padded with zeros
    when the features are 1-D."""
    import openTSNE.initialization as init

    if reduced.shape[1] >= 2:
        return init.pca(reduced, random_state=seed)
    layout = np.hstack([reduced[:, :1], np.zeros((reduced.shape[0], 1))]).astype(np.float64)
    return init.jitter(init.rescale(layout), inplace=True, random_state=seed)


def embed_tsne(
    features: np.ndarray,
    perplexity: float = 30.0,
    seed: int = 0,
    pca_dims: int | None = 50,
    progress: ProgressFn | None = None,
    *,
    standardize: bool = False,
    **tsne_settings: Any,
) -> EmbeddingResult:
    """2-D t-SNE of ``features`` (N, D), e.g. the penultimate features from ``CamEngine.features``.

    Deterministic: the same features, seed and settings give the same bytes. ``perplexity`` is lowered to
    (N - 1) / 3 for small N (``params["perplexity"]`` says what was used). ``pca_dims``: PCA first (None: no PCA).
    ``standardize``: scale every feature dimension to unit variance before the PCA. Off by default: the dimensions
    of one layer share a scale, and their variance is signal (the channels the classifier relies on vary most),
    while z-scoring inflates nearly-dead ReLU channels to the same weight as informative ones.
    ``progress(fraction, message)`` is called as the stages advance. ``tsne_settings`` override ``TSNE_SETTINGS``.
    """
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    start = time.perf_counter()
    x = _check_features(features, min_samples=4)
    n = x.shape[0]
    if not np.any(x != x[0]):
        raise ValueError(f"all {n} feature vectors are identical, so they have no neighbourhoods to embed; "
                         "check that the features come from the right layer of a working model")
    settings = _resolve_settings(n, perplexity, tsne_settings)
    # BLAS and OpenMP pools get the same thread count as openTSNE: on busy cores, extra threads that spin while
    # waiting for each other made the PCA and the neighbour search up to 10x slower.
    with threadpool_limits(limits=settings["n_jobs"]):
        xy, kept, reduced_dims, timings = _run_tsne(x, settings, seed, pca_dims, standardize, progress)
    params = {
        **settings,
        "seed": int(seed),
        "pca_dims": None if pca_dims is None else int(pca_dims),
        "pca_dims_used": int(reduced_dims),
        "standardize": bool(standardize),
        "n_samples": int(n),
        "n_features": int(x.shape[1]),
        "openTSNE": _opentsne_version(),
    }
    return EmbeddingResult(xy=xy, seconds=time.perf_counter() - start, params=params, timings=timings,
                           pca_variance=kept)


def _opentsne_version() -> str:
    import openTSNE

    return openTSNE.__version__


def _run_tsne(x: np.ndarray, settings: dict[str, Any], seed: int, pca_dims: int | None, standardize: bool,
              progress: ProgressFn | None) -> tuple[np.ndarray, float, int, dict[str, float]]:
    import openTSNE

    n = x.shape[0]
    timings: dict[str, float] = {}

    _report(progress, 0.0, f"PCA of {n} x {x.shape[1]} features")
    t0 = time.perf_counter()
    reduced, kept = pca_reduce(x, pca_dims, standardize, seed)
    timings["pca"] = time.perf_counter() - t0

    _report(progress, 0.05, f"neighbour affinities (perplexity {settings['perplexity']:g})")
    t0 = time.perf_counter()
    affinities = openTSNE.affinity.PerplexityBasedNN(
        reduced, perplexity=settings["perplexity"], method=settings["neighbors"], n_jobs=settings["n_jobs"],
        random_state=seed,
    )
    timings["affinities"] = time.perf_counter() - t0

    ee_iter, main_iter = int(settings["early_exaggeration_iter"]), int(settings["n_iter"])
    total_iter = max(ee_iter + main_iter, 1)
    done = [0]

    def on_iterations(iteration: int, _error: float, _embedding: np.ndarray) -> bool:
        _report(progress, 0.15 + 0.85 * (done[0] + iteration) / total_iter,
                f"t-SNE iteration {done[0] + iteration} of {total_iter}")
        return False

    tsne = openTSNE.TSNE(
        perplexity=settings["perplexity"],
        early_exaggeration=settings["early_exaggeration"],
        learning_rate=settings["learning_rate"],
        negative_gradient_method=settings["negative_gradient_method"],
        theta=settings["theta"],
        n_jobs=settings["n_jobs"],
        random_state=seed,
        callbacks=on_iterations if progress is not None else None,
        callbacks_every_iters=25,
    )
    t0 = time.perf_counter()
    embedding = tsne.prepare_initial(reduced, affinities=affinities, initialization=_initial_layout(reduced, seed))
    if ee_iter:
        embedding.optimize(ee_iter, exaggeration=tsne.early_exaggeration, momentum=tsne.initial_momentum,
                           inplace=True, propagate_exception=True)
    done[0] = ee_iter
    if main_iter:
        embedding.optimize(main_iter, exaggeration=tsne.exaggeration, momentum=tsne.final_momentum,
                           inplace=True, propagate_exception=True)
    timings["optimize"] = time.perf_counter() - t0
    xy = np.asarray(embedding, dtype=np.float32).copy()
    if not np.isfinite(xy).all():
        raise RuntimeError(f"t-SNE of {n} samples diverged (non-finite coordinates) with settings {settings}; "
                           "try a lower learning_rate or check the features for extreme values")
    _report(progress, 1.0, "t-SNE done")
    return xy, kept, reduced.shape[1], timings


# ------------------------------------------------------------------------------------------------ cache
def _tsne_cache(cache_dir: Path | str) -> DiskCache:
    return DiskCache(Path(cache_dir), "tsne")


def _tsne_key(features: np.ndarray, key: str, params: dict[str, Any]) -> str:
    # The defaults are part of the key, so changing TSNE_SETTINGS in a later version does not serve old layouts.
    return cache_key(CACHE_VERSION, str(key), params, TSNE_SETTINGS, features)


def stored_embedding(features: np.ndarray, cache_dir: Path | str, key: str, **params: Any) -> EmbeddingResult | None:
    """What ``cached_embedding`` with the same arguments would return if it is on disk; None otherwise. Never
    computes, so a page can draw a stored layout at once and ask before a long computation."""
    x = _check_features(features, min_samples=4)
    found = _tsne_cache(cache_dir).load(_tsne_key(x, key, params))
    xy = None if found is None else found.arrays.get("xy")
    if xy is None or xy.shape != (x.shape[0], 2) or not np.isfinite(xy).all():
        return None
    meta = found.meta
    try:
        return EmbeddingResult(xy=xy.astype(np.float32), seconds=float(meta["seconds"]), params=dict(meta["params"]),
                               timings={k: float(v) for k, v in meta["timings"].items()},
                               pca_variance=float(meta["pca_variance"]), source="disk")
    except (KeyError, TypeError, ValueError, AttributeError):  # a file of an older layout: recompute
        return None


def cached_embedding(features: np.ndarray, cache_dir: Path | str, key: str, progress: ProgressFn | None = None,
                     **params: Any) -> EmbeddingResult:
    """``embed_tsne(features, **params)``, stored in ``cache_dir`` as ``tsne-<hash>.npz``.

    The hash covers ``key`` (e.g. model id + data set + layer), the parameters, the current default settings and
    the features' bytes, so a different model, layer or setting never gets a stale result. A file that cannot be
    read is recomputed and overwritten; a folder that cannot be written costs a RuntimeWarning and a recomputation
    next time. ``result.source`` says where it came from: "computed" or "disk".
    """
    x = _check_features(features, min_samples=4)
    stored = stored_embedding(x, cache_dir, key, **params)
    if stored is not None:
        _report(progress, 1.0, "t-SNE from the disk cache")
        return stored
    result = embed_tsne(x, progress=progress, **params)
    meta = {"seconds": result.seconds, "params": result.params, "timings": result.timings,
            "pca_variance": result.pca_variance}
    _tsne_cache(cache_dir).save(_tsne_key(x, key, params), {"xy": result.xy}, meta)
    return result


# ------------------------------------------------------------------------------------------------ separability
def feature_separability(features: np.ndarray, labels: np.ndarray, seed: int = 0, k: int = 5,
                         max_silhouette_samples: int = 5000) -> dict[str, Any]:
    """How well the classes separate in feature space (not in the 2-D embedding).

    - ``knn_accuracy``: leave-one-out k-NN accuracy (each sample voted on by its k nearest other samples,
      Euclidean; a tied vote goes to the tied class of the nearest neighbour). ``knn_chance``: the accuracy of
      always answering the most frequent class, for reference.
    - ``silhouette``: mean silhouette coefficient over the classes, in [-1, 1] (NaN with fewer than 2 classes or
      when every sample is its own class); above ``max_silhouette_samples`` it is estimated on a seeded
      random subset of that size.
    """
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import NearestNeighbors

    x = _check_features(features, min_samples=2)
    y = np.asarray(labels)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels has shape {y.shape}; expected ({x.shape[0]},), one per feature row")
    _, y = np.unique(y, return_inverse=True)
    n, n_classes = x.shape[0], int(y.max()) + 1
    k_used = int(min(k, n - 1))
    neighbours = NearestNeighbors(n_neighbors=k_used).fit(x).kneighbors(return_distance=False)
    votes = y[neighbours]  # (n, k), nearest first
    support = (votes[:, :, None] == votes[:, None, :]).sum(axis=2)  # votes for each neighbour's class
    first_winner = (support == support.max(axis=1, keepdims=True)).argmax(axis=1)  # nearest of the winners
    predicted = votes[np.arange(n), first_winner]
    knn_accuracy = float(np.mean(predicted == y))

    silhouette = float("nan")
    if 2 <= n_classes <= n - 1:
        sample = None if n <= max_silhouette_samples else max_silhouette_samples
        silhouette = float(silhouette_score(x, y, sample_size=sample, random_state=seed))
    return {
        "knn_accuracy": knn_accuracy,
        "knn_k": k_used,
        "knn_chance": float(np.bincount(y).max() / n),
        "silhouette": silhouette,
        "silhouette_samples": int(min(n, max_silhouette_samples)),
        "n_samples": int(n),
        "n_classes": n_classes,
    }
