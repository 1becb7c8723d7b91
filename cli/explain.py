"""``gradcam explain IMAGE --workspace W --out DIR``: original, heatmap and overlay PNGs plus result.json.

    gradcam explain photo.jpg --workspace shapes --out out/
    gradcam explain photo.jpg --arch resnet50 --weights DEFAULT --method gradcampp --layer layer3.5.conv3 --out out/
    gradcam explain photo.jpg --workspace my_workspace.toml --target 3 --out out/
    gradcam explain --workspace my_workspace.toml --list-layers

result.json: {"top5": [{"index", "name", "probability"}], "layer", "method", "target": {"index", "name"}, ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.adhoc import add_model_arguments, workspace_from_arguments

METHODS = ("gradcam", "gradcampp", "hirescam", "xgradcam", "layercam", "eigencam", "scorecam")
COLORMAPS = ("jet", "turbo", "viridis", "inferno", "magma", "plasma", "cividis", "gray")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:\n  gradcam explain img.png --workspace shapes --out out/\n"
                     "  gradcam explain img.jpg --arch resnet18 --weights none --num-classes 1000 --out out/\n"
                     "  gradcam explain img.jpg --workspace path/to/workspace.toml --layer layer4.1.conv2 --out out/")
    parser.add_argument("image", type=Path, nargs="?", help="image file to explain (PNG, JPEG, ...)")
    parser.add_argument("--workspace", help="bundled workspace name (default: shapes) or a workspace .toml file")
    add_model_arguments(parser, data=False)
    parser.add_argument("--layer", default=None, help="CAM layer (default: the workspace's default layer)")
    parser.add_argument("--list-layers", action="store_true", help="print every CAM layer name and exit")
    parser.add_argument("--method", default="gradcam", help=f"one of {', '.join(METHODS)} (default gradcam)")
    parser.add_argument("--target", type=int, default=None, help="class index to explain (default: predicted)")
    parser.add_argument("--colormap", default="jet", help=f"one of {', '.join(COLORMAPS)} (default jet)")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1] (default 0.5)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--out", type=Path, default=Path("gradcam_out"), help="output folder (created if missing)")


def run(args: argparse.Namespace) -> int:
    from gradcam_core import list_cam_layers
    from gradcam_core.images import ImageLoadError, load_image
    from models import WorkspaceError, load_workspace

    if not 0.0 <= args.alpha <= 1.0:
        return _fail(f"--alpha must be in [0, 1], got {args.alpha}")
    try:
        workspace = load_workspace(workspace_from_arguments(args))
    except (WorkspaceError, FileNotFoundError) as error:
        return _fail(str(error))
    if args.list_layers:
        print("\n".join(list_cam_layers(workspace.model, workspace.input_size)))
        return 0
    if args.image is None:
        return _fail("give an image file to explain (or --list-layers)")
    try:
        image = load_image(args.image)
    except ImageLoadError as error:
        return _fail(str(error))
    try:
        summary = explain_to_folder(workspace, image, args)
    except ValueError as error:  # unknown layer, method, colormap or target: the core's message says which
        return _fail(str(error))
    top = summary["top5"][0]
    print(f"{args.image}: {top['name']} ({top['probability']:.1%}); {summary['method_title']} at {summary['layer']} "
          f"for class {summary['target']['name']!r} -> {args.out}/")
    return 0


def explain_to_folder(workspace, image, args: argparse.Namespace) -> dict:
    """Run the engine on ``image`` and write the three pictures and result.json into ``args.out``."""
    import numpy as np
    from PIL import Image

    from gradcam_core import CAM_METHODS, CamEngine, colorize, overlay, upsample

    layer = args.layer or workspace.default_layer
    engine = CamEngine(workspace.model, device=args.device)
    seen = np.asarray(workspace.transform.resized(image), dtype=np.uint8)
    result = engine.explain(workspace.transform(image)[None], layers=[layer], targets=args.target,
                            methods=(args.method,))
    method = result.methods[0]
    cam = upsample(result.cams[method][layer][0], seen.shape[:2])
    heat = colorize(cam, args.colormap)
    args.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(seen).save(args.out / "original.png")
    Image.fromarray(heat).save(args.out / "heatmap.png")
    Image.fromarray(overlay(seen, heat, args.alpha)).save(args.out / "overlay.png")
    probabilities = result.probabilities()[0]
    names = workspace.class_names
    target = int(result.targets[0])
    summary = {
        "image": str(args.image),
        "workspace": workspace.name,
        "model_id": workspace.model_id,
        "layer": layer,
        "method": method,
        "method_title": CAM_METHODS[method].title,
        "target": {"index": target, "name": names[target]},
        "top5": [{"index": int(i), "name": names[int(i)], "probability": round(float(probabilities[i]), 6)}
                 for i in np.argsort(-probabilities, kind="stable")[:5]],
        "map_shape": list(result.cams[method][layer][0].shape),
        "colormap": args.colormap,
        "alpha": args.alpha,
        "device": str(engine.device),
        "files": ["original.png", "heatmap.png", "overlay.png"],
    }
    (args.out / "result.json").write_text(json.dumps(summary, indent=2))
    return summary


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
