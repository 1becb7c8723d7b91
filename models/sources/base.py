"""What every model source shares: the common ``[model]`` fields, the context a source loads in, and its result.

A source is one module in ``models/sources/`` with ``NAME`` (the TOML ``source`` value), ``Table`` (a frozen
dataclass of its ``[model]`` fields, built on ``ModelTable``) and ``load(table, context) -> LoadedModel``; an
optional ``EXTRA`` names the pip extra it needs. ``models.sources`` finds the modules by themselves, so adding a
source is one file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from models.checkpoints import STATE_DICT_SUFFIXES, apply_state_dict, load_state_dict_file, require_file
from models.errors import WorkspaceError
from models.layer_choice import last_linear
from models.schema import TableContext, spec
from models.transforms import ImageTransform

CLASS_NAMES_DOC = "the class names, in the model's output order"


@dataclass(frozen=True)
class ModelTable:
    """``[model]`` fields every source accepts."""

    source: str | None = spec(
        "which kind of model this is; optional when unambiguous (`arch` means torchvision, `factory` python, "
        "`path` huggingface)", expected='"torchvision", "python", "timm", "huggingface" or "torchscript"')
    class_names: list[str] | Path | None = spec(
        CLASS_NAMES_DOC + "; default: the model's own (pretrained categories, a Hugging Face config's id2label), "
        "else the data folder's sub-folders", kind=("str-list", Path),
        expected="a list of strings, or the path of a text file with one name per line")
    num_classes: int | None = spec("the classifier's output count (checked against the class names)", kind=int,
                                   expected="a positive integer")
    default_layer: str | None = spec(
        "the layer the explorer opens on; default: the last transformer block's first norm, else the last Conv2d",
        expected="a CAM layer name (`gradcam explain --list-layers` lists them)")
    classifier_layer: str | None = spec(
        "the final classifier module; its input is the feature vector of the t-SNE view; default: the last Linear",
        expected="a module name such as \"fc\" or \"head\"")


@dataclass
class SourceContext:
    """What a source needs besides its table: where errors point, and how many classes the workspace expects."""

    table: TableContext
    num_classes: int | None  # from [model] num_classes or the class names found so far; None = the model decides
    class_names: list[str] | None = None  # the names found so far (TOML, else the data folder), to check against
    class_names_origin: str = ""  # where they came from, for messages

    def error(self, field_name: str | None, problem: str, expected: str) -> WorkspaceError:
        return self.table.error(field_name, problem, expected)


@dataclass
class LoadedModel:
    """A source's result: the model (eval mode, CPU) and what the model itself says about its use."""

    model: nn.Module
    #: the file whose bytes identify the weights (hashed into the model id); None when ``weights_tag`` says it
    weights_file: Path | None
    weights_tag: str = ""  # e.g. "untrained" or "timm:resnet18:random" when there is no file
    class_names: list[str] | None = None  # the model's own names (pretrained categories, id2label)
    class_names_origin: str = ""
    preprocessing: ImageTransform | None = None  # the model's own preprocessing (weights meta, timm, HF processor)
    description: str = ""  # e.g. "timm convnext_atto" for the sidebar
    notes: dict[str, Any] = field(default_factory=dict)


def import_optional(module: str, extra: str, what: str):
    """Import an optional dependency, or a WorkspaceError naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise WorkspaceError(
            f"{what} needs the Python package '{module.split('.')[0]}', which is not installed ({error}); install "
            f"it with `pip install -e .[{extra}]` (or `pip install gradcam-dashboard[{extra}]`)"
        ) from None


def call_factory(factory: Callable[..., Any], kwargs: dict[str, Any], context: SourceContext, field_name: str,
                 label: str) -> nn.Module:
    """``factory(**kwargs)``, which must return an nn.Module; wrong keyword arguments and exceptions raised by the
    user's code become WorkspaceErrors naming the factory."""
    import inspect

    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as error:
        raise context.error("kwargs", f"{label} does not accept kwargs {kwargs!r} ({error})",
                            f"give exactly the keyword arguments of {label}{_signature(factory)}") from None
    except ValueError:
        pass  # builtins without a signature: let the call decide
    try:
        model = factory(**kwargs)
    except Exception as error:
        raise context.error(field_name, f"calling {label}(**{kwargs!r}) raised {type(error).__name__}: {error}",
                            "fix the factory or its kwargs") from error
    if not isinstance(model, nn.Module):
        raise context.error(field_name, f"{label} returned {type(model).__name__}, not a torch.nn.Module",
                            "point factory at a model class or a function that builds and returns the model")
    return model


def _signature(factory) -> str:
    import inspect

    try:
        return str(inspect.signature(factory))
    except (TypeError, ValueError):
        return "(...)"


def checkpoint_file(path: Path, context: SourceContext, field_name: str = "checkpoint") -> Path:
    """The checkpoint file, checked to exist and to have a state_dict extension."""
    file = require_file(path, "checkpoint", f"model.{field_name}")
    if file.suffix.lower() not in STATE_DICT_SUFFIXES:
        raise context.error(field_name, f"{file.name!r} has an unknown extension",
                            f"expected a state_dict file: one of {', '.join(STATE_DICT_SUFFIXES)}")
    return file


def apply_checkpoint(model: nn.Module, file: Path, context: SourceContext, classifier_layer: str | None,
                     state: dict | None = None) -> None:
    """Load the state_dict in ``file`` (or ``state``, read from it) into ``model``, checking the class count."""
    apply_state_dict(model, load_state_dict_file(file) if state is None else state, file,
                     classifier_layer=classifier_layer or last_linear(model),
                     class_names=context.class_names, class_names_origin=context.class_names_origin)
