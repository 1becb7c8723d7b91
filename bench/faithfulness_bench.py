"""Faithfulness metrics: the Faithfulness page's default table, and one image on resnet50 next to the peers.

    python -m bench.faithfulness_bench            # full: shapes table + resnet50 224 (several minutes on 2 cores)
    python -m bench.faithfulness_bench --quick    # tiny sizes, seconds: keeps the script working
    python -m bench.faithfulness_bench --tables   # the default table's numbers on shapes and shapes-shortcut

Peers, measured in the same process on the same map:
- deletion + insertion: torch-cam's ``DeletionInsertionMetric`` (pytorch-grad-cam has no deletion/insertion
  class; its ``CamMultImageConfidenceChange`` is one forward of image x map, not a curve). torch-cam uses one
  baseline for both curves, so ours runs with ``baseline="zero"`` for both here. Its metric computes a CAM itself
  (on the softmax output, not the logit: another map); a small adapter hands it our Grad-CAM instead, so both
  score the same map and the times are the metric's alone.
- ROAD: pytorch-grad-cam's ``ROADMostRelevantFirstAverage`` + ``ROADLeastRelevantFirstAverage`` (nine
  percentiles each, noisy linear imputation with scipy's ``spsolve``, one image at a time) against our
  ``road_curve`` MoRF + LeRF at the same nine fractions.
``section(quick, device)`` returns the markdown; ``python -m bench`` can list it as one more section.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch

from bench.engine_bench import build, machine_line
from gradcam_core import CamEngine
from gradcam_core import faithfulness as fa


def _interleaved(ours, theirs, repeats: int) -> tuple[float, float]:
    """Median seconds of each, run alternately (ours, theirs, ours, ...) so a change in the machine's load
    during the run falls on both."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, times in zip((ours, theirs), samples, strict=True):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return float(np.median(samples[0])), float(np.median(samples[1]))


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def shapes_table(count: int, device: torch.device) -> dict:
    """The page's default table on the bundled shapes model: wall and CPU seconds, and where the time went."""
    import models

    workspace = models.load_workspace("shapes")
    engine = CamEngine(workspace.model, device=device)
    indices = np.sort(np.random.default_rng(0).choice(len(workspace.test_set), count, replace=False))
    images = workspace.test_set.tensors(indices)
    masks = np.stack([workspace.test_set.mask(int(i)) for i in indices])
    layers = fa.table_layers(workspace.model, workspace.default_layer, workspace.input_size)
    marks: list[tuple[int, int, float]] = []
    start = time.perf_counter()
    table, wall, cpu = _timed(lambda: fa.faithfulness_table(
        engine, images, layers, masks=masks, image_ids=indices,
        progress=lambda done, total: marks.append((done, total, time.perf_counter() - start))))
    cells = int(np.sum(~np.isnan(table.mean["deletion"])))
    steps = table.curves["deletion"].shape[-1]
    fractions = table.curves["road_morf"].shape[-1]
    road_units = 2 * fractions * cells * count
    total = marks[-1][1]
    road_start = next(t for done, _, t in marks if done >= total - road_units)
    perturb_units = 2 * (steps - 2) * cells * count + 3 * count
    maps_end = next(t for done, _, t in marks if done >= total - road_units - perturb_units)
    return {"wall": wall, "cpu": cpu, "maps": maps_end, "deletion_insertion": road_start - maps_end,
            "road": wall - road_start, "cells": cells, "images": count, "layers": layers, "steps": steps - 1,
            "fractions": fractions, "methods": len(table.methods)}


def _marker_regions(test_set, indices) -> np.ndarray | None:
    """(N, H, W) boxes of each image's shortcut marker, or None for a workspace without markers."""
    if getattr(test_set, "marker_box", None) is None or test_set.marker_box(int(indices[0])) is None:
        return None
    regions = np.zeros((len(indices), *test_set.mask(int(indices[0])).shape), bool)
    for row, index in enumerate(indices):
        top, left, bottom, right = test_set.marker_box(int(index))
        regions[row, top:bottom, left:right] = True
    return regions


def workspace_table(name: str, count: int = 16) -> str:
    """The page's default table for a bundled workspace as markdown (mean and 95% interval; * = best cell)."""
    import models

    workspace = models.load_workspace(name)
    engine = CamEngine(workspace.model, device="cpu")
    indices = np.sort(np.random.default_rng(0).choice(len(workspace.test_set), count, replace=False))
    masks = np.stack([workspace.test_set.mask(int(i)) for i in indices])
    markers = _marker_regions(workspace.test_set, indices)
    table = fa.faithfulness_table(
        engine, workspace.test_set.tensors(indices),
        fa.table_layers(workspace.model, workspace.default_layer, workspace.input_size), masks=masks,
        regions=None if markers is None else {"marker": markers}, image_ids=indices)
    metrics = [m for m in table.metrics if m not in ("road_morf", "road_lerf")]
    lines = [f"#### {name}: {count} test images, targets = predicted class", "",
             "| method | layer | " + " | ".join(metrics) + " |", "|---|---|" + "---:|" * len(metrics)]
    for row in table.summary_rows():
        cells = [f"{row[m]:.3f} [{row[m + '_low']:.2f}, {row[m + '_high']:.2f}]{' *' if row[m + '_best'] else ''}"
                 for m in metrics]
        lines.append(f"| {row['method']} | {row['layer']} | " + " | ".join(cells) + " |")
    shares = ", ".join(f"{name} {share.mean():.3f}" for name, share in table.area_share.items())
    lines += ["", f"Mean area share (a uniform map's energy share): {shares}."]
    if table.skipped:
        lines += ["", "Skipped: " + "; ".join(f"{m} at {layer} ({why})" for m, layer, why in table.skipped)]
    return "\n".join(lines)


class _FixedCam:
    """What torch-cam's metrics call a CAM extractor, returning a map computed beforehand."""

    def __init__(self, model: torch.nn.Module, cam: torch.Tensor):
        self.model, self.cam = model, cam

    def __call__(self, class_idx=None, scores=None, normalized=True, **_):
        return [self.cam]

    def fuse_cams(self, cams):
        return cams[0]

    def _hooks_off(self):
        return contextlib.nullcontext()


def _torchcam_deletion_insertion(model, images, cam: torch.Tensor, steps: int):
    from torchcam.metrics import DeletionInsertionMetric

    metric = DeletionInsertionMetric(_FixedCam(model, cam), lambda logits: torch.softmax(logits, dim=-1), steps=steps)
    metric.update(images)
    return metric.summary()


def _pgc_road(model, images, maps: np.ndarray, target: int) -> tuple[float, float]:
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    targets = [ClassifierOutputSoftmaxTarget(target)]
    morf = ROADMostRelevantFirstAverage()(images, maps, targets, model)
    lerf = ROADLeastRelevantFirstAverage()(images, maps, targets, model)
    return float(morf[0]), float(lerf[0])


def one_image_vs_peers(arch: str, size: int, steps: int, repeats: int, device: torch.device) -> dict:
    """Deletion + insertion and ROAD for one image, ours against torch-cam and pytorch-grad-cam."""
    model = build(arch, device)
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    engine = CamEngine(model, device=device)
    conv = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)][-1]

    result = engine.explain(images, layers=[conv])
    cam, target = result.cams["gradcam"][conv], result.targets

    def ours_deletion_insertion():
        deletion, insertion = fa.deletion_insertion_curves(engine, images, cam, target, steps,
                                                           insertion_baseline="zero")
        return float(deletion.auc[0]), float(insertion.auc[0])

    def theirs():
        return _torchcam_deletion_insertion(model, images, torch.as_tensor(cam), steps)

    row = {}
    row["ours_di_s"], row["torchcam_di_s"] = _interleaved(ours_deletion_insertion, theirs, repeats)
    row["ours_di"] = ours_deletion_insertion()
    peer = theirs()
    row["torchcam_di"] = (peer["deletion_auc"], peer["insertion_auc"])
    cam = fa.upsampled_maps(cam, (size, size))[:, 0].numpy()
    target = int(target[0])

    def ours_road():
        morf = fa.road_curve(engine, images, cam, [target], order="morf").auc
        lerf = fa.road_curve(engine, images, cam, [target], order="lerf").auc
        return float(morf[0]), float(lerf[0])

    row["ours_road_s"], row["pgc_road_s"] = _interleaved(ours_road, lambda: _pgc_road(model, images, cam, target),
                                                         max(1, repeats // 2))
    row["ours_road"], row["pgc_road"] = ours_road(), _pgc_road(model, images, cam, target)
    original = float(torch.softmax(torch.as_tensor(engine.predict(images)), dim=1)[0, target])
    row["ours_road_diff"] = (row["ours_road"][0] - original, row["ours_road"][1] - original)
    row.update(arch=arch, size=size, steps=steps)
    return row


def section(quick: bool, device: torch.device) -> str:
    table = shapes_table(4 if quick else 16, device)
    arch, size, repeats = ("resnet18", 64, 1) if quick else ("resnet50", 224, 3)
    row = one_image_vs_peers(arch, size, 20, repeats, device)
    di_ratio = row["torchcam_di_s"] / row["ours_di_s"]
    road_ratio = row["pgc_road_s"] / row["ours_road_s"]
    return "\n".join([
        f"### Faithfulness: the page's default table on shapes ({table['images']} images, {table['methods']} "
        f"methods x {len(table['layers'])} layers = {table['cells']} cells)",
        "",
        f"Layers {', '.join(table['layers'])}; deletion + insertion at {table['steps']} steps, ROAD MoRF + LeRF at "
        f"{table['fractions']} fractions, pointing game and energy.",
        "",
        "| part | wall time |",
        "|---|---:|",
        f"| maps (one `explain` for 6 methods x 3 layers, Score-CAM at each layer) | {table['maps']:.1f} s |",
        f"| deletion + insertion | {table['deletion_insertion']:.1f} s |",
        f"| ROAD (noisy linear imputation + forwards) | {table['road']:.1f} s |",
        f"| **whole table** | **{table['wall']:.1f} s** (process CPU {table['cpu']:.1f} s) |",
        "",
        f"### Faithfulness: one {size}x{size} image on {arch} (weights=None), Grad-CAM at the last conv",
        "",
        "| what | ours | peer | peer / ours |",
        "|---|---:|---:|---:|",
        f"| deletion + insertion, {row['steps']} steps (vs torch-cam `DeletionInsertionMetric`) | "
        f"{row['ours_di_s']:.2f} s | {row['torchcam_di_s']:.2f} s | {di_ratio:.1f}x |",
        f"| ROAD MoRF + LeRF, 9 fractions (vs pytorch-grad-cam `ROAD*RelevantFirstAverage`) | "
        f"{row['ours_road_s']:.2f} s | {row['pgc_road_s']:.2f} s | {road_ratio:.1f}x |",
        "",
        f"Values on the same map: deletion / insertion AUC ours {row['ours_di'][0]:.4f} / {row['ours_di'][1]:.4f}, "
        f"torch-cam {row['torchcam_di'][0]:.4f} / {row['torchcam_di'][1]:.4f} (torch-cam steps by ceil(H*W/steps) "
        "pixels, we by round(s*H*W/steps)); ROAD change of the target probability MoRF / LeRF ours "
        f"{row['ours_road_diff'][0]:+.4f} / {row['ours_road_diff'][1]:+.4f}, pytorch-grad-cam "
        f"{row['pgc_road'][0]:+.4f} / {row['pgc_road'][1]:+.4f} (both with 0.01 noise, different draws).",
        "",
        f"Machine: {machine_line(device)}.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, not the speed")
    parser.add_argument("--tables", action="store_true", help="print the tables on shapes and shapes-shortcut")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.tables:
        print(workspace_table("shapes") + "\n\n" + workspace_table("shapes-shortcut"))
        return 0
    print(section(args.quick, torch.device(args.device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
