"""Workspaces: a model plus the test split the dashboard samples from, bundled or described by a TOML file."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from models.datasets import ImageSet, digits_test_set, shapes_test_set
from models.errors import WorkspaceError
from models.registry import BUNDLED_MODELS, penultimate_features

DEFAULT_WORKSPACE = "shapes"


@dataclass
class Workspace:
    """Everything the dashboard needs about one model and its data. See models/README.md."""

    name: str
    title: str
    description: str
    model: nn.Module
    model_id: str
    class_names: list[str]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    transform: Callable[[Image.Image], torch.Tensor]
    default_layer: str
    classifier_layer: str
    test_set: ImageSet
    test_accuracy: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    #: (len(test_set), num_classes) logits shipped with a bundled checkpoint, so the dashboard need not classify
    #: the whole split at start-up; None when there are none (bring-your-own) or they belong to another checkpoint.
    test_logits: np.ndarray | None = None

    def features(self, images: torch.Tensor) -> np.ndarray:
        """Penultimate features (the flattened input of ``classifier_layer``) of normalised ``images``."""
        return penultimate_features(self.model, images, self.classifier_layer)


@dataclass(frozen=True)
class _Bundled:
    title: str
    description: str
    test_set: Callable[[Any], ImageSet]
    notes: dict[str, Any] = field(default_factory=dict)


_BUNDLED: dict[str, _Bundled] = {
    "shapes": _Bundled(
        title="Shapes (synthetic, with masks)",
        description=(
            "Eight kinds of shape with random colour, size, position and rotation on cluttered, textured "
            "backgrounds, generated from a fixed seed. Every test image has its object's mask, so you can check "
            "where Grad-CAM points against the ground truth."
        ),
        test_set=lambda transform: shapes_test_set(transform),
    ),
    "shapes-shortcut": _Bundled(
        title="Shapes with a shortcut (clever Hans)",
        description=(
            "Trained on images whose small coloured marker gave the class away; in this test set the marker is "
            "shuffled and accuracy collapses. The model learned the marker, not the shape; Grad-CAM shows it, "
            "which is why you check what a model looks at before trusting its validation accuracy."
        ),
        test_set=lambda transform: shapes_test_set(transform, marker="shuffled"),
        notes={"shortcut": True, "warning": "validation accuracy is high only because of the marker"},
    ),
    "digits": _Bundled(
        title="Handwritten digits (scikit-learn)",
        description=(
            "Real handwriting: scikit-learn's bundled 8x8 digit scans (no download) upscaled to 32x32, with a "
            "fixed quarter of them held out as the test split."
        ),
        test_set=lambda transform: digits_test_set(transform),
    ),
}


def list_workspaces() -> list[str]:
    """Names of the bundled workspaces, the default first."""
    return [DEFAULT_WORKSPACE, *(name for name in _BUNDLED if name != DEFAULT_WORKSPACE)]


def _load_bundled(name: str) -> Workspace:
    spec = _BUNDLED[name]
    entry = BUNDLED_MODELS[name]
    notes: dict[str, Any] = dict(spec.notes)
    if entry.trained:
        model = entry.build(weights=True)
        metadata = entry.metadata
        metrics = dict(metadata.get("metrics", {}))
        test_accuracy = metrics.get("test_accuracy")
        notes.update({"metrics": metrics, "checkpoint": str(entry.checkpoint_path),
                      **{k: metadata[k] for k in ("seed", "date", "epochs", "train_seconds") if k in metadata}})
    else:
        model = entry.build(weights=False)
        test_accuracy = None
        notes["untrained"] = (f"no checkpoint at {entry.checkpoint_path}: this is a randomly initialised model; "
                              f"train it with `python -m models.train {name}`")
    transform = entry.transforms()
    test_set = spec.test_set(transform)
    test_logits = entry.shipped_test_logits() if entry.trained else None
    if test_logits is not None and test_logits.shape != (len(test_set), len(entry.categories)):
        test_logits = None
    return Workspace(
        name=name,
        title=spec.title,
        description=spec.description,
        model=model,
        model_id=entry.model_id(),
        class_names=list(entry.categories),
        input_size=entry.input_size,
        mean=entry.mean,
        std=entry.std,
        transform=transform,
        default_layer=entry.default_layer,
        classifier_layer=entry.classifier_layer,
        test_set=test_set,
        test_accuracy=test_accuracy,
        notes=notes,
        test_logits=test_logits,
    )


def load_workspace(name_or_path: str | os.PathLike = DEFAULT_WORKSPACE) -> Workspace:
    """A bundled workspace by name (see ``list_workspaces()``), or one described by a ``.toml`` file."""
    if isinstance(name_or_path, str) and name_or_path in _BUNDLED:
        return _load_bundled(name_or_path)
    path = Path(name_or_path)
    if path.suffix.lower() == ".toml" or path.exists():
        from models.byo import load_workspace_file

        return load_workspace_file(path)
    raise WorkspaceError(
        f"unknown workspace {str(name_or_path)!r}: not a bundled name ({', '.join(list_workspaces())}) and not a "
        "path to a .toml workspace file (see models/README.md, 'Bring your own')"
    )
