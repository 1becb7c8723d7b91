"""Bring your own model and images, described by a small TOML workspace file (see models/README.md).

    name = "pets"
    [model]
    arch = "resnet18"                 # torchvision architecture + local state_dict or `torchscript = "m.pt"`
    checkpoint = "pets.safetensors"   # .pt/.pth (torch.load(weights_only=True)) or .safetensors
    class_names = ["cat", "dog"]      # or "classes.txt", one per line; default: the data's folder names
    [data]
    root = "images"                   # ImageFolder: images/<class>/<file>
    [preprocessing]
    input_size = [224, 224]

Relative paths resolve against the TOML file's folder. Every problem is a ``WorkspaceError`` saying which field
or file was wrong, with the value, and what to do.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.checkpoints import (
    STATE_DICT_SUFFIXES,
    apply_state_dict,
    checkpoint_sha256,
    load_state_dict_file,
    require_file,
)
from models.datasets import FolderImageSet
from models.errors import WorkspaceError
from models.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

_FIELDS = {
    "": {"name", "title", "description", "model", "data", "preprocessing"},
    "model": {"arch", "checkpoint", "weights", "torchscript", "num_classes", "class_names", "default_layer",
              "classifier_layer"},
    "data": {"root", "class_map"},
    "preprocessing": {"input_size", "resize", "mean", "std"},
}
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Fields:
    """Typed access to one TOML table, with errors naming the file, the field and what is expected."""

    def __init__(self, table: dict[str, Any], section: str, source: Path):
        self.table, self.section, self.source = table, section, source
        unknown = sorted(set(table) - _FIELDS[section])
        if unknown:
            import difflib

            hints = [f"{u!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(
                u, _FIELDS[section], n=1)) else repr(u) for u in unknown]
            raise self.error(f"unknown field(s) {', '.join(hints)}",
                             f"allowed here: {', '.join(sorted(_FIELDS[section]))}", field=None)

    def where(self, field: str | None) -> str:
        if field is None:
            return f"[{self.section}]" if self.section else "top level"
        return f"{self.section}.{field}" if self.section else field

    def error(self, problem: str, expected: str, field: str | None) -> WorkspaceError:
        return WorkspaceError(f"workspace file {str(self.source)!r}, {self.where(field)}: {problem}; {expected}")

    def get(self, field: str, kinds: type | tuple[type, ...], expected: str, required: bool = False,
            default: Any = None) -> Any:
        if field not in self.table:
            if required:
                raise self.error("missing required field", f"expected {expected}", field)
            return default
        value = self.table[field]
        if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            raise self.error(f"got {value!r}", f"expected {expected}", field)
        if not isinstance(value, kinds):
            raise self.error(f"got {value!r} ({type(value).__name__})", f"expected {expected}", field)
        return value

    def path(self, field: str, what: str, required: bool = False) -> Path | None:
        value = self.get(field, str, "a file path (string), relative to the .toml file's folder", required)
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.source.parent / path)

    def numbers(self, field: str, count: int, expected: str, default: tuple) -> tuple[float, ...]:
        value = self.get(field, list, expected, default=None)
        if value is None:
            return default
        if len(value) != count or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise self.error(f"got {value!r}", f"expected {expected}", field)
        return tuple(float(v) for v in value)


def read_workspace_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise WorkspaceError(f"workspace file {str(path)!r} does not exist; give the path to a .toml workspace file "
                             "(see models/README.md) or a bundled workspace name")
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise WorkspaceError(f"workspace file {str(path)!r} is not valid TOML: {error}; fix the syntax (strings in "
                             'quotes, lists in [ ], tables as [model] / [data])') from error
    except UnicodeDecodeError as error:
        raise WorkspaceError(f"workspace file {str(path)!r} is not UTF-8 text ({error})") from error


def _class_names(model: _Fields, data_root: Path, class_map: dict[str, str]) -> list[str]:
    value = model.get("class_names", (list, str), "a list of strings, or the path of a text file with one class "
                      "name per line")
    if value is None:
        folders = sorted(p.name for p in data_root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return [class_map.get(f, f) for f in folders]
    if isinstance(value, str):
        file = require_file(model.path("class_names", "class names file"), "class names file", "model.class_names")
        names = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
        if not names:
            raise model.error(f"the file {str(file)!r} lists no class names", "write one name per line", "class_names")
    else:
        names = value
        if not names or not all(isinstance(n, str) and n for n in names):
            raise model.error(f"got {value!r}", "expected a non-empty list of non-empty strings", "class_names")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise model.error(f"duplicate class name(s) {duplicates[:5]}", "each class needs a distinct name",
                          "class_names")
    return list(names)


def _last_of(model: nn.Module, kind: str) -> str | None:
    """Name of the last submodule that is (or, in TorchScript, was) a ``kind`` (e.g. "Conv2d")."""
    found = None
    for name, module in model.named_modules():
        if type(module).__name__ == kind or getattr(module, "original_name", None) == kind:
            found = name
    return found


def _output_width(model: nn.Module, input_size: tuple[int, int]) -> int | None:
    with torch.no_grad():
        out = model(torch.zeros(1, 3, *input_size))
    from gradcam_core import logits_from_output

    try:
        return int(logits_from_output(out, 1).shape[1])
    except ValueError:
        return None


def load_workspace_file(path: str | os.PathLike):
    """Open the workspace described by the TOML file at ``path`` (a ``Workspace``)."""
    from models.workspace import Workspace

    source = Path(path).resolve() if Path(path).exists() else Path(path)
    raw = read_workspace_file(source)
    top = _Fields(raw, "", source)
    name = top.get("name", str, 'a short name such as "my-model" (letters, digits, - _ .)', required=True)
    if not _NAME_PATTERN.match(name):
        raise top.error(f"got {name!r}", "expected letters, digits, '-', '_' or '.', starting with a letter or digit",
                        "name")
    for section in ("model", "data"):
        if section not in raw:
            raise top.error(f"missing [{section}] table", "see models/README.md for an example workspace file", None)
        if not isinstance(raw[section], dict):
            raise top.error(f"{section} = {raw[section]!r} is not a table", f"write it as a [{section}] table",
                            section)
    model_f = _Fields(raw["model"], "model", source)
    data_f = _Fields(raw["data"], "data", source)
    prep_raw = raw.get("preprocessing", {})
    if not isinstance(prep_raw, dict):
        raise top.error(f"preprocessing = {prep_raw!r} is not a table", "write it as a [preprocessing] table",
                        "preprocessing")
    prep_f = _Fields(prep_raw, "preprocessing", source)

    # --- data paths and classes
    data_root = data_f.path("root", "data folder", required=True)
    if not data_root.is_dir():
        raise data_f.error(f"the data folder {str(data_root)!r} does not exist or is not a directory",
                           "point root at an ImageFolder directory (one sub-folder of images per class)", "root")
    class_map = data_f.get("class_map", dict, 'a table of folder name = "class name"', default={})
    if not all(isinstance(v, str) for v in class_map.values()):
        raise data_f.error(f"got {class_map!r}", 'expected folder name = "class name" pairs (strings)', "class_map")
    class_names = _class_names(model_f, data_root, class_map)
    num_classes = model_f.get("num_classes", int, "a positive integer (the classifier's output count)")
    if num_classes is not None and num_classes < 1:
        raise model_f.error(f"got {num_classes}", "expected a positive integer", "num_classes")
    if num_classes is not None and class_names and num_classes != len(class_names):
        raise model_f.error(f"num_classes = {num_classes} but there are {len(class_names)} class names "
                            f"({', '.join(class_names[:5])}{', ...' if len(class_names) > 5 else ''})",
                            "give exactly one name per classifier output", "class_names")
    if not class_names and "weights" not in raw["model"]:
        raise model_f.error("no class names: class_names is not set and the data folder has no class sub-folders",
                            "set class_names (a list or a file)", "class_names")

    # --- the model
    arch = model_f.get("arch", str, 'a torchvision architecture name such as "resnet18"')
    torchscript = model_f.path("torchscript", "TorchScript file")
    checkpoint = model_f.path("checkpoint", "checkpoint")
    weights = model_f.get("weights", str, '"DEFAULT" or a torchvision weights name such as "IMAGENET1K_V1"')
    transform = None
    if torchscript is not None:
        if checkpoint or weights:
            raise model_f.error("torchscript is given together with checkpoint/weights",
                                "use torchscript = ... with arch = ..., or arch = ... with checkpoint or weights",
                                "torchscript")
        if not arch:
            # A loaded ScriptModule refuses forward hooks, so no CAM method could read its layers.
            raise model_f.error("a TorchScript model alone cannot be explained: PyTorch does not allow forward "
                                "hooks on loaded TorchScript modules, and Grad-CAM reads each layer through one",
                                'add arch = "<the torchvision architecture it was exported from>" (its weights are '
                                "then loaded from the TorchScript file into that architecture), or save a "
                                "state_dict with torch.save(model.state_dict(), path) and use checkpoint = ...",
                                "torchscript")
        from models.torchvision_models import _check_arch, load_torchvision

        _check_arch(arch)
        file = require_file(torchscript, "TorchScript file", "model.torchscript")
        try:
            scripted = torch.jit.load(str(file), map_location="cpu")
        except (RuntimeError, ValueError) as error:
            raise model_f.error(f"{str(file)!r} is not a TorchScript archive ({str(error).splitlines()[0]})",
                                "export one with torch.jit.script(model).save(path) or torch.jit.trace",
                                "torchscript") from error
        model, _, _ = load_torchvision(arch, weights=None, num_classes=num_classes or len(class_names))
        classifier = model_f.get("classifier_layer", str, "a module name") or _last_of(model, "Linear")
        apply_state_dict(model, dict(scripted.state_dict()), file, classifier_layer=classifier,
                         class_names=class_names)
        weights_file = file
    elif arch:
        from models.torchvision_models import _check_arch, load_torchvision, resolve_weights, weights_cache_path

        _check_arch(arch)
        if checkpoint is not None and weights is not None:
            raise model_f.error("both checkpoint and weights are set", "use checkpoint for your own weights or "
                                'weights = "DEFAULT" for torchvision\'s pretrained ones, not both', "weights")
        if checkpoint is not None:
            file = require_file(checkpoint, "checkpoint", "model.checkpoint")
            if file.suffix.lower() not in STATE_DICT_SUFFIXES:
                raise model_f.error(f"{file.name!r} has an unknown extension",
                                    f"expected one of {', '.join(STATE_DICT_SUFFIXES)}", "checkpoint")
            state = load_state_dict_file(file)
            model, _, _ = load_torchvision(arch, weights=None, num_classes=num_classes or len(class_names))
            classifier = model_f.get("classifier_layer", str, "a module name") or _last_of(model, "Linear")
            apply_state_dict(model, state, file, classifier_layer=classifier, class_names=class_names)
            weights_file = file
        elif weights is not None:
            model, transform, categories = load_torchvision(arch, weights=weights)
            if "class_names" not in raw["model"]:
                class_names = categories  # the weights' own names; folders must match (or map to) them
            if len(categories) != len(class_names):
                raise model_f.error(f"the {weights} weights of {arch} have {len(categories)} classes but "
                                    f"{len(class_names)} class names were given",
                                    "omit class_names to use the weights' own categories", "class_names")
            weights_file = weights_cache_path(resolve_weights(arch, weights))
        else:
            raise model_f.error("arch is set but neither checkpoint nor weights",
                                'add checkpoint = "your_weights.pt" (a state_dict) or weights = "DEFAULT"',
                                "checkpoint")
    else:
        raise model_f.error("no model given", 'set arch = "resnet18" (a torchvision architecture) with checkpoint = '
                            '"weights.pt", or torchscript = "model.pt"', None)
    model = model.eval()

    # --- preprocessing
    size_value = prep_f.get("input_size", (int, list), "an int or [height, width]", default=None)
    if size_value is None and transform is None:
        size_value = [224, 224]
    if size_value is not None:
        size = [size_value, size_value] if isinstance(size_value, int) else size_value
        if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
            raise prep_f.error(f"got {size_value!r}", "expected a positive int or [height, width]", "input_size")
        resize = prep_f.get("resize", int, "a positive int (shorter side before the centre crop)")
        if resize is not None and resize < max(size):
            raise prep_f.error(f"resize = {resize} is smaller than input_size {size}",
                               "resize the shorter side to at least the crop size (e.g. 256 for 224)", "resize")
        mean = prep_f.numbers("mean", 3, "three numbers, one per RGB channel", IMAGENET_MEAN)
        std = prep_f.numbers("std", 3, "three positive numbers, one per RGB channel", IMAGENET_STD)
        if min(std) <= 0:
            raise prep_f.error(f"got {list(std)}", "expected three positive numbers", "std")
        transform = ImageTransform((size[0], size[1]), mean, std, resize=resize)
        input_size = transform.input_size
    else:
        crop = transform.crop_size[0]
        input_size, mean, std = (crop, crop), tuple(transform.mean), tuple(transform.std)

    width = _output_width(model, input_size)
    if width is not None and width != len(class_names):
        raise model_f.error(f"the model outputs {width} class scores but {len(class_names)} class names were given",
                            "list one name per output, in training order", "class_names")
    default_layer = model_f.get("default_layer", str, "a Conv2d module name") or _last_of(model, "Conv2d")
    if default_layer is None:
        raise model_f.error("the model has no Conv2d layer", "Grad-CAM needs a convolutional model", None)
    modules = dict(model.named_modules())
    if default_layer not in modules:
        raise model_f.error(f"default_layer {default_layer!r} is not a module of the model",
                            "use a Conv2d name (python -m gradcam_core can list them), or omit it for the last "
                            "Conv2d", "default_layer")
    classifier_layer = model_f.get("classifier_layer", str, "a module name") or _last_of(model, "Linear") \
        or _last_of(model, "Conv2d")
    if classifier_layer not in modules:
        raise model_f.error(f"classifier_layer {classifier_layer!r} is not a module of the model",
                            "name the final classifier module (e.g. 'fc'), or omit it for the last Linear",
                            "classifier_layer")

    test_set = FolderImageSet(data_root, class_names, transform, folder_to_class=class_map)
    title = top.get("title", str, "a string", default=name)
    description = top.get("description", str, "a string",
                          default=f"Your model ({arch or 'TorchScript'}) on the images in {data_root.name}/.")
    return Workspace(
        name=name,
        title=title,
        description=description,
        model=model,
        model_id=f"{name}:{checkpoint_sha256(weights_file)[:12]}",
        class_names=class_names,
        input_size=(int(input_size[0]), int(input_size[1])),
        mean=tuple(mean),
        std=tuple(std),
        transform=transform,
        default_layer=default_layer,
        classifier_layer=classifier_layer,
        test_set=test_set,
        test_accuracy=None,
        notes={"source": str(source), "weights_file": str(weights_file), "arch": arch or "torchscript"},
    )
