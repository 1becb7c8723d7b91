"""Which layers a CAM can read, and reading them: Conv2d layers, transformer blocks and their norms.

``list_conv_layers`` names every Conv2d. ``list_cam_layers`` adds every layer whose output is a token grid (vision
transformer blocks, Swin stages, ConvNeXt blocks, and each block's norms), found by one cheap dry forward.
``OutputCapture`` holds the forward hooks of one explain pass: it keeps each layer's output as it left the module
and copies it for the rest of the network only where an in-place op follows (learned once per model and layer).
"""

from __future__ import annotations

import difflib
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gradcam_core.reshape import CUSTOM, FeatureLayout, infer_layout, is_grid_layout
from gradcam_core.state import model_lock, preserved_model_state

Reshape = Callable[[torch.Tensor], torch.Tensor] | Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None

_STACKS = (nn.Sequential, nn.ModuleList)
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)


# ------------------------------------------------------------------------------------------ listing layers
def list_conv_layers(model: nn.Module) -> list[str]:
    """Name of every ``nn.Conv2d`` in ``model.named_modules()`` order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORMS) or "norm" in type(module).__name__.lower()


def _is_layer_norm(module: nn.Module) -> bool:
    """nn.LayerNorm and its kin (timm's LayerNorm2d, Hugging Face's ConvNextLayerNorm): the transformer-style norm."""
    return isinstance(module, nn.LayerNorm) or "layernorm" in type(module).__name__.lower()


def _structural_candidates(model: nn.Module) -> dict[str, nn.Module]:
    """Modules that may hold a token grid worth a CAM: blocks (a module with children that is one element of a
    Sequential/ModuleList: ``blocks.3``, ``encoder.layers.encoder_layer_3``, ``features.5``) and norm layers."""
    candidates = {}
    for parent_name, parent in model.named_modules():
        if isinstance(parent, _STACKS):
            prefix = f"{parent_name}." if parent_name else ""
            for child_name, child in parent.named_children():
                if next(child.children(), None) is not None:
                    candidates[prefix + child_name] = child
    for name, module in model.named_modules():
        if name and _is_norm(module) and not isinstance(module, nn.Identity):
            candidates[name] = module
    return candidates


def _as_hw(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, value
    if isinstance(value, (tuple, list)) and len(value) in (2, 3) and all(isinstance(v, int) for v in value):
        return int(value[-2]), int(value[-1])
    return None


def infer_input_size(model: nn.Module) -> tuple[int, int, int]:
    """(C, H, W) the model says it takes: torchvision ViT ``image_size``, timm's patch embedding ``img_size`` or
    ``pretrained_cfg``/``default_cfg`` input size, Hugging Face ``config.image_size``; else 224 x 224."""
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    config = getattr(model, "config", None)
    channels = first_conv.in_channels if first_conv is not None else int(getattr(config, "num_channels", 3) or 3)
    timm_cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    candidates = [getattr(model, "image_size", None)]
    candidates += [getattr(m, "img_size", None) for m in model.modules()]
    candidates += [getattr(config, "image_size", None),
                   timm_cfg.get("input_size") if isinstance(timm_cfg, Mapping) else None]
    for candidate in candidates:
        size = _as_hw(candidate)
        if size is not None:
            return channels, *size
    return channels, 224, 224


def first_tensor(output: Any) -> tuple[torch.Tensor | None, Any]:
    """The tensor a CAM reads in a module's output, and where it sits: the output itself (key None), the first
    tensor of a tuple/list (its index) or of a dict / Hugging Face ModelOutput (its key)."""
    if torch.is_tensor(output):
        return output, None
    if isinstance(output, (tuple, list)):
        return next(((v, i) for i, v in enumerate(output) if torch.is_tensor(v)), (None, None))
    if isinstance(output, Mapping):
        return next(((v, k) for k, v in output.items() if torch.is_tensor(v)), (None, None))
    return None, None


def _replace_first(output: Any, key: Any, tensor: torch.Tensor) -> Any:
    if key is None:
        return tensor
    if isinstance(output, (tuple, list)):
        items = list(output)
        items[key] = tensor
        if isinstance(output, list):
            return items
        return type(output)._make(items) if hasattr(type(output), "_make") else tuple(items)
    output[key] = tensor
    return output


def extra_tokens_hint(model: nn.Module) -> int | None:
    """How many leading non-patch tokens the model declares (timm's ``num_prefix_tokens``), if it does."""
    hint = getattr(model, "num_prefix_tokens", None)
    return hint if isinstance(hint, int) and not isinstance(hint, bool) else None


def layout_for(module: nn.Module, shape: Sequence[int], input_hw: tuple[int, int], hint: int | None = None,
               custom: Callable[[torch.Tensor], torch.Tensor] | None = None) -> FeatureLayout | None:
    """The layout of ``module``'s output; a Conv2d output is always channels-first, a LayerNorm's channels-last
    when both readings fit."""
    if custom is not None:
        return FeatureLayout(CUSTOM, custom=custom)
    return infer_layout(tuple(shape), tuple(input_hw), channels_first=isinstance(module, nn.Conv2d),
                        prefer_channels_last=isinstance(module, nn.LayerNorm), extra_tokens_hint=hint)


def _dry_forward_shapes(model: nn.Module, input_chw: Sequence[int], modules: Mapping[str, nn.Module]) -> dict:
    """Output shapes (first tensor) of ``modules`` from one no-grad forward of a zero image; the model's state
    (training flags, hooks) is restored."""
    shapes: dict[str, torch.Size] = {}
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            tensor, _ = first_tensor(output)
            if tensor is not None:
                shapes[name] = tensor.shape

        return hook

    with model_lock(model), preserved_model_state(model), torch.no_grad():
        model.eval()
        handles = [module.register_forward_hook(make_hook(name)) for name, module in modules.items()]
        try:
            model(torch.zeros((1, *input_chw), device=device, dtype=dtype))
        finally:
            for handle in handles:
                handle.remove()
    return shapes


def list_cam_layers(model: nn.Module, input_size: Sequence[int] | None = None) -> list[str]:
    """Every Conv2d, plus every layer whose output is a token grid, in ``named_modules()`` order.

    Token-grid layers are blocks (an element of a Sequential/ModuleList with children of its own) and norm layers
    whose output, in one dry forward, is tokens (B, N, C) on the input's patch grid or channels-last (B, h, w, C),
    and LayerNorms over a grid: torchvision ViT ``encoder.layers.encoder_layer_N`` and their ``ln_1``/``ln_2``, Swin
    ``features.N`` and block norms, timm ``blocks.N`` and ``blocks.N.norm1``, Hugging Face ``...layer.N`` /
    ``...layers.N`` and their layernorms, ConvNeXt block norms. In a model that has such layers, blocks with a
    channels-first grid output (ConvNeXt blocks and stages) count too; a plain CNN (BatchNorm, no tokens) gets
    exactly ``list_conv_layers``.

    ``input_size`` is (H, W) or (C, H, W) for the dry forward; default: what the model declares
    (``infer_input_size``). When a guessed size does not fit the model, the Conv2d list is returned with a warning.
    """
    convs = set(list_conv_layers(model))
    candidates = {n: m for n, m in _structural_candidates(model).items() if n not in convs}
    if not candidates:
        return list_conv_layers(model)
    chw = _full_input_size(model, input_size)
    try:
        shapes = _dry_forward_shapes(model, chw, candidates)
    except Exception as exc:
        if input_size is not None:
            raise ValueError(f"a forward pass of a {tuple(chw)} zero image through {type(model).__name__} failed "
                             f"({type(exc).__name__}: {exc}); pass the input_size the model takes") from exc
        warnings.warn(f"list_cam_layers: a {tuple(chw)} test forward failed ({type(exc).__name__}: {exc}); listing "
                      "Conv2d layers only. Pass input_size=(H, W) to find token layers too.", stacklevel=2)
        return list_conv_layers(model)
    hw, hint = (chw[1], chw[2]), extra_tokens_hint(model)
    tokens, spatial = set(), set()
    for name, shape in shapes.items():
        module = candidates[name]
        layout = layout_for(module, shape, hw, hint)
        if not is_grid_layout(layout, shape, hw) or layout.feature_shape(shape)[1:] == (1, 1):
            continue  # not a grid, or a 1 x 1 one (after global pooling), whose map shows no place
        if layout.kind != "channels_first" or _is_layer_norm(module):
            tokens.add(name)
        elif not _is_norm(module):
            spatial.add(name)
    keep = convs | tokens | (spatial if tokens else set())
    return [name for name, _ in model.named_modules() if name in keep]


def _full_input_size(model: nn.Module, input_size: Sequence[int] | None) -> tuple[int, int, int]:
    if input_size is None:
        return infer_input_size(model)
    if len(input_size) == 2:
        return infer_input_size(model)[0], int(input_size[0]), int(input_size[1])
    return tuple(int(s) for s in input_size)


# -------------------------------------------------------------------------------------- resolving names
def suggest(name: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """Close matches for a mistyped layer name (difflib, then a substring fallback)."""
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not close:
        tail = name.rsplit(".", 1)[-1]
        close = [c for c in candidates if tail and tail in c][:n]
    return close


def resolve_layers(model: nn.Module, layers: Iterable[str] | str | None) -> dict[str, nn.Module]:
    """Map requested layer names to their modules; None means every Conv2d.

    Any module of the model may be named (whether its output is a feature map shows in the forward pass, see
    ``not_a_feature_map``). Raises ValueError for a name that is not a module of the model, with close matches.
    """
    modules = dict(model.named_modules())
    conv_names = list_conv_layers(model)
    if layers is None:
        if not conv_names:
            raise ValueError(
                f"{type(model).__name__} has no nn.Conv2d layer; name the layers to explain "
                "(list_cam_layers(model) lists transformer blocks and other token-grid layers)"
            )
        return {name: modules[name] for name in conv_names}
    if isinstance(layers, str):
        layers = [layers]
    resolved: dict[str, nn.Module] = {}
    for name in layers:
        if name not in modules or name == "":
            structural = set(conv_names) | set(_structural_candidates(model))
            likely = [n for n in modules if n in structural]
            hints = suggest(name, likely) or suggest(name, [n for n in modules if n])
            hint = f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
            raise ValueError(
                f"layer {name!r} not found in {type(model).__name__}{hint} "
                f"(list_cam_layers(model) lists the layers a CAM can read)"
            )
        resolved[name] = modules[name]
    if not resolved:
        raise ValueError("layers is empty; pass None for every Conv2d or a list of layer names")
    return resolved


class NotAFeatureMap(ValueError):
    """Raised from a forward hook when a layer's output cannot be read as a (B, C, h, w) map."""

    def __init__(self, layer: str, module: nn.Module, got: str):
        self.layer, self.module, self.got = layer, module, got
        super().__init__(f"layer {layer!r} ({type(module).__name__}) output {got}")


def not_a_feature_map(model: nn.Module, error: NotAFeatureMap, input_chw: Sequence[int]) -> ValueError:
    """The error for a layer whose output is no feature map, naming the CAM layers inside it (if any)."""
    inside = [n for n in list_cam_layers(model, input_chw) if n.startswith(f"{error.layer}.")]
    if inside:
        shown = ", ".join(repr(n) for n in inside[-5:])
        hint = f"; CAM layers inside it: {shown}" + (f" ({len(inside)} in all)" if len(inside) > 5 else "")
    else:
        hint = "; list_cam_layers(model) lists the layers a CAM can read"
    return ValueError(
        f"layer {error.layer!r} is a {type(error.module).__name__} that gives {error.got}, which is not a feature "
        f"map (B, C, h, w), channels-last (B, h, w, C) or tokens (B, N, C) on the input's patch grid{hint} "
        "(or pass reshape=callable mapping its output to (B, C, h, w))"
    )


def custom_reshape(reshape: Reshape, name: str) -> Callable | None:
    """The caller's reshape for layer ``name``: the callable itself, its dict entry, or None (automatic)."""
    if reshape is None:
        return None
    if isinstance(reshape, Mapping):
        return reshape.get(name)
    if callable(reshape):
        return reshape
    raise TypeError(f"reshape must be a callable or a dict of layer name -> callable, got {type(reshape).__name__}")


def layer_output_shapes(
    model: nn.Module,
    input_size: tuple[int, int] | tuple[int, int, int],
    layers: Iterable[str] | None = None,
    reshape: Reshape = None,
) -> dict[str, tuple[int, int, int]]:
    """``{layer: (C, h, w)}`` of each layer's feature map (token and channels-last outputs as ``explain`` reshapes
    them), from one forward pass of a zero image; default: every Conv2d.

    ``input_size`` is (H, W) or (C, H, W). The model's state (training flags, hooks) is restored afterwards;
    nothing is computed with gradients.
    """
    chw = _full_input_size(model, input_size)
    targets = resolve_layers(model, layers)
    shapes = _dry_forward_shapes(model, chw, targets)
    result = {}
    for name, module in targets.items():
        if name not in shapes:
            continue
        layout = layout_for(module, shapes[name], (chw[1], chw[2]), extra_tokens_hint(model),
                            custom_reshape(reshape, name))
        if layout is None:
            raise not_a_feature_map(model, NotAFeatureMap(name, module, f"an output of shape {tuple(shapes[name])}"),
                                    chw)
        result[name] = layout.feature_shape(shapes[name])
    return result


# ------------------------------------------------------------------------------------ capturing outputs
# model -> {layer: whether an in-place op changes its output later in the forward pass}
_INPLACE_FOLLOWS: weakref.WeakKeyDictionary[nn.Module, dict[str, bool]] = weakref.WeakKeyDictionary()


@dataclass
class CapturedOutput:
    """One layer's output as it left the module; ``layout`` turns it (and its gradient) into (B, C, h, w)."""

    output: torch.Tensor
    layout: FeatureLayout
    version: int
    copy: torch.Tensor | None = None  # what the rest of the network got instead, where an in-place op may follow

    def feature_map(self, layer: str = "") -> torch.Tensor:
        return self.layout.apply(self.output.detach(), layer)


class OutputCapture:
    """Forward hooks that keep each layer's output (the first tensor of a tuple or ModelOutput) as it left the
    module, for one forward pass; use as a context manager around it.

    The kept tensor stays in the graph, so ``torch.autograd.grad`` on it gives dTarget/dA. Where an in-place op
    follows (``Conv2d -> ReLU(inplace=True)``) the rest of the network is handed a copy instead, so the kept
    tensor is not changed. Which layers need that is learned once per model: on a layer's first pass it is
    copied and the copy's version counter tells whether anything wrote into it; afterwards only those layers are
    copied. ``finish`` returns layers whose uncopied output was changed in place anyway (the model changed, or
    its path depends on the input): mark them and run the pass again.
    """

    def __init__(self, model: nn.Module, modules: Mapping[str, nn.Module], input_hw: tuple[int, int],
                 reshape: Reshape = None):
        self.model, self.modules, self.input_hw = model, modules, input_hw
        self.reshape = reshape
        self.hint = extra_tokens_hint(model)
        self.outputs: dict[str, CapturedOutput] = {}
        self._handles: list = []
        self._known = _INPLACE_FOLLOWS.setdefault(model, {})

    def _hook(self, name: str):
        def hook(module, _inputs, output):
            tensor, key = first_tensor(output)
            if tensor is None or not tensor.is_floating_point():
                raise NotAFeatureMap(name, module, f"a {type(output).__name__} holding no float tensor")
            layout = layout_for(module, tensor.shape, self.input_hw, self.hint, custom_reshape(self.reshape, name))
            if layout is None:
                raise NotAFeatureMap(name, module, f"an output of shape {tuple(tensor.shape)}")
            entry = CapturedOutput(tensor, layout, tensor._version)
            self.outputs[name] = entry
            if self._known.get(name, True):
                entry.copy = tensor.clone()
                return _replace_first(output, key, entry.copy)
            return None

        return hook

    def __enter__(self) -> OutputCapture:
        self._handles = [module.register_forward_hook(self._hook(name)) for name, module in self.modules.items()]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def finish(self) -> list[str]:
        """Learn which layers need a copy; return those whose kept output was changed in place (see class doc)."""
        stale = []
        for name, entry in self.outputs.items():
            if entry.output._version != entry.version:
                stale.append(name)
                self._known[name] = True
            elif entry.copy is not None and not self._known.get(name, False):
                self._known[name] = entry.copy._version != 0
        return stale
