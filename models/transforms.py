"""Preprocessing: any-size RGB PIL image -> normalised (3, H, W) float tensor, batched the same way."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
             "lanczos": Image.LANCZOS, "box": Image.BOX}


class ImageTransform:
    """Resize (optionally the shorter side to ``resize`` then centre-crop), scale to [0, 1], normalise.

    Without ``resize`` the image is resized straight to ``input_size`` (H, W). ``from_uint8`` applies the same
    arithmetic to a (N, H, W, 3) uint8 batch that is already at ``input_size``, so a dataset can build a batch
    without a Python loop and get exactly ``torch.stack([transform(img) for img in images])``.
    """

    def __init__(self, input_size: tuple[int, int], mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, resize: int | None = None, interpolation: str = "bilinear"):
        if interpolation not in _RESAMPLE:
            raise ValueError(f"interpolation {interpolation!r} is not one of {', '.join(_RESAMPLE)}")
        self.interpolation = interpolation
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.resize = None if resize is None else int(resize)
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)

    def __repr__(self) -> str:
        resize = f", resize={self.resize}" if self.resize else ""
        resample = f", interpolation={self.interpolation!r}" if self.interpolation != "bilinear" else ""
        return f"ImageTransform(input_size={self.input_size}, mean={self.mean}, std={self.std}{resize}{resample})"

    def resized(self, image: Image.Image) -> Image.Image:
        """The RGB image at ``input_size``: what the model sees, before normalisation."""
        image = image.convert("RGB")
        height, width = self.input_size
        if self.resize is not None:
            scale = self.resize / min(image.size)
            new_size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
            if new_size != image.size:
                image = image.resize(new_size, _RESAMPLE[self.interpolation])
            left = (image.width - width) // 2
            top = (image.height - height) // 2
            return image.crop((left, top, left + width, top + height))
        if image.size != (width, height):
            image = image.resize((width, height), _RESAMPLE[self.interpolation])
        return image

    def from_uint8(self, batch: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, normalised."""
        batch = np.asarray(batch)
        if not (batch.flags.writeable and batch.flags.c_contiguous):
            batch = np.array(batch, copy=True, order="C")
        tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
        return tensor.sub_(self._mean).div_(self._std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.from_uint8(np.asarray(self.resized(image))[None])[0]
