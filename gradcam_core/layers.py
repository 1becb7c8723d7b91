"""Finding Conv2d layers by name and measuring their output shapes."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from gradcam_core.state import preserved_model_state


def list_conv_layers(model: nn.Module) -> list[str]:
    """Name of every ``nn.Conv2d`` in ``model.named_modules()`` order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def suggest(name: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """Close matches for a mistyped layer name (difflib, then a substring fallback)."""
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not close:
        tail = name.rsplit(".", 1)[-1]
        close = [c for c in candidates if tail and tail in c][:n]
    return close


def resolve_layers(model: nn.Module, layers: Iterable[str] | str | None) -> dict[str, nn.Conv2d]:
    """Map requested layer names to their modules; None means every Conv2d.

    Raises ValueError for a name that is not a module of the model (with close matches) or a module that is
    not a Conv2d (naming its type).
    """
    modules = dict(model.named_modules())
    conv_names = list_conv_layers(model)
    if layers is None:
        if not conv_names:
            raise ValueError(
                f"{type(model).__name__} has no nn.Conv2d layer; Grad-CAM needs a convolutional feature map."
            )
        return {name: modules[name] for name in conv_names}
    if isinstance(layers, str):
        layers = [layers]
    resolved: dict[str, nn.Conv2d] = {}
    for name in layers:
        if name not in modules or name == "":
            hints = suggest(name, conv_names)
            hint = f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
            raise ValueError(
                f"layer {name!r} not found in {type(model).__name__}{hint} "
                f"(list_conv_layers(model) gives all {len(conv_names)} Conv2d names)"
            )
        module = modules[name]
        if not isinstance(module, nn.Conv2d):
            hints = [c for c in conv_names if c.startswith(name + ".")][-3:] or suggest(name, conv_names)
            hint = f"; Conv2d layers inside it: {', '.join(repr(h) for h in hints)}" if hints else ""
            raise ValueError(f"layer {name!r} is a {type(module).__name__}, not an nn.Conv2d{hint}")
        resolved[name] = module
    if not resolved:
        raise ValueError("layers is empty; pass None for every Conv2d or a list of layer names")
    return resolved


def layer_output_shapes(
    model: nn.Module,
    input_size: tuple[int, int] | tuple[int, int, int],
    layers: Iterable[str] | None = None,
) -> dict[str, tuple[int, int, int]]:
    """``{layer: (C, H, W)}`` of each Conv2d's output, from one forward pass of a zero image.

    ``input_size`` is (H, W) for a 3-channel model or (C, H, W). The model's state (training flags, hooks) is
    restored afterwards; nothing is computed with gradients.
    """
    if len(input_size) == 2:
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = first.in_channels if first is not None else 3
        input_size = (channels, *input_size)
    targets = resolve_layers(model, layers)
    shapes: dict[str, tuple[int, int, int]] = {}
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            shapes[name] = tuple(int(s) for s in output.shape[1:])

        return hook

    with preserved_model_state(model):
        model.eval()
        handles = [module.register_forward_hook(make_hook(name)) for name, module in targets.items()]
        try:
            with torch.no_grad():
                model(torch.zeros((1, *input_size), device=device, dtype=dtype))
        finally:
            for handle in handles:
                handle.remove()
    return {name: shapes[name] for name in targets if name in shapes}
