"""Workspaces: a model plus the test split the dashboard browses, described by a TOML file.

The bundled workspaces are TOML files too (``models/workspaces/``), using the same sources as yours:

    from models import load_workspace
    ws = load_workspace("shapes")                 # a bundled name, or a path to a .toml workspace file
    ws.model, ws.transform, ws.class_names, ws.default_layer, ws.test_set
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from models.checkpoints import checkpoint_sha256
from models.datasets import IMAGE_EXTENSIONS, EmptyImageSet, FolderImageSet, ImageSet, class_folders, image_files
from models.errors import WorkspaceError
from models.layer_choice import default_cam_layer, last_linear, list_cam_layers
from models.schema import TableContext, parse_table
from models.sources import source_for
from models.sources.base import LoadedModel, SourceContext
from models.sources.python import resolve_factory
from models.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform
from models.workspace_file import DataTable, PreprocessingTable, TopTable, read_toml, workspace_name

BUNDLED_DIR = Path(__file__).resolve().parent / "workspaces"
BUNDLED_WORKSPACES = ("shapes", "shapes-shortcut", "digits")
DEFAULT_WORKSPACE = "shapes"


@dataclass(eq=False)
class Workspace:
    """Everything the dashboard, the CLI and a notebook need about one model and its test images.

    ``test_set`` is built on first use (a folder is listed then, never decoded up front). See models/README.md.
    """

    name: str
    title: str
    description: str
    source: str
    model: nn.Module
    model_id: str
    class_names: list[str]
    transform: ImageTransform
    default_layer: str
    classifier_layer: str
    test_set_factory: Callable[[], ImageSet] = field(repr=False)
    test_accuracy: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    #: (len(test_set), num_classes) logits saved beside the checkpoint (and checked against it), else None
    test_logits: np.ndarray | None = None
    store: Path | None = None
    toml_path: Path | None = None
    shortcut: bool = False
    warning: str | None = None

    @functools.cached_property
    def test_set(self) -> ImageSet:
        return self.test_set_factory()

    @property
    def input_size(self) -> tuple[int, int]:
        return self.transform.input_size

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.transform.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.transform.std

    def features(self, images: torch.Tensor) -> np.ndarray:
        """Penultimate features (the flattened input of ``classifier_layer``) of normalised ``images``."""
        from gradcam_core import CamEngine

        engine = CamEngine(self.model, device=next(self.model.parameters()).device)
        return engine.features(images, self.classifier_layer)[0]


def list_workspaces() -> list[str]:
    """Names of the bundled workspaces, the default first."""
    return [name for name in BUNDLED_WORKSPACES if (BUNDLED_DIR / f"{name}.toml").is_file()]


def load_workspace(name_or_path: str | os.PathLike = DEFAULT_WORKSPACE) -> Workspace:
    """A bundled workspace by name (see ``list_workspaces()``), or one described by a ``.toml`` file."""
    if isinstance(name_or_path, str) and name_or_path in BUNDLED_WORKSPACES:
        return load_workspace_file(BUNDLED_DIR / f"{name_or_path}.toml")
    path = Path(name_or_path)
    if path.suffix.lower() == ".toml" or path.exists():
        return load_workspace_file(path)
    raise WorkspaceError(
        f"unknown workspace {str(name_or_path)!r}: not a bundled name ({', '.join(list_workspaces())}) and not a "
        "path to a .toml workspace file (see models/README.md, 'Your own model')"
    )


@dataclass
class ParsedWorkspace:
    """A workspace file's tables, validated, before anything is loaded."""

    path: Path
    name: str
    top: TopTable
    source: ModuleType
    model: Any  # the source's Table
    data: DataTable
    preprocessing: PreprocessingTable

    def context(self, section: str) -> TableContext:
        return TableContext(self.path, section)


def parse_workspace_file(path: str | os.PathLike) -> ParsedWorkspace:
    """Read and validate every table of a workspace file (no model is built)."""
    path = Path(path).resolve() if Path(path).exists() else Path(path)
    raw = read_toml(path)
    top_context = TableContext(path, "")
    top = parse_table(TopTable, raw, top_context, ignore=("model", "data", "preprocessing"))
    source, model_raw = source_for(raw["model"], TableContext(path, "model"))
    model = parse_table(source.Table, model_raw, TableContext(path, "model"))
    data = parse_table(DataTable, raw.get("data", {}), TableContext(path, "data"))
    if "data" in raw and (data.root is None) == (data.factory is None):
        raise TableContext(path, "data").error("root", "give exactly one of root and factory",
                                               'root = "images" (an ImageFolder), or a Python data factory')
    if data.root is not None and not data.root.is_dir():
        raise TableContext(path, "data").error(
            "root", f"the data folder {str(data.root)!r} does not exist or is not a directory",
            "point root at an ImageFolder directory (one sub-folder of images per class)")
    preprocessing = parse_table(PreprocessingTable, raw.get("preprocessing", {}), TableContext(path, "preprocessing"))
    return ParsedWorkspace(path, workspace_name(top, path, top_context), top, source, model, data, preprocessing)


def load_workspace_file(path: str | os.PathLike) -> Workspace:
    """Open the workspace described by the TOML file at ``path``."""
    parsed = parse_workspace_file(path)
    names, origin = requested_class_names(parsed)
    context = SourceContext(parsed.context("model"), num_classes=parsed.model.num_classes or (
        len(names) if names else None), class_names=names, class_names_origin=origin)
    loaded: LoadedModel = parsed.source.load(parsed.model, context)
    transform = resolve_transform(parsed, loaded)
    class_names = final_class_names(parsed, names, origin, loaded, transform)
    check_class_folders(parsed, class_names)
    default_layer, classifier_layer = resolve_layers(parsed, loaded.model, transform.input_size)
    card, test_logits = checkpoint_sidecars(loaded.weights_file)
    weights = checkpoint_sha256(loaded.weights_file)[:12] if loaded.weights_file else loaded.weights_tag
    return Workspace(
        name=parsed.name,
        title=parsed.top.title or parsed.name,
        description=parsed.top.description or f"Your model ({loaded.description}) on {_data_label(parsed.data)}.",
        source=parsed.source.NAME,
        model=loaded.model.eval(),
        model_id=f"{parsed.name}:{weights}",
        class_names=class_names,
        transform=transform,
        default_layer=default_layer,
        classifier_layer=classifier_layer,
        test_set_factory=functools.partial(build_test_set, parsed.path, parsed.data, class_names, transform),
        test_accuracy=card.get("metrics", {}).get("test_accuracy"),
        notes={**loaded.notes, **card_notes(card), "source": str(parsed.path), "model": loaded.description,
               "weights_file": str(loaded.weights_file or "")},
        test_logits=test_logits if test_logits is not None and test_logits.shape[1] == len(class_names) else None,
        store=store_path(parsed),
        toml_path=parsed.path,
        shortcut=parsed.top.shortcut,
        warning=parsed.top.warning,
    )


def _data_label(data: DataTable) -> str:
    if data.root is None and data.factory is None:
        return "uploaded images (no [data] table)"
    return f"the images in {data.root.name}/" if data.root is not None else f"the data of {data.factory}"


# ------------------------------------------------------------------------------------------- class names
def requested_class_names(parsed: ParsedWorkspace) -> tuple[list[str] | None, str]:
    """The class names the TOML asks for (a list or a file), else the data folder's sub-folders; and where from."""
    context = parsed.context("model")
    value = parsed.model.class_names
    if isinstance(value, list):
        names, origin = value, "[model] class_names"
    elif value is not None:
        names, origin = _names_from_file(value, context), f"the class names file {value.name}"
    elif parsed.data.root is not None and parsed.data.root.is_dir():
        names = [parsed.data.class_map.get(f, f) for f in class_folders(parsed.data.root)]
        origin = f"the data folder's sub-folders ({parsed.data.root.name}/)"
    else:
        return None, ""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise context.error("class_names", f"duplicate class name(s) {duplicates[:5]} in {origin}",
                            "each class needs a distinct name")
    count = parsed.model.num_classes
    if count is not None and names and count != len(names):
        raise context.error("num_classes", f"num_classes = {count} but {origin} gives {len(names)} class names "
                            f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})",
                            "give exactly one name per classifier output")
    return (list(names) or None), origin


def _names_from_file(path: Path, context: TableContext) -> list[str]:
    if not path.is_file():
        raise context.error("class_names", f"the class names file {str(path)!r} does not exist",
                            "give a text file with one class name per line, relative to the .toml, or a list")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise context.error("class_names", f"the file {str(path)!r} lists no class names", "write one name per line")
    return names


def final_class_names(parsed: ParsedWorkspace, names: list[str] | None, origin: str, loaded: LoadedModel,
                      transform: ImageTransform) -> list[str]:
    """The TOML's names, else the model's own, else the data folder's — checked against the model's output."""
    if parsed.model.class_names is None and loaded.class_names:
        names, origin = loaded.class_names, loaded.class_names_origin
    width = output_width(loaded.model, transform.input_size, parsed.context("model"))
    if names is None:
        return [f"class {i}" for i in range(width)]
    if width != len(names):
        extra = ""
        if "sub-folders" in origin and len(names) > width:
            extra = "; a data folder that is not a class (or one class too many) gives one name too many"
        raise parsed.context("model").error(
            "class_names", f"the model outputs {width} class scores but {origin} gives {len(names)} class names "
            f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''}){extra}",
            "list one name per output, in training order ([model] class_names), or fix the data folders")
    return list(names)


def check_class_folders(parsed: ParsedWorkspace, class_names: list[str]) -> None:
    """Every class sub-folder of the data root must map to a class name, and some image must be there (a directory
    listing that stops at the first image file; no image is read)."""
    root = parsed.data.root
    if root is None:
        return
    folders = class_folders(root)
    unknown = [f for f in folders if parsed.data.class_map.get(f, f) not in class_names]
    if unknown:
        raise parsed.context("data").error(
            "root", f"class folder(s) {', '.join(repr(u) for u in unknown[:5])} in {str(root)!r} do not match any "
            f"class name (the model has {len(class_names)}: {', '.join(repr(c) for c in class_names[:5])}"
            f"{', ...' if len(class_names) > 5 else ''})",
            'rename the folders or map them in [data.class_map], e.g. class_map = { "n01440764" = "tench" }')
    if not any(next(image_files(root / folder, folder), None) for folder in folders):
        raise parsed.context("data").error(
            "root", f"the data folder {str(root)!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)} files "
            f"in its {len(folders)} class sub-folder(s))", "put each class's images in root/<class name>/")


def output_width(model: nn.Module, input_size: tuple[int, int], context: TableContext) -> int:
    """How many class scores the model gives for one zero image of ``input_size`` (a real forward)."""
    from gradcam_core import logits_from_output

    try:
        with torch.no_grad():
            output = model(torch.zeros(1, 3, *input_size))
        return int(logits_from_output(output, 1).shape[1])
    except Exception as error:  # shape errors of the user's model, outputs that are not class scores...
        raise context.error(None, f"the model fails on a {input_size[0]}×{input_size[1]} input "
                            f"({type(error).__name__}: {str(error).splitlines()[0][:300]})",
                            "set [preprocessing] input_size to what the model expects") from None


# ------------------------------------------------------------------------------------------- the rest
def resolve_transform(parsed: ParsedWorkspace, loaded: LoadedModel) -> ImageTransform:
    """[preprocessing] wins field by field over the model's own preprocessing; else 224×224, ImageNet mean/std."""
    prep, own = parsed.preprocessing, loaded.preprocessing
    context = parsed.context("preprocessing")
    size = prep.input_size
    if isinstance(size, int):
        size = [size, size]
    if size is not None and (len(size) != 2 or min(size) <= 0):
        raise context.error("input_size", f"got {prep.input_size!r}", "expected a positive int or [height, width]")
    input_size = tuple(size) if size is not None else (own.input_size if own else (224, 224))
    resize = prep.resize if prep.resize is not None else (own.resize if own and size is None else None)
    if resize is not None and resize < max(input_size):
        raise context.error("resize", f"resize = {resize} is smaller than input_size {list(input_size)}",
                            "resize the shorter side to at least the crop size (e.g. 256 for 224)")
    mean = prep.mean or (own.mean if own else IMAGENET_MEAN)
    std = prep.std or (own.std if own else IMAGENET_STD)
    for field_name, values in (("mean", mean), ("std", std)):
        if len(values) != 3 or (field_name == "std" and min(values) <= 0):
            raise context.error(field_name, f"got {list(values)}", "expected three numbers (std: positive)")
    interpolation = prep.interpolation or (own.interpolation if own else "bilinear")
    try:
        return ImageTransform(input_size, mean, std, resize=resize, interpolation=interpolation)
    except ValueError as error:
        raise context.error("interpolation", str(error), 'expected "bilinear", "bicubic", "nearest" or "lanczos"'
                            ) from None


def resolve_layers(parsed: ParsedWorkspace, model: nn.Module, input_size: tuple[int, int]) -> tuple[str, str]:
    """(default CAM layer, classifier layer): the TOML's, checked, else the defaults of ``models.layer_choice``."""
    context = parsed.context("model")
    cam_layers = list_cam_layers(model, input_size)
    default = parsed.model.default_layer or default_cam_layer(model)
    if default is None:
        raise context.error(None, "the model has no Conv2d layer and no transformer block",
                            "Grad-CAM needs a convolutional feature map or a token grid")
    if default not in cam_layers:
        from gradcam_core.layers import suggest

        hints = [c for c in cam_layers if c.startswith(default + ".")][-3:] or suggest(default, cam_layers)
        raise context.error("default_layer", f"{default!r} is not a CAM layer of the model"
                            + (f" (CAM layers like it: {', '.join(hints)})" if hints else ""),
                            "name a Conv2d or a transformer block/norm (`gradcam explain --list-layers`), or omit it")
    modules = dict(model.named_modules())
    classifier = parsed.model.classifier_layer or last_linear(model) or default
    if classifier not in modules:
        raise context.error("classifier_layer", f"{classifier!r} is not a module of the model",
                            "name the final classifier module (e.g. 'fc'), or omit it for the last Linear")
    return default, classifier


def build_test_set(toml_path: Path, data: DataTable, class_names: list[str], transform: ImageTransform) -> ImageSet:
    """The ImageFolder at ``root``, the data factory's set, or an empty set when there is no [data] table."""
    if data.root is None and data.factory is None:
        return EmptyImageSet(transform)
    if data.root is not None:
        return FolderImageSet(data.root, class_names, transform, folder_to_class=data.class_map)
    factory = resolve_factory(data.factory, TableContext(toml_path, "data"), "factory")
    test_set = factory(transform, **data.kwargs)
    if not isinstance(test_set, ImageSet):
        raise TableContext(toml_path, "data").error("factory", f"{data.factory} returned "
                                                    f"{type(test_set).__name__}", "return a models.ImageSet")
    return test_set


def store_path(parsed: ParsedWorkspace) -> Path | None:
    """``[data] store`` when set (it may not exist yet), else ``<toml stem>.store/`` beside the TOML if it exists."""
    if parsed.data.store is not None:
        return parsed.data.store
    beside = parsed.path.with_name(f"{parsed.path.stem}.store")
    return beside if beside.is_dir() else None


def checkpoint_sidecars(weights_file: Path | None) -> tuple[dict, np.ndarray | None]:
    """A checkpoint's card (``<stem>.json``: metrics, seed, date...) and its test split's logits
    (``<stem>.test-logits.npz``, used only if they were made by this very checkpoint)."""
    if weights_file is None or not weights_file.is_file():
        return {}, None
    card_path = weights_file.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    logits_path = weights_file.with_name(f"{weights_file.stem}.test-logits.npz")
    if not logits_path.is_file():
        return card, None
    with np.load(logits_path) as data:
        if str(data["checkpoint_sha256"]) != checkpoint_sha256(weights_file):
            return card, None
        return card, data["logits"].astype(np.float32)


def card_notes(card: dict) -> dict[str, Any]:
    notes = {k: card[k] for k in ("seed", "date", "epochs", "train_seconds") if k in card}
    if card.get("metrics"):
        notes["metrics"] = dict(card["metrics"])
    return notes


