"""The viewer's pictures computed in numpy exactly as viewer.js draws them, so a download is the picture on screen.

The browser gets each map as uint8 LUT indices (``quantise``: ``rint(value * 255)``) at the layer's resolution and
upsamples those indices to the display size itself: bilinear with half-pixel centres in float64, then round half to
even. ``display_indices`` repeats that arithmetic operation for operation (IEEE doubles give the same bits in
numpy and in JavaScript), so ``heatmap_picture`` and ``overlay_picture`` equal the canvases pixel for pixel. Against
``gradcam_core.heatmap_image`` (float32 map upsampled by torch) a pixel is at most one LUT step apart.
"""

from __future__ import annotations

import numpy as np

from gradcam_core import overlay


def quantise(cam: np.ndarray) -> np.ndarray:
    """A map in [0, 1] as uint8 ``rint(value * 255)``: the LUT index the heatmap's colour is taken from."""
    values = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0)
    return np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)


def _axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source index, next index and weight along one axis: viewer.js ``axisWeights`` (torch's
    align_corners=False, negative source coordinates clamped to 0)."""
    scale = in_size / out_size
    source = np.maximum((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    low = np.floor(source).astype(np.int64)
    high = np.where(low < in_size - 1, low + 1, low)
    return low, high, source - low


def display_indices(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) uint8 indices -> (height, width) uint8 indices: viewer.js ``upsampleIndices``."""
    values = np.asarray(values, dtype=np.float64)
    x0, x1, wx = _axis(values.shape[1], width)
    y0, y1, wy = _axis(values.shape[0], height)
    top, bottom = values[y0], values[y1]
    upper = (1 - wx) * top[:, x0] + wx * top[:, x1]
    lower = (1 - wx) * bottom[:, x0] + wx * bottom[:, x1]
    value = (1 - wy)[:, None] * upper + wy[:, None] * lower
    return np.rint(np.clip(value, 0, 255)).astype(np.uint8)


def heatmap_picture(cam: np.ndarray, lut: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8: the viewer's heatmap of a map in [0, 1] with a (256, 3) LUT."""
    return np.asarray(lut)[display_indices(quantise(cam), height, width)]


def overlay_picture(pixels: np.ndarray, heat: np.ndarray, opacity: float) -> np.ndarray:
    """The viewer's overlay: ``rint((1 - a) * image + a * colour)`` in float32, as ``gradcam_core.overlay``."""
    return overlay(pixels, heat, float(opacity))


def enlarge(pixels: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (the viewer's original picture)."""
    return pixels if scale <= 1 else np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


def viewer_pictures(pixels: np.ndarray, cam: np.ndarray, lut: np.ndarray, opacity: float, scale: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(heatmap, overlay) at display size, as the viewer shows ``cam`` over ``pixels`` (enlarged ``scale``×)."""
    shown = enlarge(np.asarray(pixels), scale)
    heat = heatmap_picture(cam, lut, *shown.shape[:2])
    return heat, overlay_picture(shown, heat, opacity)
