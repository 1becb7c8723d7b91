"""Test splits the dashboard samples from: an ``ImageSet`` over in-memory arrays or an ImageFolder directory."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gradcam_core.images import ImageLoadError, load_image
from models.errors import WorkspaceError
from models.shapes import SHAPE_CLASSES, ShapesBatch, cached_shapes
from models.transforms import ImageTransform

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# Fixed seeds and sizes of the bundled splits. Training uses other seeds (see models/train.py).
SHAPES_TEST_SEED = 3
SHAPES_TEST_SIZE = 2000
SHAPES_VAL_SEED = 2
SHAPES_VAL_SIZE = 1000
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.25
DIGITS_SIZE = 32


class ImageSet:
    """A labelled, indexable set of images. ``labels`` is an int64 array; ``tensors`` gives model inputs."""

    labels: np.ndarray

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor]):
        self.transform = transform

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def image(self, i: int) -> Image.Image:
        raise NotImplementedError

    def label(self, i: int) -> int:
        return int(self.labels[self._check(i)])

    def tensors(self, indices: Sequence[int]) -> torch.Tensor:
        """(N, 3, H, W) normalised model inputs; equal to ``torch.stack([transform(image(i)) for i in indices])``."""
        return torch.stack([self.transform(self.image(i)) for i in indices])

    def mask(self, i: int) -> np.ndarray | None:
        self._check(i)
        return None

    def item_id(self, i: int) -> str:
        return f"test-{self._check(i):05d}"

    def _check(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"image index {i} is out of range: the set has {len(self)} images")
        return i


class EmptyImageSet(ImageSet):
    """No test images: a workspace without a [data] table (the CLI's explain, uploads only)."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor]):
        super().__init__(transform)
        self.labels = np.zeros(0, dtype=np.int64)


class ArrayImageSet(ImageSet):
    """Images held as a (N, H, W, 3) uint8 array, with optional (N, H, W) bool object masks."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable[[Image.Image], torch.Tensor],
                 masks: np.ndarray | None = None):
        super().__init__(transform)
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.masks = masks

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[self._check(i)])

    def tensors(self, indices: Sequence[int]) -> torch.Tensor:
        indices = [self._check(i) for i in indices]
        transform = self.transform
        if isinstance(transform, ImageTransform) and self.images.shape[1:3] == transform.input_size:
            return transform.from_uint8(self.images[indices])
        return super().tensors(indices)

    def mask(self, i: int) -> np.ndarray | None:
        i = self._check(i)
        return None if self.masks is None else self.masks[i]


class ShapesImageSet(ArrayImageSet):
    """A shapes split: images, labels, object masks, and the shortcut marker's class and box (if any)."""

    def __init__(self, batch: ShapesBatch, transform: Callable[[Image.Image], torch.Tensor]):
        super().__init__(batch.images, batch.labels, transform, masks=batch.masks)
        self.batch = batch

    def marker_class(self, i: int) -> int | None:
        """The class the image's marker stands for, or None when it has none."""
        value = int(self.batch.marker_classes[self._check(i)])
        return None if value < 0 else value

    def marker_box(self, i: int) -> tuple[int, int, int, int] | None:
        """(top, left, bottom, right) of the marker in pixels (bottom/right exclusive), or None."""
        i = self._check(i)
        if self.batch.marker_classes[i] < 0:
            return None
        return tuple(int(v) for v in self.batch.marker_boxes[i])


def shapes_test_set(transform: ImageTransform, marker: str | None = None) -> ShapesImageSet:
    """The fixed shapes test split (``SHAPES_TEST_SIZE`` images); ``marker="shuffled"`` for the shortcut one.

    Both splits come from the same seed, so they show the same objects on the same backgrounds and differ only
    by the marker."""
    return ShapesImageSet(cached_shapes(SHAPES_TEST_SIZE, SHAPES_TEST_SEED, marker), transform)


def shapes_val_set(transform: ImageTransform, marker: str | None = None) -> ShapesImageSet:
    return ShapesImageSet(cached_shapes(SHAPES_VAL_SIZE, SHAPES_VAL_SEED, marker), transform)


# ---------------------------------------------------------------------------------------------- digits
DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))


def _load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float in [0, 16], labels) from scikit-learn's bundled copy (public API, no download)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target.astype(np.int64)


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (no download), upscaled to 32x32 RGB, dark ink on white.

    Returns (train_images, train_labels, test_images, test_labels): a fixed split, stratified by class, that
    holds out ``DIGITS_TEST_FRACTION`` of each digit (seed ``DIGITS_SPLIT_SEED``). Arrays are read-only."""
    raw, labels = _load_digits_raw()
    small = torch.from_numpy(raw.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8) in [0, 1]
    big = torch.nn.functional.interpolate(small, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bicubic",
                                          align_corners=False).clamp_(0, 1)[:, 0]
    gray = np.rint((1.0 - big.numpy()) * 255).astype(np.uint8)
    images = np.repeat(gray[..., None], 3, axis=-1)
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test_mask = np.zeros(len(labels), bool)
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        test_mask[members[: round(len(members) * DIGITS_TEST_FRACTION)]] = True
    arrays = (images[~test_mask], labels[~test_mask], images[test_mask], labels[test_mask])
    for array in arrays:
        array.flags.writeable = False
    return arrays


def digits_test_set(transform: ImageTransform) -> ArrayImageSet:
    _, _, images, labels = digits_arrays()
    return ArrayImageSet(images, labels, transform)


# ------------------------------------------------------------------------------------------ ImageFolder
class FolderImageSet(ImageSet):
    """An ImageFolder directory: ``root/<class folder>/<image>``; labels index ``class_names``.

    Opening it only lists the files (no decoding: 100,000 files in about a second); each image is decoded when
    asked for, by the decoder uploads use (``gradcam_core.images.load_image``). A file that turns out unreadable
    raises a WorkspaceError naming it, and is remembered in ``skipped`` with the reason, for the page to list.
    ``listing=(relative paths, labels)`` skips the directory walk (a precomputed store supplies it).

    ``folder_to_class`` maps a folder name to a class name (default: the folder name itself). Every folder must
    map to one of ``class_names``; classes without a folder are allowed (a test set may lack some).
    """

    def __init__(self, root: str | Path, class_names: Sequence[str], transform: Callable[[Image.Image], torch.Tensor],
                 folder_to_class: dict[str, str] | None = None,
                 listing: tuple[Sequence[str], Sequence[int]] | None = None):
        super().__init__(transform)
        self.root = Path(root)
        if not self.root.is_dir():
            raise WorkspaceError(
                f"data folder {str(self.root)!r} does not exist or is not a directory; point [data] root at an "
                "ImageFolder directory (one sub-folder of images per class)"
            )
        relative, labels = listing if listing is not None else list_image_folder(self.root, class_names,
                                                                                   folder_to_class)
        self.relative_paths = list(relative)
        self.labels = np.asarray(labels, dtype=np.int64)
        #: (path relative to root, why) of every image file met so far that could not be read
        self.skipped: list[tuple[str, str]] = []

    @property
    def files(self) -> list[Path]:
        return [self.root / rel for rel in self.relative_paths]

    def image(self, i: int) -> Image.Image:
        relative = self.relative_paths[self._check(i)]
        try:
            return load_image(self.root / relative)
        except ImageLoadError as error:
            if all(rel != relative for rel, _ in self.skipped):
                self.skipped.append((relative, str(error)))
            raise WorkspaceError(f"cannot read image {str(self.root / relative)!r}: {error}; remove or replace the "
                                 "file") from None

    def item_id(self, i: int) -> str:
        return self.relative_paths[self._check(i)]


def class_folders(root: Path) -> list[str]:
    """The class sub-folders of an ImageFolder root, sorted (ImageFolder's convention), hidden ones left out."""
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def list_image_folder(root: Path, class_names: Sequence[str],
                      folder_to_class: dict[str, str] | None = None) -> tuple[list[str], list[int]]:
    """(paths relative to root, labels) of every image file under root/<class folder>/, without decoding any."""
    folder_to_class = dict(folder_to_class or {})
    index = {name: k for k, name in enumerate(class_names)}
    folders = class_folders(root)
    unknown = [f for f in folders if folder_to_class.get(f, f) not in index]
    if unknown:
        raise WorkspaceError(
            f"class folder(s) {', '.join(repr(u) for u in unknown[:5])} in {str(root)!r} do not match any "
            f"class name (the model has {len(class_names)}: {', '.join(repr(c) for c in class_names[:5])}"
            f"{', ...' if len(class_names) > 5 else ''}); rename the folders or map them in [data.class_map], "
            'e.g. class_map = { "n01440764" = "tench" }'
        )
    relative: list[str] = []
    labels: list[int] = []
    for folder in folders:
        found = sorted(image_files(root / folder, folder))
        relative.extend(found)
        labels.extend([index[folder_to_class.get(folder, folder)]] * len(found))
    if not relative:
        raise WorkspaceError(
            f"data folder {str(root)!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)} files in "
            f"its class sub-folders, found {len(folders)} sub-folder(s)); put each class's images in "
            "root/<class name>/"
        )
    return relative, labels


def image_files(folder: Path, prefix: str):
    """Relative paths ("class/sub/file.png") of the image files under ``folder``, by name only."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                yield from image_files(Path(entry.path), f"{prefix}/{entry.name}")
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                yield f"{prefix}/{entry.name}"


__all__ = [
    "DIGIT_CLASSES",
    "SHAPE_CLASSES",
    "ArrayImageSet",
    "EmptyImageSet",
    "FolderImageSet",
    "ImageSet",
    "ShapesImageSet",
    "class_folders",
    "digits_arrays",
    "digits_test_set",
    "image_files",
    "list_image_folder",
    "shapes_test_set",
    "shapes_val_set",
]
