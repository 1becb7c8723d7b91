"""Which layers a workspace uses by default: the CAM layer the explorer opens on and the final classifier."""

from __future__ import annotations

from torch import nn

from gradcam_core import list_cam_layers

__all__ = ["default_cam_layer", "last_linear", "list_cam_layers", "transformer_blocks"]


def last_linear(model: nn.Module) -> str | None:
    """Name of the last ``nn.Linear`` (the usual final classifier; its input is the feature vector), or None."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) or getattr(module, "original_name", None) == "Linear":
            found = name
    return found


def _is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or "attention" in type(module).__name__.lower()


def transformer_blocks(model: nn.Module) -> list[str]:
    """Modules with an attention child and a LayerNorm child: the blocks of ViT, DeiT, Swin, BEiT... (torchvision,
    timm and Hugging Face alike), in ``named_modules()`` order."""
    blocks = []
    for name, module in model.named_modules():
        children = list(module.children())
        if any(_is_attention(c) for c in children) and any(isinstance(c, nn.LayerNorm) for c in children):
            blocks.append(name)
    return blocks


def default_cam_layer(model: nn.Module) -> str | None:
    """The last transformer block's first norm (vit_b_16: ``encoder.layers.encoder_layer_11.ln_1``) for a model
    with transformer blocks, else the last Conv2d; None when the model has neither."""
    blocks = transformer_blocks(model)
    if blocks:
        block = model.get_submodule(blocks[-1])
        norm = next(name for name, child in block.named_children() if isinstance(child, nn.LayerNorm))
        return f"{blocks[-1]}.{norm}"
    convs = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    return convs[-1] if convs else None
