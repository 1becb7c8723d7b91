"""Accuracy and Grad-CAM localisation checks for a model on an ImageSet (used by training and the tests)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.datasets import ImageSet


def logits(model: nn.Module, image_set: ImageSet, indices: Sequence[int] | None = None,
           batch_size: int = 500) -> np.ndarray:
    """(N, num_classes) float32 logits (no grad, eval mode; the model's training flag is restored)."""
    indices = list(range(len(image_set))) if indices is None else list(indices)
    device = _device_of(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [model(image_set.tensors(indices[i:i + batch_size]).to(device)).float().cpu()
                     for i in range(0, len(indices), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts).numpy() if parts else np.zeros((0, 0), np.float32)


def _device_of(model: nn.Module) -> torch.device:
    """Where the model's weights are: evaluation runs there and never moves the model."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def predict(model: nn.Module, image_set: ImageSet, indices: Sequence[int] | None = None,
            batch_size: int = 500) -> np.ndarray:
    """Predicted class of each image."""
    scores = logits(model, image_set, indices, batch_size)
    return scores.argmax(axis=1).astype(np.int64) if len(scores) else np.zeros(0, np.int64)


def accuracy(model: nn.Module, image_set: ImageSet, batch_size: int = 500) -> float:
    return float((predict(model, image_set, batch_size=batch_size) == image_set.labels).mean())


def dilate(masks: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of (N, H, W) bool masks by a disc of ``radius`` px (Euclidean)."""
    if radius <= 0:
        return masks.copy()
    grid = np.arange(-radius, radius + 1)
    disc = (grid[:, None] ** 2 + grid[None, :] ** 2 <= radius * radius).astype(np.float32)
    tensor = torch.from_numpy(masks.astype(np.float32))[:, None]
    grown = F.conv2d(tensor, torch.from_numpy(disc)[None, None], padding=radius)
    return (grown[:, 0] > 0.5).numpy()


def cam_peaks(model: nn.Module, image_set: ImageSet, indices: Sequence[int], layer: str,
              targets: Sequence[int] | None = None, batch_size: int = 250) -> np.ndarray:
    """(N, 2) int (row, col) of the Grad-CAM maximum of ``layer`` upsampled to the image, one per index.

    targets: the class explained per image; None = the predicted class."""
    from gradcam_core import CamEngine
    from gradcam_core.render import upsample

    engine = CamEngine(model, device=_device_of(model))
    indices = list(indices)
    peaks = []
    for start in range(0, len(indices), batch_size):
        batch = indices[start:start + batch_size]
        images = image_set.tensors(batch)
        batch_targets = None if targets is None else list(targets[start:start + batch_size])
        cams = engine.explain(images, layers=[layer], targets=batch_targets).cams["gradcam"][layer]
        maps = upsample(cams, tuple(images.shape[-2:]))
        flat = maps.reshape(len(batch), -1).argmax(axis=1)
        peaks.append(np.stack(np.unravel_index(flat, maps.shape[1:]), axis=1))
    return np.concatenate(peaks) if peaks else np.zeros((0, 2), np.int64)


def peaks_inside(peaks: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(N,) bool: whether each (row, col) peak lies inside its (H, W) region."""
    return regions[np.arange(len(peaks)), peaks[:, 0], peaks[:, 1]]


def pointing_game(model: nn.Module, image_set, layer: str, dilation: int = 3, only_correct: bool = True,
                  indices: Sequence[int] | None = None) -> dict[str, float]:
    """Where the Grad-CAM peak (predicted class, ``layer``, upsampled to the image) falls.

    Over the correctly classified images among ``indices`` (default all; every one of them with
    ``only_correct=False``): ``on_object`` is the fraction
    of peaks inside the object mask dilated by ``dilation`` px, and ``on_marker`` (sets with a shortcut marker)
    the fraction inside the equally dilated marker box. ``images`` is how many images were counted.
    """
    indices = np.arange(len(image_set)) if indices is None else np.asarray(indices, dtype=np.int64)
    if only_correct:
        indices = indices[predict(model, image_set, indices) == image_set.labels[indices]]
    peaks = cam_peaks(model, image_set, indices, layer)
    masks = np.stack([image_set.mask(i) for i in indices])
    result = {"images": len(indices), "on_object": float(peaks_inside(peaks, dilate(masks, dilation)).mean())}
    if getattr(image_set, "marker_box", None) is not None and image_set.marker_box(0) is not None:
        markers = dilate(marker_regions(image_set, indices), dilation)
        result["on_marker"] = float(peaks_inside(peaks, markers).mean())
    return result


def marker_regions(image_set, indices: Sequence[int]) -> np.ndarray:
    """(N, H, W) bool boxes of each image's shortcut marker (all False where an image has none)."""
    height, width = image_set.masks.shape[1:]
    regions = np.zeros((len(indices), height, width), bool)
    for row, i in enumerate(indices):
        box = image_set.marker_box(i)
        if box is not None:
            top, left, bottom, right = box
            regions[row, top:bottom, left:right] = True
    return regions
