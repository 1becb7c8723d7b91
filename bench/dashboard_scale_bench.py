"""The dashboard at any dataset size (issue 11): cold start, page times and memory on a 2,000- and a 100,000-row
store, side by side, and the worst 20 mistakes sorted through the page.

    python -m bench.dashboard_scale_bench            # 2,000 vs 100,000 rows, AppTest and a real server + Chromium
    python -m bench.dashboard_scale_bench --quick    # 200 vs 2,000 rows, AppTest only: checks the script runs

What is measured, per size, each in a fresh process:

- AppTest (server side, no browser): the explorer's first run (model load, store check, the folder opened from
  the store's listing, one explanation, the 20-image gallery), the embedding page (the stored map, every point
  up to 100,000), the analysis page, and a sort of the misclassified images by loss through the page; the
  process's peak RSS.
- A real ``streamlit run app.py -- --workspace W`` and headless Chromium (when Playwright and Chromium are
  there): from spawning the server to the first heatmap on screen (``bench.browser_bench``'s probe), then the
  server's RSS.

The stores are synthetic and written in seconds: random labels, predictions, losses, 128-d embeddings and map
coordinates in the store's schema (``store.shards.write_shard``), for a resnet18 workspace (random weights) whose
ImageFolder holds one 48×48 PNG per class: the store's ``path`` column points every row at one of them, so the
images a page decodes cost the same at any N, and only the store grows. Nothing of the dashboard should grow with
N: the ratio column is the point.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.server import streamlit_run

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
CLASSES = 10
EMBEDDING_DIMS = 128
SHARD_ROWS = 10_000


# ------------------------------------------------------------------------------------------ the workspace
def make_workspace(root: Path) -> Path:
    """A resnet18 (random weights, 10 classes, 64×64) and an ImageFolder of one PNG per class; the TOML."""
    import torch
    import torchvision
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(CLASSES):
        (root / "images" / f"c{k}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(root / "images" / f"c{k}" / "0.png")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None, num_classes=CLASSES).state_dict(), root / "weights.pt")
    return root


def write_toml(root: Path, rows: int) -> Path:
    path = root / f"scale-{rows}.toml"
    path.write_text(f'name = "scale"\n[model]\narch = "resnet18"\ncheckpoint = "weights.pt"\n'
                    f'class_names = {json.dumps([f"c{k}" for k in range(CLASSES)])}\n'
                    f'[data]\nroot = "images"\nstore = "store-{rows}"\n[preprocessing]\ninput_size = [64, 64]\n')
    return path


def _list_column(values: np.ndarray, width: int, kind):
    import pyarrow as pa

    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), width).cast(pa.list_(kind))


def synthetic_shard(first: int, n: int, rng: np.random.Generator):
    """Rows [first, first + n) in the store's schema; each row's path is its class's one real image."""
    import pyarrow as pa

    from store.schema import ROW_SCHEMA

    index = np.arange(first, first + n)
    label = rng.integers(0, CLASSES, n)
    pred = np.where(rng.random(n) < 0.15, rng.integers(0, CLASSES, n), label)
    prob = rng.uniform(1 / CLASSES, 1, n).astype(np.float32)
    top = np.argsort(rng.random((n, CLASSES)), axis=1)[:, :5]
    top[:, 0] = pred
    return pa.table({
        "index": index, "path": [f"c{k}/0.png" for k in label], "label": label, "pred": pred, "prob": prob,
        "loss": rng.exponential(0.7, n).astype(np.float32),
        "topk_index": _list_column(top, 5, pa.int64()),
        "topk_prob": _list_column(np.sort(rng.random((n, 5)).astype(np.float32))[:, ::-1].copy(), 5, pa.float32()),
        "embedding": _list_column(rng.standard_normal((n, EMBEDDING_DIMS)).astype(np.float32), EMBEDDING_DIMS,
                                  pa.float32()),
        "margin": rng.random(n).astype(np.float32), "entropy": rng.random(n).astype(np.float32),
        "correct": pred == label, "map_x": rng.normal(0, 30, n).astype(np.float32),
        "map_y": rng.normal(0, 30, n).astype(np.float32), "cam_thumb": pa.array([bytes(256)] * n, pa.binary()),
        "cam_peak_y": rng.random(n).astype(np.float32), "cam_peak_x": rng.random(n).astype(np.float32),
    }).cast(ROW_SCHEMA)


def synthetic_store(path: Path, rows: int, model_id: str, seed: int = 0) -> float:
    """A complete store of ``rows`` random rows for the workspace's model; returns the seconds it took."""
    from store.schema import write_manifest
    from store.shards import write_shard

    start = time.perf_counter()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for shard, first in enumerate(range(0, rows, SHARD_ROWS)):
        write_shard(path, shard, synthetic_shard(first, min(SHARD_ROWS, rows - first), rng), [])
    write_manifest(path, {"format": "gradcam-store", "format_version": 1, "model_id": model_id, "workspace": "scale",
                          "class_names": [f"c{k}" for k in range(CLASSES)], "images": rows, "status": "complete",
                          "skipped": [], "counts": {"images": rows, "rows": rows, "skipped": 0},
                          "map": {"status": "done", "method": "synthetic", "fit_points": rows, "perplexity": 30,
                                  "seconds": 0}})
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------ AppTest probe
def _rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current, peak) resident memory of a process, MB."""
    values = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def _timed_run(at) -> float:
    start = time.perf_counter()
    at.run()
    if at.exception:
        raise RuntimeError(f"the page raised: {at.exception[0].value}")
    return time.perf_counter() - start


def _gallery(at) -> list[int]:
    return [int(b.key.rsplit(".", 1)[1]) for b in at.button if str(b.key).startswith("explorer.pick.")]


class GalleryClock:
    """What a sort, a filter or a page costs on the server apart from the view's explanation of the newly
    selected image: the gallery's queries (``gallery_tiles``; the view asks for the first row before the gallery
    draws, and the gallery reuses it) plus the gallery column (looked up by name in its module on every run).
    ``take()`` returns the time since the last ``take()``."""

    def __init__(self):
        from dashboard import explorer_gallery

        self.spent = 0.0
        for name in ("render_gallery_column", "gallery_tiles"):
            setattr(explorer_gallery, name, self._timed(getattr(explorer_gallery, name)))

    def _timed(self, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.spent += time.perf_counter() - start

        return timed

    def take(self) -> float:
        spent, self.spent = self.spent, 0.0
        return spent


def apptest_probe(toml: str) -> dict:
    """Run in a fresh process: the pages' server-side times on ``toml``'s store, and the peak RSS."""
    sys.argv = ["app.py", "--workspace", toml]
    from streamlit.testing.v1 import AppTest

    from models import load_workspace
    from store import open_store

    rss_start = _rss_mb()[0]
    clock = GalleryClock()
    at = AppTest.from_file(str(APP), default_timeout=600)
    result = {"explorer_cold_s": _timed_run(at), "gallery": len(_gallery(at))}
    result["rss_explorer_mb"] = _rss_mb()[0]
    result["explorer_rerun_s"] = _timed_run(at)
    at.selectbox(key="explorer.filter").set_value("misclassified")
    at.selectbox(key="explorer.sort").set_value("loss")
    clock.take()
    result["worst20_page_s"] = _timed_run(at)
    result["worst20_gallery_s"] = clock.take()  # the fragment's own tiles call is counted twice: a cache hit
    store = open_store(load_workspace(toml).store)
    result["worst20_ok"] = _gallery(at) == store.worst_mistakes(20)["index"].to_pylist()
    start = time.perf_counter()
    store.worst_mistakes(20)
    result["worst20_query_s"] = time.perf_counter() - start
    at.switch_page("pages/tsne.py")
    result["embedding_s"] = _timed_run(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    result["map_points"] = sum(len(trace.get("customdata") or []) if isinstance(trace.get("customdata"), list)
                               else int(trace["customdata"].get("shape", "0,").split(",")[0])
                               for trace in spec["data"])
    at.switch_page("pages/analysis.py")
    result["analysis_s"] = _timed_run(at)
    result["rss_start_mb"], (result["rss_end_mb"], result["rss_peak_mb"]) = rss_start, _rss_mb()
    return result


def run_probe(toml: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.dashboard_scale_bench", "--apptest-probe", str(toml)],
                         cwd=ROOT, capture_output=True, text=True, timeout=1200)
    if out.returncode != 0:
        raise RuntimeError(f"the AppTest probe on {toml.name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ real server
@contextmanager
def dashboard_server(toml: Path, log_path: Path):
    """``streamlit run app.py -- --workspace toml`` on a free port; yields (url, spawn time, process)."""
    with streamlit_run(APP, ROOT, log_path, extra_args=("--", "--workspace", str(toml))) as server:
        yield server.url + "/", server.spawned, server.process


def browser_available() -> bool:
    from bench.browser_bench import CHROMIUM

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


def server_probe(browser, toml: Path, log_dir: Path) -> dict:
    """Spawn → first heatmap on screen (ms), then the server's RSS once the page has settled."""
    from bench.browser_bench import COLD_WAIT_MS, first_picture, new_page, settle

    with dashboard_server(toml, log_dir / f"{toml.stem}.log") as (url, spawned, process):
        page = new_page(browser)
        first_ms = first_picture(page, url, spawned)
        settle(page, 1000, COLD_WAIT_MS)
        rss, peak = _rss_mb(process.pid)
        page.context.close()
    return {"first_heatmap_s": first_ms / 1000, "server_rss_mb": rss, "server_peak_mb": peak}


def server_rows(tomls: list[Path], repeats: int, log_dir: Path) -> list[dict]:
    """Alternating cold starts of each size (the machine's load drifts); per size the median of each number."""
    from playwright.sync_api import sync_playwright

    from bench.browser_bench import CHROMIUM, CHROMIUM_ARGS

    runs: dict[Path, list[dict]] = {toml: [] for toml in tomls}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for repeat in range(repeats):
                for toml in tomls if repeat % 2 == 0 else tomls[::-1]:  # neither size always goes second
                    runs[toml].append(server_probe(browser, toml, log_dir))
        finally:
            browser.close()
    return [{key: statistics.median(r[key] for r in runs[toml]) for key in runs[toml][0]} for toml in tomls]


# ------------------------------------------------------------------------------------------ the section
ROWS = (
    ("explorer_cold_s", "AppTest: explorer, first run (model load, store, one explanation, gallery)", "s"),
    ("explorer_rerun_s", "AppTest: explorer, a rerun", "s"),
    ("worst20_gallery_s", "AppTest: sort the misclassified by loss — the gallery's queries + its fragment", "s"),
    ("worst20_page_s", "AppTest: the same, the whole rerun (the view explains the new first image too)", "s"),
    ("worst20_query_s", "the worst-20 query alone (warm)", "ms"),
    ("embedding_s", "AppTest: embedding page (the stored map, every point)", "s"),
    ("analysis_s", "AppTest: analysis page (one aggregate, a cell, two Grad-CAM grids)", "s"),
    ("rss_explorer_mb", "AppTest process: RSS after the explorer's first run", "MB"),
    ("rss_peak_mb", "AppTest process: peak RSS after all of the above (the map holds every point)", "MB"),
    ("first_heatmap_s", "real server + Chromium: spawn → first heatmap on screen", "s"),
    ("server_rss_mb", "real server: RSS once the explorer has settled", "MB"),
)


def _cell(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value * 1000:.0f} ms"
    return f"{value:.0f} MB" if unit == "MB" else f"{value:.2f} s"


def render(sizes: tuple[int, int], rows: list[dict], write_s: list[float], store_mb: list[float],
           browser_note: str) -> str:
    small, big = rows
    lines = [f"### Dashboard at any dataset size: a {sizes[0]:,}- and a {sizes[1]:,}-row store, side by side", "",
             f"| what | {sizes[0]:,} rows | {sizes[1]:,} rows | ratio |", "|---|---:|---:|---:|"]
    for key, label, unit in ROWS:
        if key in small and key in big:
            ratio = big[key] / small[key] if small[key] else float("nan")
            lines.append(f"| {label} | {_cell(small[key], unit)} | {_cell(big[key], unit)} | {ratio:.2f}× |")
    ok = small.get("worst20_ok") and big.get("worst20_ok")
    lines += ["", f"The stores: synthetic rows in the store's schema, written in {write_s[0]:.1f} s and "
              f"{write_s[1]:.1f} s ({store_mb[0]:.1f} MB and {store_mb[1]:.1f} MB, 128-d embeddings); the map "
              f"drew {small['map_points']:,} and {big['map_points']:,} points (WebGL). The sorted page showed exactly "
              f"the store's 20 worst mistakes: {bool(ok)}. Goal: the worst 20 through the page in under a second at "
              f"{sizes[1]:,} rows — {big['worst20_gallery_s']:.2f} s for the gallery, "
              f"{big['worst20_page_s']:.2f} s for the whole rerun "
              f"({'met' if big['worst20_gallery_s'] < 1 else '**missed**'})"
              f"; first heatmap and memory ~1× — see the ratio column. {browser_note}"]
    return "\n".join(lines)


def run(quick: bool = False, repeats: int = 4) -> str:
    sizes = (200, 2_000) if quick else (2_000, 100_000)
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-scale-"))
    try:
        make_workspace(tmp)
        from models import load_workspace

        tomls = [write_toml(tmp, n) for n in sizes]
        model_id = load_workspace(tomls[0]).model_id
        write_s = [synthetic_store(tmp / f"store-{n}", n, model_id) for n in sizes]
        store_mb = [sum(f.stat().st_size for f in (tmp / f"store-{n}").iterdir()) / 1e6 for n in sizes]
        probes = {toml: [] for toml in tomls}
        for repeat in range(1 if quick else repeats):  # alternating sizes and their order, fresh processes
            for toml in tomls if repeat % 2 == 0 else tomls[::-1]:
                probes[toml].append(run_probe(toml))
        rows = [{k: (statistics.median(p[k] for p in probes[t]) if isinstance(probes[t][0][k], float) else
                     probes[t][0][k]) for k in probes[t][0]} for t in tomls]
        note = "The browser rows were skipped (quick mode)." if quick else ""
        if not quick and browser_available():
            for row, server in zip(rows, server_rows(tomls, repeats, tmp), strict=True):
                row.update(server)
        elif not quick:
            note = "No Playwright/Chromium here: the browser rows were skipped."
        return render(sizes, rows, write_s, store_mb, note)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_scale_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--apptest-probe", metavar="TOML", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.apptest_probe:
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        print(json.dumps(apptest_probe(args.apptest_probe)))
        return 0
    print(run(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
