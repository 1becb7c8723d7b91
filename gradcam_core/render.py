"""Turning maps into pictures: bilinear upsampling, colormaps and opacity blending (numpy, milliseconds).

Plot-free on purpose: these take arrays and return arrays, so the dashboard, the CLI and a notebook share them.
The colormaps are matplotlib's exact 256-entry tables, shipped as data (matplotlib is not needed at run time).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gradcam_core._colormap_tables import TABLES_HEX


def _load_tables() -> dict[str, np.ndarray]:
    """matplotlib's own 256-entry tables (see ``_make_colormaps``); read-only (``frombuffer`` over bytes), so no
    caller can recolour another's pictures by writing into one."""
    return {name: np.frombuffer(bytes.fromhex(hexed), dtype=np.uint8).reshape(256, 3)
            for name, hexed in TABLES_HEX.items()}


COLORMAPS: dict[str, np.ndarray] = _load_tables()


def colormap_lut(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table of a colormap."""
    try:
        return COLORMAPS[name]
    except KeyError:
        raise ValueError(f"unknown colormap {name!r}; choose from {', '.join(COLORMAPS)}") from None


def upsample(cam: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (half-pixel centres, like OpenCV) of a (h, w) or (N, h, w) map to ``size`` = (H, W),
    clipped to [0, 1]."""
    tensor = torch.as_tensor(np.asarray(cam) if not torch.is_tensor(cam) else cam).float()
    squeeze = tensor.ndim == 2
    if squeeze:
        tensor = tensor[None]
    if tensor.ndim != 3:
        raise ValueError(f"cam must be (h, w) or (N, h, w), got shape {tuple(tensor.shape)}")
    out = F.interpolate(tensor[:, None].cpu(), size=tuple(int(s) for s in size), mode="bilinear",
                        align_corners=False)[:, 0]
    out = out.clamp_(0.0, 1.0).numpy()
    return out[0] if squeeze else out


def colorize(cam: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """(H, W) map in [0, 1] -> (H, W, 3) uint8 RGB."""
    lut = colormap_lut(colormap)
    index = np.clip(np.rint(np.nan_to_num(np.asarray(cam, dtype=np.float32)) * 255), 0, 255).astype(np.uint8)
    return lut[index]


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """Blend a heatmap over a uint8 RGB image: ``(1 - alpha) * image + alpha * colour``.

    ``heat`` is either a map in [0, 1] (any size: it is upsampled to the image) or an already coloured
    (H, W, 3) uint8 array. ``alpha`` 0 gives the image, 1 the heatmap.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    heat = np.asarray(heat)
    if heat.ndim == 2:
        if heat.shape != image.shape[:2]:
            heat = upsample(heat, image.shape[:2])
        heat = colorize(heat, colormap)
    if heat.shape != image.shape:
        raise ValueError(f"heatmap of shape {heat.shape} does not match image {image.shape}")
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * heat.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def heatmap_image(cam: np.ndarray, size: tuple[int, int], colormap: str = "jet") -> np.ndarray:
    """Upsampled and coloured (H, W, 3) uint8 picture of a map."""
    return colorize(upsample(cam, size), colormap)


def denormalise(image: torch.Tensor, mean, std) -> np.ndarray:
    """(3, H, W) normalised tensor -> (H, W, 3) uint8, undoing ``(x - mean) / std``."""
    tensor = image.detach().cpu().float()
    mean_t = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    pixels = (tensor * std_t + mean_t).clamp(0, 1).permute(1, 2, 0).numpy()
    return np.rint(pixels * 255).astype(np.uint8)
