"""``python -m bench`` (or ``make bench``): every benchmark in one process, printed and written to BENCHMARKS.md.

    python -m bench                 # full run (CPU: ~10-20 minutes on 2 cores)
    python -m bench --quick         # tiny sizes, seconds: keeps the script working (run by make test)
    python -m bench --only sweep,topk --out /tmp/b.md
    BENCH_BASELINE=54746f8 TORCHCAM_DEMO=PATH/torch-cam/demo/app.py python -m bench --only browser
                                    # the browser section with a before column and torch-cam's demo
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sys
import traceback
from pathlib import Path

import torch

from bench import engine_bench as eb

SECTIONS = ("sweep", "topk", "gallery", "limits", "models", "sources", "memory", "tsne", "dashboard", "store", "scale",
            "faithfulness", "browser")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}×" if b > 0 else "n/a"


def _goal(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _peer_table(ours_label: str, row: dict, floor: bool = False, per: str = "layer") -> list[str]:
    """Rows of ours vs (optionally) the floor vs each peer, with each one's time relative to ours."""
    lines = ["| what | median time | vs ours |", "|---|---:|---:|",
             f"| ours: {ours_label} | {row['ours_s'] * 1000:.0f} ms | 1.0× |"]
    if floor:
        lines.append(f"| floor: bare forward + backward | {row['floor_s'] * 1000:.0f} ms | "
                     f"{row['floor_s'] / row['ours_s']:.2f}× |")
    for key, name in (("pgc_s", "pytorch-grad-cam"), ("torchcam_s", "torch-cam")):
        lines.append(f"| {name}, {per} | {row[key] * 1000:.0f} ms | {_ratio(row[key], row['ours_s'])} |")
    return lines


def section_sweep(quick: bool, device: torch.device) -> str:
    arch, size, repeats = ("resnet18", 32, 1) if quick else ("resnet50", 224, 7)
    row = eb.layer_sweep(arch, size, repeats, device)
    vs_floor = row["ours_s"] / row["floor_s"]
    vs_peers = min(row["pgc_s"], row["torchcam_s"]) / row["ours_s"]
    return "\n".join([
        f"### Layer sweep: Grad-CAM for all {row['layers']} Conv2d of {arch} on one {size}×{size} image",
        "",
        *_peer_table("`explain(layers=None)`, one pass", row, floor=True, per="one call per layer"),
        "",
        f"Goals: ours ≤ 1.2× the floor — {vs_floor:.2f}× ({_goal(vs_floor <= 1.2)}); "
        f"≥ 50× faster than the peers' loop — {vs_peers:.0f}× ({_goal(vs_peers >= 50)}).",
    ])


def section_topk(quick: bool, device: torch.device) -> str:
    arch, size, repeats = ("resnet18", 32, 1) if quick else ("resnet50", 224, 7)
    row = eb.topk_targets(arch, size, repeats, device)
    best_peer = min(row["pgc_s"], row["torchcam_s"])
    speedup = best_peer / row["ours_s"]
    return "\n".join([
        f"### Top-5 targets: maps for the 5 best classes at the last conv of {arch}, {size}×{size}",
        "",
        *_peer_table("`explain_topk(k=5)`, one forward + one batched backward", row, per="5 calls"),
        "",
        f"Goal ≥ 10× — {speedup:.1f}× against the faster peer ({_goal(speedup >= 10)}).",
    ])


def section_gallery(quick: bool, device: torch.device) -> str:
    arch, size, repeats, n = ("resnet18", 32, 1, 3) if quick else ("resnet50", 224, 5, 20)
    row = eb.gallery(arch, size, repeats, device, n=n)
    speedup = min(row["pgc_s"], row["torchcam_s"]) / row["ours_s"]
    return "\n".join([
        f"### Gallery: Grad-CAM at the last conv of {arch} for {n} images ({size}×{size})",
        "",
        *_peer_table("one batched `explain`", row, per="one call per image"),
        "",
        f"Goal ≥ 2× — {speedup:.1f}× against the faster peer ({_goal(speedup >= 2)}).",
    ])


def section_limits(quick: bool, device: torch.device) -> str:
    arch, size, repeats, n = ("resnet18", 32, 1, 3) if quick else ("resnet50", 224, 7, 20)
    row = eb.limits(arch, size, repeats, device, n=n)
    saved = 1 - row["batch_forward_s"] / row["singles_forward_s"]
    return "\n".join([
        f"### What bounds the ratios against torch-cam ({arch}, {size}×{size}, {device})",
        "",
        "| what | median time |",
        "|---|---:|",
        f"| one forward (no grad) | {row['forward_s'] * 1000:.0f} ms |",
        f"| forward + backward to the input, no weight gradients | {row['input_backward_s'] * 1000:.0f} ms |",
        f"| torch-cam, one call at the first conv | {row['torchcam_first_s'] * 1000:.0f} ms |",
        f"| torch-cam, one call at the last conv | {row['torchcam_last_s'] * 1000:.0f} ms |",
        f"| {n} single-image forwards, one after another | {row['singles_forward_s'] * 1000:.0f} ms |",
        f"| one forward of a batch of {n} | {row['batch_forward_s'] * 1000:.0f} ms "
        f"({f'{saved:.0%} less' if saved >= 0 else f'{-saved:.0%} more'}) |",
        "",
        "torch-cam stops each call's backward at its layer, so its per-layer loop costs about half a forward + "
        "backward per layer, while a map at the first conv needs at least a forward and a backward to the input "
        "(row 2): that bounds any one-pass sweep to roughly layers × (torch-cam's mean call) / row 2 against it. "
        "Each torch-cam top-5 call includes a forward, so one forward for all five is at most ~5× faster. On a "
        "CPU a batch saves little or nothing over single forwards (last two rows), which bounds the gallery "
        "ratio; a GPU changes that, and this task had none to measure on.",
    ])


def section_models(quick: bool, device: torch.device) -> str:
    archs = ("squeezenet1_1",) if quick else ("vgg16", "mobilenet_v3_large")
    size, repeats = (32, 1) if quick else (224, 5)
    lines = [
        f"### Other architectures ({size}×{size}): layer sweep and top-5",
        "",
        "| model | Conv2d | sweep: ours | floor | ours/floor | pytorch-grad-cam loop | torch-cam loop "
        "| top-5: ours | pgc ×5 | torch-cam ×5 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arch in archs:
        s = eb.layer_sweep(arch, size, repeats, device)
        t = eb.topk_targets(arch, size, repeats, device)
        lines.append(
            f"| {arch} | {s['layers']} | {s['ours_s'] * 1000:.0f} ms | {s['floor_s'] * 1000:.0f} ms | "
            f"{s['ours_s'] / s['floor_s']:.2f}× | {s['pgc_s'] * 1000:.0f} ms ({_ratio(s['pgc_s'], s['ours_s'])}) | "
            f"{s['torchcam_s'] * 1000:.0f} ms ({_ratio(s['torchcam_s'], s['ours_s'])}) | "
            f"{t['ours_s'] * 1000:.0f} ms | {t['pgc_s'] * 1000:.0f} ms ({_ratio(t['pgc_s'], t['ours_s'])}) | "
            f"{t['torchcam_s'] * 1000:.0f} ms ({_ratio(t['torchcam_s'], t['ours_s'])}) |"
        )
    lines += ["", "vgg16 has a ReLU(inplace=True) after every conv; mobilenet_v3 has depthwise convs and "
                  "Hardswish/ReLU in place."]
    return "\n".join(lines)


def section_memory(quick: bool, device: torch.device) -> str:
    arch, size = ("resnet18", 32) if quick else ("resnet50", 224)
    rss = eb.peak_rss(arch, size)
    return "\n".join([
        f"### Peak resident memory of the layer sweep ({arch}, one {size}×{size} image, fresh process each)",
        "",
        "| what | RSS after loading | peak RSS | growth |",
        "|---|---:|---:|---:|",
        *[f"| {label} | {rss[k]['before_mb']:.0f} MB | {rss[k]['peak_mb']:.0f} MB | "
          f"{rss[k]['peak_mb'] - rss[k]['before_mb']:.0f} MB |"
          for k, label in (("floor", "bare forward + backward"), ("ours", "ours, all layers in one pass"),
                           ("pgc", "pytorch-grad-cam, one call per layer"))],
        "",
        "Ours holds every layer's activation (plus a copy handed to the network) and gradient at once, but "
        "computes no weight gradients, which a plain backward allocates; pytorch-grad-cam's loop also builds "
        "53 graphs in turn and keeps CPU copies.",
    ])


def section_tsne(quick: bool, device: torch.device) -> str:
    module = importlib.import_module("bench.tsne_bench")
    return module.run(quick=quick)


def section_dashboard(quick: bool, device: torch.device) -> str:
    module = importlib.import_module("bench.dashboard_bench")
    return module.run(quick=quick)


def section_store(quick: bool, device: torch.device) -> str:
    """``gradcam precompute`` throughput, Ray's overhead, the store reader at 2k/100k rows (bench/store_bench.py)."""
    module = importlib.import_module("bench.store_bench")
    return module.run(quick=quick)


def section_scale(quick: bool, device: torch.device) -> str:
    """The dashboard on a 2,000- and a 100,000-row store: cold start, pages, RSS (bench/dashboard_scale_bench.py)."""
    module = importlib.import_module("bench.dashboard_scale_bench")
    return module.run(quick=quick)


def section_sources(quick: bool, device: torch.device) -> str:
    """Opening a workspace from each model source, and a ViT swept at every CAM layer (bench/sources_bench.py)."""
    module = importlib.import_module("bench.sources_bench")
    return module.run(quick=quick)


def section_faithfulness(quick: bool, device: torch.device) -> str:
    """The faithfulness page's default table, and one image's metrics next to torch-cam and pytorch-grad-cam
    (bench/faithfulness_bench.py)."""
    module = importlib.import_module("bench.faithfulness_bench")
    return module.section(quick, device)


def section_browser(quick: bool, device: torch.device) -> str:
    """Input → picture latency in headless Chromium (bench/browser_bench.py). ``BENCH_BASELINE=REF`` also measures
    the app at a git ref side by side; ``TORCHCAM_DEMO=PATH/demo/app.py`` adds torch-cam's Streamlit demo."""
    module = importlib.import_module("bench.browser_bench")
    if not (Path(module.CHROMIUM).is_file() and os.access(module.CHROMIUM, os.X_OK)):
        if os.environ.get("CI"):
            raise RuntimeError(f"Chromium not found at {module.CHROMIUM} (make browser-deps)")
        return f"### Browser latency\n\nNot measured: Chromium not found at {module.CHROMIUM} (`make browser-deps`)."
    demo = os.environ.get("TORCHCAM_DEMO")
    return module.section(quick=quick, torchcam_demo=None if quick or not demo else Path(demo),
                          baseline=None if quick else os.environ.get("BENCH_BASELINE") or None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown file to write (default BENCHMARKS.md; none with --quick)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")

    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"_Measured {stamp}{' (quick mode: tiny sizes, not for reading)' if args.quick else ''}: "
             f"{eb.machine_line(device)}._"]
    failed = []
    for name in wanted:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            text = globals()[f"section_{name}"](args.quick, device)
        except Exception as exc:  # one broken section must not hide the others' numbers
            failed.append(name)
            traceback.print_exc()
            text = f"### {name}\n\nFailed: `{type(exc).__name__}: {exc}`"
        print(text + "\n", flush=True)
        parts.append(text)
    out = args.out or (None if args.quick else Path("BENCHMARKS.md"))
    if out is not None:
        header = "# Benchmarks\n\nProduced by `python -m bench` (`make bench`); ratios are measured side by side " \
                 "in one process, medians after a warm-up.\n\n"
        out.write_text(header + "\n\n".join(parts) + "\n")
        print(f"[bench] wrote {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
