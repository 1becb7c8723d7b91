"""t-SNE benchmark: ``embed_tsne`` against scikit-learn's default ``TSNE(random_state=0)``, side by side.

    python -m bench.tsne_bench            # N = 2,000 and 5,000 on two synthetic feature sets, plus sklearn digits
    python -m bench.tsne_bench --quick    # tiny N, a few seconds: checks the script runs

Both get the same PCA-50 input. Our time is the whole ``embed_tsne`` call (its own PCA included); scikit-learn's
starts from the PCA output. Quality: trustworthiness (``sklearn.manifold.trustworthiness``, n_neighbors=10) of the
2-D layout against the PCA-50 input, and the 5-fold 5-NN accuracy of the class labels in 2-D. Wall time is what a
user waits; CPU time (user + system of this process) is less disturbed when other jobs share the cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

# The data sets: features shaped like a trained CNN's penultimate layer (post-ReLU, low intrinsic dimension,
# classes with different spreads and sizes, per-image activation strength), not well-separated blobs.
FEATURE_SETS = {
    # 10 classes; 5-NN accuracy in feature space ~0.97, like the test set of a decent classifier
    "clustered": {"classes": 10, "groups": 10, "group_sep": 0.0, "class_sep": 1.2},
    # 20 classes in 4 groups of look-alikes; 5-NN accuracy ~0.75: overlapping classes, many confusions
    "hard": {"classes": 20, "groups": 4, "group_sep": 2.0, "class_sep": 0.3},
}


def synthetic_features(n: int, kind: str = "clustered", dim: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 (n, dim), labels int64 (n,)) imitating penultimate CNN features; see ``FEATURE_SETS``.

    Each class is a centre in a 32-D latent space plus isotropic spread and variation along 6 class-specific
    directions (pose, background), scaled per class (0.6x to 1.8x); the latent is mapped linearly to ``dim``
    channels, noise is added, each image gets an overall activation strength (log-normal), and a ReLU zeroes about
    half the entries.
    """
    if kind not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {kind!r}; choose from {sorted(FEATURE_SETS)}")
    spec = FEATURE_SETS[kind]
    rng = np.random.default_rng(seed)
    k, latent = spec["classes"], 32
    basis = rng.normal(size=(latent, dim)) / np.sqrt(latent)
    groups = rng.normal(size=(spec["groups"], latent)) * spec["group_sep"]
    centres = groups[np.arange(k) % spec["groups"]] + rng.normal(size=(k, latent)) * spec["class_sep"]
    spreads = rng.uniform(0.6, 1.8, size=k)
    directions = rng.normal(size=(k, 6, latent))
    y = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 5.0)))
    z = centres[y] + rng.normal(size=(n, latent)) * spreads[y, None] * 0.6
    z += np.einsum("ni,nil->nl", rng.normal(size=(n, 6)), directions[y]) * spreads[y, None] * 0.5
    x = (z @ basis + rng.normal(size=(n, dim)) * 0.3 + 0.2) * rng.lognormal(0.0, 0.25, size=(n, 1))
    return np.maximum(x, 0.0).astype(np.float32), y.astype(np.int64)


def digits_features() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits (1,797 x 64 pixels): real data, no download."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.astype(np.float32), data.target.astype(np.int64)


# ------------------------------------------------------------------------------------------------ measuring
def machine_line() -> str:
    import openTSNE
    import sklearn

    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(sorted({f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info()}))
    except Exception:  # threadpoolctl is optional: the line is informative only
        blas = "unknown"
    return (f"{os.cpu_count()} CPU cores ({_cpu_model()}), load average {_load()} at start; Python "
            f"{platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
            f"openTSNE {openTSNE.__version__}; thread pools: {blas}")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> str:
    """The 1, 5 and 15-minute load averages: above the core count, other processes were competing for the CPU."""
    return ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - wall0, time.process_time() - cpu0


def _quality(reduced: np.ndarray, xy: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    from sklearn.manifold import trustworthiness
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    trust = float(trustworthiness(reduced, xy, n_neighbors=10))
    folds = int(min(5, np.bincount(labels).min()))
    knn = float(cross_val_score(KNeighborsClassifier(5), xy, labels, cv=folds).mean()) if folds >= 2 else float("nan")
    return trust, knn


def compare(features: np.ndarray, labels: np.ndarray, repeats: int = 2, seed: int = 0,
            sklearn_too: bool = True) -> dict[str, Any]:
    """Interleaved rounds of (ours, scikit-learn) on the same data; times are medians (and min) over rounds."""
    from sklearn.manifold import TSNE

    from analysis.embedding import embed_tsne, pca_reduce

    reduced, _ = pca_reduce(features, 50, seed=seed)
    ours_wall, ours_cpu, sk_wall, sk_cpu = [], [], [], []
    ours_xy = sk_xy = None
    for _ in range(repeats):
        result, wall, cpu = _timed(lambda: embed_tsne(features, seed=seed))
        ours_wall.append(wall)
        ours_cpu.append(cpu)
        if ours_xy is not None and ours_xy.tobytes() != result.xy.tobytes():
            raise AssertionError("embed_tsne gave different bytes for the same input and seed")
        ours_xy = result.xy
        if sklearn_too:
            sk_xy, wall, cpu = _timed(lambda: TSNE(random_state=seed).fit_transform(reduced))
            sk_wall.append(wall)
            sk_cpu.append(cpu)
    row: dict[str, Any] = {
        "n": int(features.shape[0]), "d": int(features.shape[1]),
        "ours_s": statistics.median(ours_wall), "ours_min_s": min(ours_wall), "ours_cpu_s": statistics.median(ours_cpu),
        "ours_timings": result.timings, "ours_threads": result.params["n_jobs"],
        "ours_method": result.params["negative_gradient_method"],
    }
    row["ours_trust"], row["ours_knn"] = _quality(reduced, ours_xy, labels)
    if sklearn_too:
        row.update(sk_s=statistics.median(sk_wall), sk_min_s=min(sk_wall), sk_cpu_s=statistics.median(sk_cpu))
        row["sk_trust"], row["sk_knn"] = _quality(reduced, sk_xy, labels)
    return row


# ------------------------------------------------------------------------------------------------ report
GOALS_S = {2000: 5.0, 5000: 15.0}


def run(quick: bool = False, repeats: int | None = None) -> str:
    """Run the comparison and return it as markdown (``python -m bench`` includes it)."""
    from analysis.embedding import TSNE_SETTINGS

    if quick:
        cases = [("clustered", 150, *synthetic_features(150, "clustered", dim=32))]
        repeats = repeats or 1
    else:
        cases = [(kind, n, *synthetic_features(n, kind)) for n in (2000, 5000) for kind in ("clustered", "hard")]
        cases.append(("digits (real)", 1797, *digits_features()))
        repeats = repeats or 2
    machine = machine_line()
    rows = []
    for name, n, x, y in cases:
        print(f"[tsne_bench] {name} N={n} ...", file=sys.stderr, flush=True)
        rows.append((name, compare(x, y, repeats=repeats)))

    settings = ", ".join(f"{k}={v}" for k, v in TSNE_SETTINGS.items())
    lines = [
        "### t-SNE of penultimate features: `embed_tsne` vs scikit-learn's default `TSNE(random_state=0)`",
        "",
        f"_{machine}._",
        "",
        f"Ours: PCA-50 + openTSNE ({settings}). scikit-learn: default TSNE on the same PCA-50 output "
        f"(Barnes-Hut, 1000 iterations). Wall seconds: median of {repeats} interleaved round(s) (fastest in "
        "brackets); CPU: user+system seconds of the process. T = trustworthiness, 10 neighbours, PCA-50 input "
        "vs 2-D; 5-NN = 5-fold 5-NN accuracy of the class labels in 2-D.",
        "",
        "| data | N × D | ours wall | sklearn wall | speed-up | ours CPU | sklearn CPU | T ours | T sklearn "
        "| ΔT | 5-NN ours | 5-NN sklearn | goal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in rows:
        goal_s = GOALS_S.get(r["n"])
        delta = r["ours_trust"] - r["sk_trust"]
        if goal_s is None:
            goal = "—"
        else:
            ok = r["ours_s"] <= goal_s and delta >= -0.01
            goal = f"≤ {goal_s:g} s, ΔT ≥ −0.01: {'met' if ok else '**missed**'}"
        lines.append(
            f"| {name} | {r['n']:,} × {r['d']} | {r['ours_s']:.2f} s ({r['ours_min_s']:.2f}) | "
            f"{r['sk_s']:.1f} s ({r['sk_min_s']:.1f}) | {r['sk_s'] / r['ours_s']:.1f}× | {r['ours_cpu_s']:.1f} s | "
            f"{r['sk_cpu_s']:.1f} s | {r['ours_trust']:.4f} | {r['sk_trust']:.4f} | {delta:+.4f} | "
            f"{r['ours_knn']:.3f} | {r['sk_knn']:.3f} | {goal} |"
        )
    stages = "; ".join(
        f"{name} N={r['n']}: " + ", ".join(f"{k} {v:.2f} s" for k, v in r["ours_timings"].items())
        + f" ({r['ours_method']}, {r['ours_threads']} thread{'s' if r['ours_threads'] > 1 else ''})"
        for name, r in rows
    )
    lines += ["", f"Our stages (last round): {stages}.", "", f"Load average at the end: {_load()}."]
    if quick:
        lines += ["", "_Quick mode: tiny N, checks that the benchmark runs; not for reading._"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tsne_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny N, to check the script runs")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds per data set (default 2)")
    args = parser.parse_args(argv)
    print(run(quick=args.quick, repeats=args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
