"""``source = "python"``: your own model class (or function) from a .py file or an installed module.

    [model]
    source = "python"
    factory = "nets.py:XRayClassifier"   # a .py file relative to this TOML, or "package.module:callable"
    kwargs = { num_classes = 2 }         # keyword arguments for the call
    checkpoint = "xray.pt"               # its state_dict: .safetensors, or .pt/.pth read with weights_only=True

Importing the file runs its code, as running any script does: point ``factory`` only at code you trust. The
checkpoint itself is still read without running code. Without a checkpoint the model keeps the weights the
factory gave it (the model id then says "untrained").
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.schema import TableContext, spec
from models.sources.base import (
    LoadedModel,
    ModelTable,
    SourceContext,
    apply_checkpoint,
    call_factory,
    checkpoint_file,
)

NAME = "python"


@dataclass(frozen=True)
class Table(ModelTable):
    factory: str | None = spec(
        "the class or function that builds the model", required=True,
        expected='"file.py:ClassName" (a file relative to the .toml) or "package.module:callable"')
    kwargs: dict = spec("keyword arguments for the factory", kind=dict, default={},
                        expected="a table, e.g. { num_classes = 2 }")
    checkpoint: Path | None = spec("the model's weights (a state_dict)", kind=Path,
                                   expected="a .safetensors, .pt or .pth file, relative to the .toml")


def load(table: Table, context: SourceContext) -> LoadedModel:
    factory = resolve_factory(table.factory, context.table, "factory")
    model = call_factory(factory, dict(table.kwargs), context, "factory", table.factory)
    model.eval()
    if table.checkpoint is None:
        return LoadedModel(model, None, weights_tag=f"untrained:{_code_digest(table.factory, context.table)}",
                           description=f"{table.factory} (untrained: no checkpoint)",
                           notes={"untrained": "no checkpoint is set, so the model has the weights its factory "
                                               "gave it; add checkpoint = \"weights.pt\" to [model]"})
    file = checkpoint_file(table.checkpoint, context)
    apply_checkpoint(model, file, context, table.classifier_layer)
    return LoadedModel(model, file, description=f"{table.factory} + {file.name}")


def resolve_factory(reference: str, table: TableContext, field_name: str):
    """The callable named by ``"file.py:Name"`` (a file relative to the TOML) or ``"package.module:Name"``."""
    module_part, sep, attribute = reference.rpartition(":")
    if not sep or not module_part or not attribute:
        raise table.error(field_name, f"got {reference!r}",
                          'expected "file.py:ClassName" or "package.module:callable" (a colon before the name)')
    module = _import_file(module_part, table, field_name) if module_part.endswith(".py") else \
        _import_module(module_part, table, field_name)
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise table.error(field_name, f"{module_part} has no attribute {attribute!r}",
                              f"choose one of its model classes/functions: {_candidates(module)}")
        target = getattr(target, part)
    if not callable(target):
        raise table.error(field_name, f"{reference} is a {type(target).__name__}, not callable",
                          "point factory at a model class or a function that returns an nn.Module")
    return target


def _import_file(relative: str, table: TableContext, field_name: str):
    path = table.resolve(relative)
    if not path.is_file():
        raise table.error(field_name, f"the file {str(path)!r} does not exist",
                          "give a .py file relative to the .toml file's folder, or an importable module name")
    name = f"_gradcam_user_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}_{path.stem}"
    spec_ = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec_)
    folder = str(path.parent.resolve())
    sys.path.insert(0, folder)  # so the file can import its neighbours (from layers import Block)
    sys.modules[name] = module
    try:
        spec_.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(name, None)
        raise table.error(field_name, f"importing {str(path)!r} raised {_where(error, path)}",
                          "fix the error in that file (it runs like a script when imported)") from error
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)
    return module


def _import_module(name: str, table: TableContext, field_name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        raise table.error(field_name, f"no module named {error.name!r}",
                          "install the package, or give a .py file path (ending in .py) relative to the .toml"
                          ) from None
    except Exception as error:
        raise table.error(field_name, f"importing {name!r} raised {type(error).__name__}: {error}",
                          "fix the module") from error


def _where(error: Exception, path: Path) -> str:
    """``SyntaxError: ... (nets.py, line 3)``: the error and the user's line it came from."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).name == path.name]
    line = getattr(error, "lineno", None) if isinstance(error, SyntaxError) else (frames[-1].lineno if frames else None)
    at = f" ({path.name}, line {line})" if line else ""
    return f"{type(error).__name__}: {error}{at}"


def _candidates(module) -> str:
    import inspect

    from torch import nn

    classes = [n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, nn.Module)
               and getattr(v, "__module__", "") == module.__name__]
    return ", ".join(classes[:8]) or "none found (define a torch.nn.Module subclass there)"


def _code_digest(reference: str, table: TableContext) -> str:
    """Ids an untrained model by its factory file's bytes, so editing the file gives a new model id."""
    module_part = reference.rpartition(":")[0]
    path = table.resolve(module_part) if module_part.endswith(".py") else None
    data = path.read_bytes() if path is not None and path.is_file() else reference.encode()
    return hashlib.sha256(data).hexdigest()[:12]
