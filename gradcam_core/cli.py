"""``python -m gradcam_core``: explain one image file and write original, heatmap and overlay PNGs plus a JSON.

    python -m gradcam_core photo.jpg --workspace shapes --out out/
    python -m gradcam_core photo.jpg --arch resnet50 --weights DEFAULT --method gradcampp --layer layer3.5.conv3
    python -m gradcam_core photo.jpg --workspace my_workspace.toml --target 3

The model comes from the project's registry (``models``): a bundled or TOML workspace, or a torchvision
architecture. The core itself needs nothing but torch and numpy; this entry point also uses Pillow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gradcam_core.engine import CamEngine
from gradcam_core.images import ImageLoadError, load_image
from gradcam_core.layers import list_conv_layers
from gradcam_core.methods import CAM_METHODS, METHOD_NAMES
from gradcam_core.render import COLORMAPS, denormalise, heatmap_image, overlay, upsample


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gradcam_core",
        description="Explain one image with Grad-CAM (or a related method) and write "
                    "original.png, heatmap.png, overlay.png and result.json (top-5 and the layer used).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m gradcam_core img.png --workspace shapes\n"
               "  python -m gradcam_core img.jpg --arch resnet18 --weights none --num-classes 1000\n"
               "  python -m gradcam_core img.jpg --workspace path/to/workspace.toml --layer layer4.1.conv2",
    )
    parser.add_argument("image", type=Path, nargs="?", help="image file to explain (PNG, JPEG, ...)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--workspace", help="bundled workspace name (default: shapes) or a workspace .toml file")
    source.add_argument("--arch", help="torchvision architecture name, e.g. resnet18, vgg16, convnext_tiny")
    parser.add_argument("--weights", default="DEFAULT",
                        help="with --arch: torchvision weights name, DEFAULT, or 'none' for random weights")
    parser.add_argument("--num-classes", type=int, default=None, help="with --arch --weights none: output size")
    parser.add_argument("--layer", default=None, help="Conv2d layer name (default: the last Conv2d)")
    parser.add_argument("--list-layers", action="store_true", help="print every Conv2d layer name and exit")
    parser.add_argument("--method", default="gradcam", choices=METHOD_NAMES)
    parser.add_argument("--target", type=int, default=None, help="class index to explain (default: predicted)")
    parser.add_argument("--colormap", default="jet", choices=list(COLORMAPS))
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1] (default 0.5)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--out", type=Path, default=Path("gradcam_out"), help="output folder (created)")
    return parser


def _load_model(args):
    """(model, transform, class_names, label) from the registry in ``models``."""
    try:
        import models
    except ImportError as exc:  # the core used on its own, outside this repository
        raise SystemExit(f"error: the model registry ('models' package) is not importable: {exc}") from exc
    if args.arch:
        weights = None if str(args.weights).lower() == "none" else args.weights
        model, transform, class_names = models.load_torchvision(args.arch, weights=weights,
                                                                 num_classes=args.num_classes)
        return model, transform, class_names, f"{args.arch} (weights={weights})"
    workspace = models.load_workspace(args.workspace or models.DEFAULT_WORKSPACE)
    return workspace.model, workspace.transform, workspace.class_names, workspace.name


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from PIL import Image

    if not 0.0 <= args.alpha <= 1.0:
        print(f"error: --alpha must be in [0, 1], got {args.alpha}", file=sys.stderr)
        return 2
    try:
        model, transform, class_names, source = _load_model(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    layers = list_conv_layers(model)
    if args.list_layers:
        print("\n".join(layers))
        return 0
    if args.image is None:
        print("error: give an image file to explain (or --list-layers)", file=sys.stderr)
        return 2
    try:
        image = load_image(args.image)
    except ImageLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    layer = args.layer or layers[-1]
    engine = CamEngine(model, device=args.device)
    tensor = transform(image)[None]
    try:
        result = engine.explain(tensor, layers=[layer], targets=args.target, methods=(args.method,))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if hasattr(transform, "resized"):
        seen = np.asarray(transform.resized(image), dtype=np.uint8)
    else:
        seen = denormalise(tensor[0], getattr(transform, "mean", (0.485, 0.456, 0.406)),
                           getattr(transform, "std", (0.229, 0.224, 0.225)))
    cam = result.cams[args.method][layer][0]
    size = seen.shape[:2]
    args.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(seen).save(args.out / "original.png")
    Image.fromarray(heatmap_image(cam, size, args.colormap)).save(args.out / "heatmap.png")
    Image.fromarray(overlay(seen, upsample(cam, size), args.alpha, args.colormap)).save(args.out / "overlay.png")

    probs = result.probabilities()[0]
    order = np.argsort(-probs)[:5]
    summary = {
        "image": str(args.image),
        "model": source,
        "layer": layer,
        "method": args.method,
        "method_title": CAM_METHODS[args.method].title,
        "target": {"index": int(result.targets[0]), "name": class_names[int(result.targets[0])]},
        "top5": [{"index": int(i), "name": class_names[int(i)], "probability": round(float(probs[i]), 6)}
                 for i in order],
        "map_shape": list(cam.shape),
        "device": str(engine.device),
        "files": ["original.png", "heatmap.png", "overlay.png"],
    }
    (args.out / "result.json").write_text(json.dumps(summary, indent=2))
    top = summary["top5"][0]
    print(f"{args.image}: {top['name']} ({top['probability']:.1%}); {summary['method_title']} at {layer} "
          f"for class {summary['target']['name']!r} -> {args.out}/")
    return 0
