"""A model given on the command line instead of a TOML file: ``--model nets.py:Net --checkpoint w.pt --data dir``.

The arguments are written as a workspace TOML (absolute paths) into the cache folder and opened like any other,
so the command line and the TOML file can never disagree; the file's path is printed, to be reused or edited.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

CACHE_ENV = "GRADCAM_CACHE_DIR"


def add_model_arguments(parser: argparse.ArgumentParser, *, data: bool = True) -> None:
    group = parser.add_argument_group("a model without a workspace file (instead of --workspace)")
    kinds = group.add_mutually_exclusive_group()
    kinds.add_argument("--model", metavar="FILE.py:CALLABLE", help='your model class or function, e.g. '
                       '"nets.py:XRayClassifier" (the file runs when imported: point it only at code you trust)')
    kinds.add_argument("--timm", metavar="NAME", help="a timm model name, e.g. convnext_atto (needs the timm extra)")
    kinds.add_argument("--hf", metavar="FOLDER", help="a Hugging Face save_pretrained folder (needs the hf extra)")
    kinds.add_argument("--arch", metavar="NAME", help="a torchvision architecture, e.g. resnet50")
    group.add_argument("--checkpoint", type=Path, help="the model's state_dict (.safetensors, .pt, .pth)")
    group.add_argument("--weights", help="with --arch: torchvision weights (default DEFAULT unless --checkpoint; "
                       '"none": random weights)')
    group.add_argument("--pretrained", action="store_true", help="with --timm: timm's cached pretrained weights")
    group.add_argument("--kwargs", type=json.loads, default={}, metavar="JSON",
                       help='keyword arguments for --model/--timm as JSON, e.g. \'{"num_classes": 2}\'')
    group.add_argument("--num-classes", type=int, help="the classifier's output count (default: from the data)")
    group.add_argument("--class-names", help="comma-separated class names, in the model's output order")
    if data:
        group.add_argument("--data", type=Path, help="an ImageFolder of test images: DIR/<class>/<images>")


def has_model_arguments(args: argparse.Namespace) -> bool:
    return any(getattr(args, key, None) for key in ("model", "timm", "hf", "arch"))


def workspace_from_arguments(args: argparse.Namespace) -> str:
    """``args.workspace`` (name or path), or the path of a TOML written from the model arguments."""
    if not has_model_arguments(args):
        if any(getattr(args, key, None) for key in ("checkpoint", "data")):
            raise SystemExit("error: --checkpoint/--data describe a model given with --model, --timm, --hf or "
                             "--arch; give one of those (or a --workspace file)")
        return getattr(args, "workspace", None) or "shapes"
    if getattr(args, "workspace", None):
        raise SystemExit("error: give either --workspace or a model (--model/--timm/--hf/--arch), not both")
    text = workspace_toml(args)
    folder = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gradcam-dashboard") / "workspaces"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_name(args)}-{hashlib.sha256(text.encode()).hexdigest()[:10]}.toml"
    path.write_text(text, encoding="utf-8")
    print(f"workspace file for these arguments: {path} (reuse it with --workspace)")
    return str(path)


def workspace_toml(args: argparse.Namespace) -> str:
    """The TOML text equivalent to the model arguments (absolute paths)."""
    model: dict[str, object] = {}
    if args.model:
        module, _, name = args.model.rpartition(":")
        module = str(Path(module).resolve()) if module.endswith(".py") else module
        model.update(source="python", factory=f"{module}:{name}")
    elif args.timm:
        model.update(source="timm", name=args.timm, pretrained=bool(args.pretrained))
    elif args.hf:
        model.update(source="huggingface", path=str(Path(args.hf).resolve()))
    else:
        model.update(source="torchvision", arch=args.arch)
        if args.weights or not args.checkpoint:
            model["weights"] = args.weights or "DEFAULT"
    if args.kwargs and (args.model or args.timm):
        model["kwargs"] = args.kwargs
    if args.checkpoint:
        model["checkpoint"] = str(Path(args.checkpoint).resolve())
    if args.num_classes:
        model["num_classes"] = args.num_classes
    if args.class_names:
        model["class_names"] = [n.strip() for n in args.class_names.split(",") if n.strip()]
    lines = [f"name = {_toml(_name(args))}", "", "[model]", *(f"{k} = {_toml(v)}" for k, v in model.items())]
    if getattr(args, "data", None):
        lines += ["", "[data]", f"root = {_toml(str(Path(args.data).resolve()))}"]
    return "\n".join(lines) + "\n"


def _name(args: argparse.Namespace) -> str:
    raw = args.model.rpartition(":")[2] if args.model else args.timm or (Path(args.hf).name if args.hf else args.arch)
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(raw)).strip("-.")
    return cleaned or "model"


def _toml(value: object) -> str:
    """A TOML value: strings in JSON's escaping (valid TOML basic strings), booleans lower case, inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value))
