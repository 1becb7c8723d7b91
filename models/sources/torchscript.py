"""``source = "torchscript"``: a TorchScript file, explained through the eager model it was exported from.

    [model]
    source = "torchscript"
    file = "model.pt"          # torch.jit.save / torch.jit.script(model).save(path)
    arch = "resnet18"          # the torchvision architecture it came from (or factory = "nets.py:MyNet")

PyTorch does not allow forward hooks on a loaded TorchScript module, and every CAM method reads its layers
through one, so the file's weights are copied into the eager model (with the same key and shape checks as a
checkpoint). Loading a TorchScript archive does not run Python code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.checkpoints import require_file
from models.schema import spec
from models.sources import python as python_source
from models.sources import torchvision as torchvision_source
from models.sources.base import LoadedModel, ModelTable, SourceContext, apply_checkpoint, call_factory

NAME = "torchscript"


@dataclass(frozen=True)
class Table(ModelTable):
    file: Path | None = spec("the TorchScript archive", kind=Path, required=True,
                             expected="a file written by torch.jit.save, relative to the .toml")
    arch: str | None = spec("the torchvision architecture the file was exported from",
                            expected='a torchvision architecture name such as "resnet18"')
    factory: str | None = spec("or: your eager model class the file was exported from",
                               expected='"file.py:ClassName" or "package.module:callable"')
    kwargs: dict = spec("keyword arguments for factory", kind=dict, default={}, expected="a table")


def load(table: Table, context: SourceContext) -> LoadedModel:
    if bool(table.arch) == bool(table.factory):
        raise context.error("arch", "a TorchScript model alone cannot be explained: PyTorch does not allow forward "
                            "hooks on loaded TorchScript modules, and Grad-CAM reads each layer through one"
                            if not table.arch else "both arch and factory are set",
                            'add arch = "<the torchvision architecture it was exported from>" or factory = '
                            '"nets.py:MyNet" (its weights are then loaded from the TorchScript file into that eager '
                            "model), or save a state_dict and use a checkpoint")
    file = require_file(table.file, "TorchScript file", "model.file")
    try:
        scripted = torch.jit.load(str(file), map_location="cpu")
    except (RuntimeError, ValueError) as error:
        raise context.error("file", f"{str(file)!r} is not a TorchScript archive ({str(error).splitlines()[0]})",
                            "export one with torch.jit.script(model).save(path) or torch.jit.trace") from None
    if table.arch:
        model = torchvision_source.build_arch(table.arch, context.num_classes)
        label = table.arch
    else:
        factory = python_source.resolve_factory(table.factory, context.table, "factory")
        model = call_factory(factory, dict(table.kwargs), context, "factory", table.factory).eval()
        label = table.factory
    apply_checkpoint(model, file, context, table.classifier_layer, state=dict(scripted.state_dict()))
    return LoadedModel(model, file, description=f"{label} (weights from TorchScript {file.name})")
