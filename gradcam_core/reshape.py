"""From a layer's output to a (B, C, h, w) feature map.

A CAM needs channels and a spatial grid. Conv layers give (B, C, h, w) already; Swin and ConvNeXt internals give
channels-last (B, h, w, C); vision transformers give tokens (B, N, C): a few leading extra tokens (class,
distillation, register) followed by the h x w patch grid of the input, row by row. ``infer_layout`` tells which
from the output's shape and the input's (H, W); ``FeatureLayout.apply`` does the (view-only) reshape, and is applied
alike to an activation and to its gradient, so a CAM on the reshaped pair equals one on the raw pair.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

CHANNELS_FIRST, CHANNELS_LAST, TOKENS, CUSTOM = "channels_first", "channels_last", "tokens", "custom"


@dataclass(frozen=True)
class FeatureLayout:
    """How one layer's output becomes (B, C, h, w). ``grid`` is (h, w); ``extra_tokens`` leading tokens are dropped."""

    kind: str
    grid: tuple[int, int] | None = None
    extra_tokens: int = 0
    custom: Callable[[torch.Tensor], torch.Tensor] | None = None

    def apply(self, tensor: torch.Tensor, layer: str = "") -> torch.Tensor:
        if self.kind == CHANNELS_FIRST:
            return tensor
        if self.kind == CHANNELS_LAST:
            return tensor.permute(0, 3, 1, 2)
        if self.kind == TOKENS:
            h, w = self.grid
            patches = tensor[:, self.extra_tokens:]
            return patches.reshape(tensor.shape[0], h, w, tensor.shape[2]).permute(0, 3, 1, 2)
        out = self.custom(tensor)
        if not torch.is_tensor(out) or out.ndim != 4 or out.shape[0] != tensor.shape[0]:
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(
                f"reshape for layer {layer!r} turned {tuple(tensor.shape)} into {got}; it must return a "
                f"(B={tensor.shape[0]}, C, h, w) tensor, keeping the batch dimension first"
            )
        return out

    def feature_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """(C, h, w) of the reshaped map, for an output of ``shape`` (batch first)."""
        if self.kind == CHANNELS_FIRST:
            return tuple(int(s) for s in shape[1:4])
        if self.kind == CHANNELS_LAST:
            return int(shape[3]), int(shape[1]), int(shape[2])
        if self.kind == TOKENS:
            return int(shape[2]), *self.grid
        with torch.no_grad():
            return tuple(int(s) for s in self.apply(torch.zeros(1, *shape[1:]))[0].shape)


def grid_fits(h: int, w: int, input_hw: tuple[int, int]) -> bool:
    """Whether an h x w grid can be the input's (H, W) seen through one stride: no larger than the input, and the
    same aspect ratio up to one cell of rounding (224 -> 56 x 56; 225 -> 113 x 113; 224 x 160 -> 7 x 5)."""
    height, width = input_hw
    if not (1 <= h <= height and 1 <= w <= width):
        return False
    return abs(w - h * width / height) <= 1 and abs(h - w * height / width) <= 1


@functools.lru_cache(maxsize=1024)
def token_grid(
    num_tokens: int, input_hw: tuple[int, int], extra_hint: int | None = None
) -> tuple[int, int, int] | None:
    """How N tokens of an (H, W) input split into leading extra tokens and a patch grid: ``(extra, h, w)`` or None.

    Candidate grids are (H / p, W / p) for every patch size p dividing both sides. The grid with the fewest extra
    tokens, and there must be fewer extra tokens than patches, unless the model declares how many it has (timm's
    ``num_prefix_tokens``). (An input the patch size does not divide, padded by the model, needs ``reshape=``.)
    """
    height, width = input_hw
    grids = {(height // p, width // p) for p in range(1, min(height, width) + 1) if height % p == 0 and width % p == 0}
    hinted = [(extra_hint, h, w) for h, w in grids if num_tokens - h * w == extra_hint]
    fits = sorted((num_tokens - h * w, h, w) for h, w in grids if 0 <= num_tokens - h * w < h * w)
    return (hinted or fits or [None])[0]


@functools.lru_cache(maxsize=4096)  # called by every hook of every pass; the answer depends on these values only
def infer_layout(
    shape: Sequence[int],
    input_hw: tuple[int, int],
    *,
    channels_first: bool = False,
    prefer_channels_last: bool = False,
    extra_tokens_hint: int | None = None,
) -> FeatureLayout | None:
    """The layout of an output of ``shape`` for an (H, W) input, or None when it is not a feature map.

    4-D: channels-first (B, C, h, w) unless only the channels-last reading (B, h, w, C) fits the input's aspect
    ratio (when both fit, ``prefer_channels_last`` decides: true for a LayerNorm, which normalises the last dim).
    ``channels_first`` forces it (a Conv2d). 3-D: tokens on the input's patch grid (see ``token_grid``).
    """
    if len(shape) == 4:
        if channels_first:
            return FeatureLayout(CHANNELS_FIRST)
        first_fits = grid_fits(int(shape[2]), int(shape[3]), input_hw)
        last_fits = grid_fits(int(shape[1]), int(shape[2]), input_hw)
        if last_fits and (not first_fits or prefer_channels_last):
            return FeatureLayout(CHANNELS_LAST, grid=(int(shape[1]), int(shape[2])))
        return FeatureLayout(CHANNELS_FIRST, grid=(int(shape[2]), int(shape[3])))
    if len(shape) == 3:
        found = token_grid(int(shape[1]), input_hw, extra_tokens_hint)
        if found is not None:
            extra, h, w = found
            return FeatureLayout(TOKENS, grid=(h, w), extra_tokens=extra)
    return None


def is_grid_layout(layout: FeatureLayout | None, shape: Sequence[int], input_hw: tuple[int, int]) -> bool:
    """A layout whose grid plausibly is the input's (what ``list_cam_layers`` accepts; ``explain`` is laxer)."""
    if layout is None:
        return False
    if layout.kind == CHANNELS_FIRST:
        return grid_fits(int(shape[2]), int(shape[3]), input_hw)
    return layout.kind in (CHANNELS_LAST, TOKENS)
