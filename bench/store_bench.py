"""Dataset scale (issue 11): precompute throughput against a pytorch-grad-cam loop, Ray's overhead, the store
reader at 2,000 and 100,000 rows, a 100,000-file folder, and the per-image costs behind the 10M estimate.

    python -m bench.store_bench            # full run, prints a markdown section (~10-15 min on 2 busy cores)
    python -m bench.store_bench --quick    # tiny sizes: checks the script runs

``run(quick)`` returns the section, for ``python -m bench``. Ratios are measured side by side in one run;
absolute times depend on the machine (recorded in the first line).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _best(fn, repeats: int, clock=time.perf_counter) -> float:
    """Fastest of ``repeats`` runs: on a shared machine other jobs only ever add time. With
    ``clock=time.process_time`` it counts this process's CPU time (core-seconds) instead of wall time."""
    samples = []
    for _ in range(repeats):
        start = clock()
        fn()
        samples.append(clock() - start)
    return min(samples)


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would include the parent's before exec)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def machine_line() -> str:
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} logical cores (1-min load {load:.1f} at start), torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), no GPU used, Python {platform.python_version()}")


# ------------------------------------------------------------------------------------------ workspaces
def smooth_images(n: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8 images with smooth gradients and a bright blob: JPEG-like content, fast to make."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for k in range(n):
        cy, cx, r = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, rng.uniform(0.1, 0.3) * min(h, w)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        base = rng.uniform(0, 255, 3)[None, None] * (0.5 + 0.5 * (xx / w))[..., None]
        pixels = base + 200 * blob[..., None] * rng.uniform(0.3, 1, 3)[None, None] + rng.normal(0, 6, (h, w, 3))
        out[k] = np.clip(pixels, 0, 255).astype(np.uint8)
    return out


def jpeg_workspace(root: Path, n: int, image_size: tuple[int, int], arch: str = "resnet18", classes: int = 4,
                   input_size: int = 224) -> Path:
    """An ImageFolder of n JPEGs (quality 90) and a random-init torchvision ``arch``; returns the TOML."""
    import torch
    import torchvision
    from PIL import Image

    pixels = smooth_images(n, image_size)
    for k in range(n):
        folder = root / "images" / f"c{k % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[k]).save(folder / f"{k:06d}.jpg", quality=90)
    torch.manual_seed(0)
    torch.save(torchvision.models.get_model(arch, weights=None, num_classes=classes).state_dict(), root / "w.pt")
    toml = root / "workspace.toml"
    toml.write_text(f'name = "bench-{arch}"\n[model]\narch = "{arch}"\ncheckpoint = "w.pt"\n[data]\nroot = "images"\n'
                    f"[preprocessing]\ninput_size = [{input_size}, {input_size}]\nresize = {input_size * 8 // 7}\n")
    return toml


# ------------------------------------------------------------------------------------------ throughput
@contextlib.contextmanager
def one_torch_thread():
    """Core-seconds per image, comparable between runs however busy the machine is (this one is shared)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def ours_pass(workspace, out: Path, limit: int, **options) -> dict:
    """Wall and CPU seconds of ``precompute``'s per-image pass (decode, explain, shard writes; not the map), from
    its first to its last progress call; also when the first batch's rows arrived (start-up)."""
    from store.precompute import precompute

    marks = []

    def progress(event) -> None:
        if event.stage == "images":
            marks.append((time.perf_counter(), time.process_time(), event.done))

    shutil.rmtree(out, ignore_errors=True)
    precompute(workspace, out, limit=limit, overwrite=True, progress=progress, **options)
    (w0, c0, _), (w1, c1, _) = marks[0], marks[-1]
    first = next(w for w, _, done in marks if done > 0)
    return {"wall_s": w1 - w0, "cpu_s": c1 - c0, "first_batch_s": first - w0}


def pgc_loop(workspace, limit: int) -> dict:
    """pytorch-grad-cam doing the same work image by image: decode, a no-grad forward (top-5 + penultimate
    features through a hook), GradCAM of the default layer for the predicted class, a 16×16 thumbnail + peak."""
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torch.nn import functional

    model = workspace.model.eval()
    modules = dict(model.named_modules())
    features: list = []
    hook = modules[workspace.classifier_layer].register_forward_hook(
        lambda _m, inputs, _o: features.append(inputs[0].detach().flatten(1)))
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        with GradCAM(model=model, target_layers=[modules[workspace.default_layer]]) as cam:
            for i in range(limit):
                x = workspace.test_set.tensors([i])
                with torch.no_grad():
                    probs = torch.softmax(model(x), dim=1)
                top = probs.topk(min(5, probs.shape[1]), dim=1)
                grayscale = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(top.indices[0, 0]))])
                small = functional.interpolate(torch.from_numpy(grayscale)[:, None], size=(16, 16), mode="bilinear",
                                               antialias=True)
                _ = (small * 255).round().to(torch.uint8).numpy().tobytes(), int(np.argmax(grayscale[0]))
                features.clear()
    finally:
        hook.remove()
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def throughput_rows(quick: bool, tmp: Path) -> list[dict]:
    """Ours (batches of 64, decoding in this process: workers=0, so its CPU time is all counted) against the loop,
    both on one torch thread."""
    from models import load_workspace

    n_jpeg = 16 if quick else 128
    toml = jpeg_workspace(tmp / "jpeg-r18", n_jpeg, (256, 256))
    cases = [("shapes (ShapesResNet, 64×64, in-memory)", "shapes", 64 if quick else 1024),
             (f"resnet18 @224 from {n_jpeg} JPEGs (256×256)", str(toml), n_jpeg)]
    rows = []
    with one_torch_thread():
        for label, ref, n in cases:
            ws = load_workspace(ref)
            ws.test_set.tensors([0])  # build the set (shapes are generated once) before timing
            ours = ours_pass(ref, tmp / "thr.store", n, batch_size=64, workers=0)
            peer = pgc_loop(ws, n)
            rows.append({"case": label, "n": n, "ours": ours, "pgc": peer})
    return rows


def hook_vs_second_pass(quick: bool) -> dict:
    """Penultimate features: forward hook during explain's forward vs a second no-grad pass (engine.features);
    CPU time on one thread, best of several."""
    from models import load_workspace
    from store.compute import BatchExplainer

    ws = load_workspace("shapes")
    x = ws.test_set.tensors(range(16 if quick else 64))
    explainer = BatchExplainer(ws, "cpu")
    repeats = 2 if quick else 7
    clock = time.process_time
    with one_torch_thread():
        explain_only = _best(lambda: explainer.engine.explain(x, layers=[ws.default_layer]), repeats, clock)
        with_hook = _best(lambda: explainer.forward(x), repeats, clock)
        second = _best(lambda: explainer.engine.features(x, ws.classifier_layer), repeats, clock)
    return {"batch": x.shape[0], "explain_s": explain_only, "hook_s": with_hook, "second_pass_s": second}


# ------------------------------------------------------------------------------------------ Ray
def ray_overhead(quick: bool, tmp: Path) -> dict:
    """The per-image pass of the same precompute (shapes) on the local engine and on a local Ray (2 CPUs, one
    actor), at n and 2n images, alternating, best of the repeats (wall); the model on one torch thread in both (as
    in a 1-CPU actor). The difference between the sizes is the marginal cost of n images; the rest is start-up."""
    import ray

    from store import open_store

    n = 128 if quick else 960
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    row: dict = {"n": n, "ray_init_s": time.perf_counter() - start}
    runs: dict = {}
    try:
        with one_torch_thread():
            for _ in range(1 if quick else 2):
                for engine in ("local", "ray"):
                    for size in (n, 2 * n):
                        result = ours_pass("shapes", tmp / f"{engine}-{size}.store", size, engine=engine,
                                           batch_size=64, shard_size=256)
                        runs.setdefault((engine, size), []).append(result["wall_s"])
    finally:
        ray.shutdown()
    for engine in ("local", "ray"):
        small, big = min(runs[engine, n]), min(runs[engine, 2 * n])
        row[engine] = {"small_s": small, "big_s": big, "marginal_per_s": n / max(big - small, 1e-9),
                       "fixed_s": 2 * small - big}
    columns = ("index", "pred", "prob", "embedding", "cam_thumb", "map_x")
    row["identical"] = open_store(tmp / f"local-{2 * n}.store").rows(range(2 * n), columns).equals(
        open_store(tmp / f"ray-{2 * n}.store").rows(range(2 * n), columns))
    return row


# ------------------------------------------------------------------------------------------ reader
def synthetic_store(path: Path, rows: int, dims: int = 512, classes: int = 10, seed: int = 0) -> float:
    """A store of ``rows`` random rows written with the real shard writer; returns rows/s of writing."""
    import pyarrow as pa

    from store.schema import ROW_SCHEMA, write_manifest
    from store.shards import write_shard

    rng = np.random.default_rng(seed)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    shard_size = 10_000
    start = time.perf_counter()
    for shard in range(-(-rows // shard_size)):
        index = np.arange(shard * shard_size, min((shard + 1) * shard_size, rows))
        n = len(index)
        label = rng.integers(0, classes, n)
        pred = np.where(rng.random(n) < 0.1, rng.integers(0, classes, n), label)
        prob = rng.uniform(1 / classes, 1, n).astype(np.float32)
        top = np.argsort(rng.random((n, classes)), axis=1)[:, :5]
        table = pa.table({
            "index": index, "path": [f"c{lab}/{i:07d}.jpg" for lab, i in zip(label, index, strict=True)],
            "label": label, "pred": pred, "prob": prob, "loss": rng.exponential(0.5, n).astype(np.float32),
            "topk_index": pa.FixedSizeListArray.from_arrays(pa.array(top.reshape(-1)), 5).cast(pa.list_(pa.int64())),
            "topk_prob": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(n * 5).astype(np.float32)), 5)
            .cast(pa.list_(pa.float32())),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(n * dims).astype(np.float32)), dims)
            .cast(pa.list_(pa.float32())),
            "margin": rng.random(n).astype(np.float32), "entropy": rng.random(n).astype(np.float32),
            "correct": pred == label, "map_x": rng.normal(0, 30, n).astype(np.float32),
            "map_y": rng.normal(0, 30, n).astype(np.float32),
            "cam_thumb": pa.array([bytes(256)] * n, pa.binary()),
            "cam_peak_y": rng.random(n).astype(np.float32), "cam_peak_x": rng.random(n).astype(np.float32),
        }).cast(ROW_SCHEMA)
        write_shard(path, shard, table, [])
    seconds = time.perf_counter() - start
    write_manifest(path, {"format": "gradcam-store", "format_version": 1, "model_id": "synthetic", "images": rows,
                          "class_names": [f"c{k}" for k in range(classes)], "status": "complete", "skipped": [],
                          "map": {"status": "done"}})
    return rows / seconds


def reader_probe(store_path: str) -> dict:
    """Run in a fresh process: what a page does on first load, its time and the process's peak RSS."""
    import store.reader as reader

    rss_before = _peak_rss_mb()
    start = time.perf_counter()
    store = reader.open_store(store_path)
    first_page = store.page(limit=20)
    worst = store.worst_mistakes(20)
    points = store.map_points()
    cold_s = time.perf_counter() - start
    worst_warm = _median(lambda: store.worst_mistakes(20), 5)
    sample_s = _median(lambda: store.sample(0), 3)
    summary_s = _median(store.class_summary, 3)
    rows_s = _median(lambda: store.rows(list(range(0, store.num_rows, max(1, store.num_rows // 20)))), 3)
    return {"rows": store.num_rows, "cold_s": cold_s, "worst20_s": worst_warm, "sample_s": sample_s,
            "summary_s": summary_s, "rows20_s": rows_s, "points": points.num_rows, "page": first_page.num_rows,
            "worst": worst.num_rows, "rss_before_mb": rss_before,
            "rss_peak_mb": _peak_rss_mb()}


def reader_rows(quick: bool, tmp: Path) -> list[dict]:
    sizes = (2_000, 20_000) if quick else (2_000, 100_000)
    results = []
    for rows in sizes:
        path = tmp / f"synthetic-{rows}.store"
        write_rate = synthetic_store(path, rows)
        probes = []
        for _ in range(1 if quick else 3):
            out = subprocess.run([sys.executable, "-m", "bench.store_bench", "--reader-probe", str(path)], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout
            probes.append(json.loads(out.strip().splitlines()[-1]))
        median = {k: statistics.median(p[k] for p in probes) for k in probes[0]}
        median["write_rows_per_s"] = write_rate
        median["bytes_per_row"] = sum(f.stat().st_size for f in path.glob("part-*.parquet")) / rows
        results.append(median)
    return results


# ------------------------------------------------------------------------------------------ big folders
def folder_open(quick: bool, tmp: Path) -> dict:
    """A folder of tiny PNGs (one encoded 8×8 image written to every path): list it, damage a file, read it."""
    import io

    from PIL import Image

    from models import FolderImageSet, ImageTransform, WorkspaceError
    from store.compute import decode_batch

    n, classes = (5_000 if quick else 100_000), 10
    buffer = io.BytesIO()
    Image.fromarray(smooth_images(1, (8, 8))[0]).save(buffer, format="PNG")
    data = buffer.getvalue()
    root = tmp / "big-folder"
    start = time.perf_counter()
    for c in range(classes):
        folder = root / f"c{c}"
        folder.mkdir(parents=True)
        for k in range(n // classes):
            (folder / f"{k:06d}.png").write_bytes(data)
    write_s = time.perf_counter() - start
    names = [f"c{c}" for c in range(classes)]
    transform = ImageTransform((8, 8))
    open_s = _median(lambda: FolderImageSet(root, names, transform), 3)
    image_set = FolderImageSet(root, names, transform)
    listing = (image_set.relative_paths, image_set.labels)
    listed_s = _median(lambda: FolderImageSet(root, names, transform, listing=listing), 3)
    victim = n // 2
    (root / image_set.relative_paths[victim]).write_bytes(data[: len(data) // 3])  # truncated after opening
    decoded = decode_batch(image_set, [victim - 1, victim, victim + 1])
    try:
        image_set.image(victim)
        message = "no error (!)"
    except WorkspaceError as error:
        message = str(error)
    return {"n": n, "write_s": write_s, "open_s": open_s, "listing_s": listed_s, "kept": len(decoded.indices),
            "skipped": decoded.skipped, "message": message.replace(str(root), "ROOT")}


# ------------------------------------------------------------------------------------------ per-image costs
def per_image_costs(quick: bool, tmp: Path) -> dict:
    """What one image costs at each stage, on this machine's CPU: decode, the model pass, the store write."""
    import torch
    import torchvision

    from gradcam_core import CamEngine
    from models import FolderImageSet, ImageTransform

    n = 8 if quick else 64
    costs = {}
    threads = torch.get_num_threads()
    # core-seconds per image, whatever else runs on the machine; with 2 intra-op threads the idle one's OpenMP
    # spin-wait counted as CPU time and made a 1.6 ms transform look like 18 ms (same wall time)
    torch.set_num_threads(1)
    for label, size in (("jpeg_500x375", (375, 500)), ("jpeg_256", (256, 256))):
        root = tmp / f"decode-{label}"
        from PIL import Image

        for k, pixels in enumerate(smooth_images(n, size, seed=1)):
            (root / "c0").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / "c0" / f"{k}.jpg", quality=90)
        image_set = FolderImageSet(root, ["c0"], ImageTransform((224, 224), resize=256))
        seconds = _best(lambda s=image_set: s.tensors(range(len(s))), 3, clock=time.process_time)
        costs[f"decode_{label}_ms"] = 1000 * seconds / n
        costs[f"bytes_{label}"] = sum(p.stat().st_size for p in (root / "c0").iterdir()) / n
    batch = 8 if quick else 32
    for arch in ("resnet18", "resnet50"):
        torch.manual_seed(0)
        model = torchvision.models.get_model(arch, weights=None).eval()
        engine = CamEngine(model, "cpu")
        x = torch.randn(batch, 3, 224, 224)
        layer = "layer4.1.conv2" if arch == "resnet18" else "layer4.2.conv3"
        engine.explain(x[:2], layers=[layer])
        seconds = _best(lambda e=engine, lay=layer, x=x: e.explain(x, layers=[lay]), 2, clock=time.process_time)
        costs[f"explain_{arch}_ms"] = 1000 * seconds / batch
    torch.set_num_threads(threads)
    return costs


def map_costs(quick: bool) -> dict:
    """openTSNE on one core (CPU seconds): fitting n points, and the rate of placing new points into the map."""
    from store.embedding_map import fit_map

    n_fit, n_new = (1_000, 200) if quick else (10_000, 5_000)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (10, 512))

    def points(count):
        return (centres[rng.integers(0, 10, count)] + rng.normal(0, 1, (count, 512))).astype(np.float32)

    fit_points, new_points = points(n_fit), points(n_new)
    start = time.process_time()
    fitted = fit_map(fit_points, n_jobs=1)
    fit_s = time.process_time() - start
    start = time.process_time()
    fitted.place(new_points)
    return {"n_fit": n_fit, "fit_s": fit_s, "n_new": n_new, "place_per_s": n_new / (time.process_time() - start)}


# ------------------------------------------------------------------------------------------ the 10M estimate
#: Not measurable here (no GPU in this task): a resnet50 forward + backward to the activations (no weight
#: gradients) per A100/H100-class GPU in fp32/TF32, from public training throughputs (~2,500 img/s with AMP for
#: a full training step, which also computes weight gradients). Replace with a measured number when one exists.
ASSUMED_GPU_IMAGES_PER_S = 2000.0
ASSUMED_CORES_PER_GPU = 12
ASSUMED_READ_BYTES_PER_S = 1e9


def estimate_10m(costs: dict, reader: dict, maps: dict, gpus=(1, 8, 64)) -> list[str]:
    total = 10_000_000
    decode_per_core = 1000 / costs["decode_jpeg_500x375_ms"]
    per_gpu = min(ASSUMED_GPU_IMAGES_PER_S, ASSUMED_CORES_PER_GPU * decode_per_core)
    write_s = total / reader["write_rows_per_s"]
    read_s = total * costs["bytes_jpeg_500x375"] / ASSUMED_READ_BYTES_PER_S
    fit_s = maps["fit_s"] * 100_000 / maps["n_fit"]  # openTSNE with FFT gradients grows about linearly in N
    place_s = (total - 100_000) / maps["place_per_s"]
    lines = [
        "| GPUs | model+decode bound | read bound (1 GB/s) | driver write bound | per-image pass | + 2-D map | total |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in gpus:
        compute_s = total / (n * per_gpu)
        pass_s = max(compute_s, read_s, write_s)
        hours = [value / 3600 for value in (compute_s, read_s, write_s, pass_s, fit_s + place_s,
                                            pass_s + fit_s + place_s)]
        lines.append(f"| {n} | " + " | ".join(f"{h:.2f} h" for h in hours) + " |")
    bound = "JPEG decoding" if ASSUMED_CORES_PER_GPU * decode_per_core < ASSUMED_GPU_IMAGES_PER_S else "the model"
    lines += ["", f"Per GPU: min({ASSUMED_GPU_IMAGES_PER_S:.0f} img/s model (assumed), {ASSUMED_CORES_PER_GPU} cores × "
              f"{decode_per_core:.0f} img/s decode (measured, 500×375 JPEG → 224)) = {per_gpu:.0f} img/s, bounded by "
              f"{bound}. Reading: {costs['bytes_jpeg_500x375'] / 1e3:.0f} kB/image (measured) at an assumed 1 GB/s. "
              f"Writing: {reader['bytes_per_row']:.0f} B/row through the driver at {reader['write_rows_per_s']:,.0f} "
              f"rows/s (measured, one thread, zstd). Map: fit on 100k ≈ {fit_s / 60:.0f} min (from {maps['n_fit']:,} "
              f"points in {maps['fit_s']:.0f} s), placing 9.9M at {maps['place_per_s']:,.0f} points/s on the driver."]
    return lines


# ------------------------------------------------------------------------------------------ the section
def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.1f}"


def render(thr, hook, ray_row, reader, folder, costs, maps) -> str:
    lines = ["### Dataset scale: `gradcam precompute` and the store", "", f"_{machine_line()}_", "",
             "Per-image pass: decode, top-5, penultimate features, Grad-CAM of the default layer for the predicted "
             "class, 16×16 thumbnail + peak. Both on one torch thread, decoding in the process; CPU time is what "
             "to compare on this shared machine (wall time includes waiting for the other jobs' cores).", "",
             "| case | images | ours: CPU ms/image | pytorch-grad-cam loop: CPU ms/image | ours vs loop (CPU) "
             "| wall images/s: ours / loop |", "|---|---:|---:|---:|---:|---:|"]
    for r in thr:
        ours, peer, n = r["ours"], r["pgc"], r["n"]
        lines.append(f"| {r['case']} | {n} | {1000 * ours['cpu_s'] / n:.1f} | {1000 * peer['cpu_s'] / n:.1f} | "
                     f"{peer['cpu_s'] / ours['cpu_s']:.1f}× | {_rate(n, ours['wall_s'])} / "
                     f"{_rate(n, peer['wall_s'])} |")
    lines += ["", "Ours includes writing the Parquet shards; the loop writes nothing. The loop: one no-grad forward "
              "(top-5 + features by hook) and one `GradCAM` call per image.", "",
              f"Penultimate features, batch of {hook['batch']} (shapes, CPU time): explain alone "
              f"{hook['explain_s'] * 1000:.0f} ms, explain + hook on the classifier {hook['hook_s'] * 1000:.0f} ms, "
              f"a second no-grad pass (`engine.features`) {hook['second_pass_s'] * 1000:.0f} ms more: the hook is "
              "free, a second pass would add "
              f"{hook['second_pass_s'] / hook['explain_s']:.0%}.", ""]
    lines += render_ray(ray_row)
    lines += render_reader(reader)
    lines += ["", f"A folder of {folder['n']:,} tiny PNGs (written in {folder['write_s']:.0f} s, so the page cache is "
              f"warm): `FolderImageSet` opens it in {folder['open_s']:.2f} s (directory walk), "
              f"{folder['listing_s'] * 1000:.0f} ms with a store's listing. A file truncated after opening: "
              f"`decode_batch` kept {folder['kept']} of 3 and listed {[s[1] for s in folder['skipped']]}; "
              f"`image()` raises `WorkspaceError`: \"{folder['message'][:160]}…\"", "",
              "Per-image costs on this CPU, in CPU time of one core: decode + resize to 224: "
              f"{costs['decode_jpeg_500x375_ms']:.1f} ms for a 500×375 JPEG ({costs['bytes_jpeg_500x375'] / 1e3:.0f} "
              f"kB), {costs['decode_jpeg_256_ms']:.1f} ms for 256×256; explain (forward + backward) at 224: resnet18 "
              f"{costs['explain_resnet18_ms']:.0f} ms, resnet50 {costs['explain_resnet50_ms']:.0f} ms (batch of 32). "
              f"Map (one core): openTSNE fit on {maps['n_fit']:,} points {maps['fit_s']:.1f} s; placing new points "
              f"(`prepare_partial`) {maps['place_per_s']:,.0f} points/s.", "",
              "#### 10 million images on N GPUs with Ray (on paper)", ""]
    lines += estimate_10m(costs, reader[-1], maps)
    return "\n".join(lines)


def render_ray(ray_row: dict | None) -> list[str]:
    if ray_row is None:
        return ["Ray overhead: not measured in quick mode (starting Ray takes ~10-25 s here; tests/store checks "
                "that both engines write the same rows).", ""]
    local, remote, n = ray_row["local"], ray_row["ray"], ray_row["n"]
    return ["| Ray overhead: per-image pass (wall, best of alternating runs), shapes | local engine | "
            "Ray (local, 2 CPUs, 1 actor) |", "|---|---:|---:|",
            f"| {n} images | {local['small_s']:.1f} s | {remote['small_s']:.1f} s |",
            f"| {2 * n} images | {local['big_s']:.1f} s | {remote['big_s']:.1f} s |",
            f"| marginal rate (from the difference) | {local['marginal_per_s']:,.0f}/s | "
            f"{remote['marginal_per_s']:,.0f}/s |",
            f"| fixed cost per run (start-up) | {local['fixed_s']:.1f} s | {remote['fixed_s']:.1f} s |", "",
            f"`ray.init` took {ray_row['ray_init_s']:.1f} s once. Rows identical (index, pred, prob, embedding, "
            f"cam_thumb, map_x): {ray_row['identical']}.", ""]


def render_reader(reader: list[dict]) -> list[str]:
    small, big = reader[0], reader[-1]
    lines = [f"| store reader, fresh process (median of runs) | {small['rows']:,} rows | {big['rows']:,} rows | "
             "ratio |", "|---|---:|---:|---:|"]
    for key, label in (("cold_s", "open + first page + worst-20 + map columns"),
                       ("worst20_s", "worst-20 mistakes by loss (warm)"), ("sample_s", "seeded 20-image draw"),
                       ("summary_s", "confusion + per-class (1 query)"), ("rows20_s", "20 rows by index")):
        lines.append(f"| {label} | {small[key] * 1000:.0f} ms | {big[key] * 1000:.0f} ms | "
                     f"{big[key] / small[key]:.2f}× |")
    lines.append(f"| peak RSS of the process (after imports: {small['rss_before_mb']:.0f} MB) | "
                 f"{small['rss_peak_mb']:.0f} MB | {big['rss_peak_mb']:.0f} MB | "
                 f"{big['rss_peak_mb'] / small['rss_peak_mb']:.2f}× |")
    lines += ["", f"The map columns return every row up to 100,000 ({small['points']:,} and {big['points']:,} points, "
              f"no embedding vectors); store size {big['bytes_per_row']:.0f} B/row (512-d embedding)."]
    return lines


def run(quick: bool = False) -> str:
    tmp = Path(tempfile_dir())
    try:
        thr = throughput_rows(quick, tmp)
        hook = hook_vs_second_pass(quick)
        ray_row = None if quick else ray_overhead(quick, tmp)  # quick: keep `python -m bench --quick` short
        reader = reader_rows(quick, tmp)
        folder = folder_open(quick, tmp)
        costs = per_image_costs(quick, tmp)
        maps = map_costs(quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return render(thr, hook, ray_row, reader, folder, costs, maps)


def tempfile_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="store-bench-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reader-probe", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reader_probe:
        print(json.dumps(reader_probe(args.reader_probe)))
        return 0
    print(run(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
