"""Turning maps into pictures: bilinear upsampling, colormaps and opacity blending (numpy, milliseconds).

Plot-free on purpose: these take arrays and return arrays, so the dashboard, the CLI and a notebook share them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Anchor colours sampled evenly from each colormap (matplotlib's definitions), linearly interpolated to 256.
_ANCHORS: dict[str, list[tuple[int, int, int]]] = {
    "viridis": [
        (68, 1, 84), (72, 26, 108), (71, 47, 125), (65, 68, 135), (57, 86, 140), (49, 104, 142),
        (42, 120, 142), (35, 137, 142), (31, 154, 138), (34, 169, 132), (53, 183, 121), (84, 197, 104),
        (122, 209, 81), (165, 219, 54), (210, 226, 27), (253, 231, 37),
    ],
    "inferno": [
        (0, 0, 4), (12, 8, 38), (36, 12, 79), (66, 10, 104), (93, 18, 110), (120, 28, 109), (147, 38, 103),
        (174, 48, 92), (199, 62, 76), (221, 81, 58), (237, 105, 37), (248, 133, 15), (252, 165, 10),
        (250, 198, 45), (242, 230, 97), (252, 255, 164),
    ],
    "gray": [(0, 0, 0), (255, 255, 255)],
}


def _turbo(x: np.ndarray) -> np.ndarray:
    """Google's polynomial approximation of Turbo (Mikhailov 2019)."""
    coeffs = {
        "r": (0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943),
        "g": (0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604),
        "b": (0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973),
    }
    powers = np.stack([x**i for i in range(6)], axis=-1)
    return np.clip(np.stack([powers @ np.array(coeffs[c]) for c in "rgb"], axis=-1), 0, 1)


def _jet(x: np.ndarray) -> np.ndarray:
    """The classic MATLAB/OpenCV jet: blue -> cyan -> yellow -> red."""
    r = np.clip(1.5 - np.abs(4 * x - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * x - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * x - 1), 0, 1)
    return np.stack([r, g, b], axis=-1)


def _build_luts() -> dict[str, np.ndarray]:
    grid = np.linspace(0.0, 1.0, 256)
    luts = {"jet": _jet(grid), "turbo": _turbo(grid)}
    for name, anchors in _ANCHORS.items():
        points = np.asarray(anchors, dtype=np.float64) / 255.0
        xs = np.linspace(0.0, 1.0, len(points))
        luts[name] = np.stack([np.interp(grid, xs, points[:, c]) for c in range(3)], axis=-1)
    return {name: np.round(lut * 255).astype(np.uint8) for name, lut in luts.items()}


COLORMAPS: dict[str, np.ndarray] = _build_luts()


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
