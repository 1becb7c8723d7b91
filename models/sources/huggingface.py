"""``source = "huggingface"``: a Hugging Face image classifier saved with ``save_pretrained``.

    [model]
    source = "huggingface"
    path = "hf-model"        # the folder: config.json + model.safetensors (+ preprocessor_config.json)

Read from the folder only (``local_files_only``: no network). Class names come from the config's id2label and
preprocessing from the folder's image-processor config, unless the TOML says otherwise. The ``.logits`` of the
model's output are explained. Needs the ``hf`` extra: ``pip install -e .[hf]``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from models.schema import spec
from models.sources.base import LoadedModel, ModelTable, SourceContext, import_optional
from models.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform

NAME = "huggingface"
EXTRA = "hf"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box"}


@dataclass(frozen=True)
class Table(ModelTable):
    path: Path | None = spec("the folder written by model.save_pretrained(folder)", kind=Path, required=True,
                             expected="a folder path relative to the .toml, holding config.json and the weights")


def load(table: Table, context: SourceContext) -> LoadedModel:
    folder = _check_folder(table.path, context)
    transformers = import_optional("transformers", "hf", 'source = "huggingface"')
    try:
        model = transformers.AutoModelForImageClassification.from_pretrained(str(folder), local_files_only=True)
    except Exception as error:  # unknown architecture, missing weights, a config from a newer version...
        raise context.error("path", f"transformers could not load an image classifier from {str(folder)!r} "
                            f"({type(error).__name__}: {str(error).splitlines()[0][:300]})",
                            "save it with AutoModelForImageClassification (or its class) .save_pretrained(folder)"
                            ) from None
    model.eval()
    names = id2label_names(model.config)
    return LoadedModel(model, _weights_file(folder), class_names=names,
                       class_names_origin=f"the id2label of {folder.name}/config.json" if names else "",
                       preprocessing=processor_transform(folder), description=f"{type(model).__name__} ({folder.name})")


def _check_folder(path: Path, context: SourceContext) -> Path:
    if not path.is_dir():
        what = "is a file; give the folder that holds it" if path.is_file() else "does not exist"
        raise context.error("path", f"{str(path)!r} {what}", "point path at a save_pretrained folder")
    if not (path / "config.json").is_file():
        raise context.error("path", f"{str(path)!r} has no config.json",
                            "point path at the folder written by model.save_pretrained(folder)")
    if _weights_file(path) is None:
        raise context.error("path", f"{str(path)!r} holds no weights ({' or '.join(WEIGHT_FILES[::2])})",
                            "save the model with model.save_pretrained(folder)")
    return path


def _weights_file(folder: Path) -> Path | None:
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)


def id2label_names(config) -> list[str] | None:
    """The config's class names, or None when they are the generic LABEL_0, LABEL_1, ..."""
    mapping = getattr(config, "id2label", None) or {}
    names = [str(mapping.get(i, mapping.get(str(i), ""))) for i in range(len(mapping))]
    if not names or any(not n for n in names) or all(re.fullmatch(r"LABEL_\d+", n) for n in names):
        return None
    return names


def processor_transform(folder: Path) -> ImageTransform | None:
    """The folder's image-processor config (``preprocessor_config.json``) as our transform, or None."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text(encoding="utf-8"))
    mean = tuple(config.get("image_mean") or IMAGENET_MEAN)
    std = tuple(config.get("image_std") or IMAGENET_STD)
    if not config.get("do_normalize", True):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    interpolation = _PIL_RESAMPLE.get(config.get("resample"), "bilinear")
    size = config.get("size") or {}
    crop = config.get("crop_size") or {}
    if isinstance(size, int):
        size = {"shortest_edge": size}
    if config.get("do_center_crop") and crop:
        crop_hw = (int(crop["height"]), int(crop["width"])) if "height" in crop else (int(crop["shortest_edge"]),) * 2
        resize = int(size.get("shortest_edge") or min(size.get("height", crop_hw[0]), size.get("width", crop_hw[1])))
        return ImageTransform(crop_hw, mean, std, resize=max(resize, *crop_hw), interpolation=interpolation)
    if "height" in size and "width" in size:
        return ImageTransform((int(size["height"]), int(size["width"])), mean, std, interpolation=interpolation)
    if "shortest_edge" in size:  # ConvNeXt-style: resize to edge / crop_pct, centre-crop edge
        edge = int(size["shortest_edge"])
        crop_pct = float(config.get("crop_pct") or 1.0)
        resize = round(edge / crop_pct) if crop_pct < 1.0 else edge
        return ImageTransform((edge, edge), mean, std, resize=resize, interpolation=interpolation)
    return None
