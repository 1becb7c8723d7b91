"""The model registry: one entry per model, carrying what is needed to use it (torchvision weights-API style).

    from models.registry import get_entry
    entry = get_entry("shapes")
    model = entry.build()                      # eval mode, CPU, shipped weights loaded
    x = entry.transforms()(pil_image)[None]    # like Weights.transforms()
    entry.meta["categories"], entry.meta["default_layer"], entry.meta["classifier_layer"]
    feats = entry.features(model, x)           # penultimate features (input of the classifier), for t-SNE
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.checkpoints import apply_state_dict, checkpoint_sha256, load_state_dict_file
from models.datasets import DIGIT_CLASSES, DIGITS_SIZE
from models.errors import WorkspaceError
from models.nets import DigitsCNN, ShapesResNet
from models.shapes import IMAGE_SIZE, SHAPE_CLASSES
from models.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
SHAPES_MEAN = (0.5, 0.5, 0.5)
SHAPES_STD = (0.25, 0.25, 0.25)


def penultimate_features(model: nn.Module, images: torch.Tensor, classifier_layer: str,
                         batch_size: int = 256) -> np.ndarray:
    """(N, D) float32: the flattened input of ``classifier_layer`` (what the final classifier sees), no grad.

    The model's training flag and hooks are left as they were (the hook lives for this call only)."""
    from gradcam_core import CamEngine

    features, _ = CamEngine(model, device=next(model.parameters()).device).features(
        images, classifier_layer, batch_size=batch_size)
    return features


@dataclass(frozen=True)
class ModelEntry:
    """A bundled model: builder, preprocessing, class names, input size, default CAM layer, classifier layer
    and its shipped checkpoint (``models/checkpoints/<checkpoint>`` with a ``.json`` of metrics beside it)."""

    name: str
    builder: Callable[[], nn.Module]
    categories: tuple[str, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_layer: str
    classifier_layer: str
    checkpoint: str | None = None
    extra_meta: dict[str, Any] = field(default_factory=dict)

    def transforms(self) -> ImageTransform:
        return ImageTransform(self.input_size, self.mean, self.std)

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.checkpoint is None else CHECKPOINT_DIR / self.checkpoint

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """The checkpoint's JSON card (accuracy, seed, date, epochs, train time), or {} when there is none."""
        path = self.checkpoint_path
        if path is None or not path.with_suffix(".json").is_file():
            return {}
        return json.loads(path.with_suffix(".json").read_text())

    @property
    def test_logits_path(self) -> Path | None:
        return None if self.checkpoint is None else CHECKPOINT_DIR / f"{Path(self.checkpoint).stem}.test-logits.npz"

    def shipped_test_logits(self) -> np.ndarray | None:
        """The test split's logits saved by ``python -m models.train`` with this checkpoint, or None when they are
        missing or were made by another checkpoint (their sha256 is stored with them)."""
        path = self.test_logits_path
        if path is None or not path.is_file() or not self.trained:
            return None
        with np.load(path) as data:
            if str(data["checkpoint_sha256"]) != checkpoint_sha256(self.checkpoint_path):
                return None
            return data["logits"].astype(np.float32)

    @property
    def trained(self) -> bool:
        path = self.checkpoint_path
        return path is not None and path.is_file()

    @property
    def meta(self) -> dict[str, Any]:
        return {
            "categories": list(self.categories),
            "input_size": self.input_size,
            "mean": self.mean,
            "std": self.std,
            "default_layer": self.default_layer,
            "classifier_layer": self.classifier_layer,
            "checkpoint": self.checkpoint,
            "metrics": dict(self.metadata.get("metrics", {})),
            **self.extra_meta,
        }

    def model_id(self) -> str:
        if not self.trained:
            return f"{self.name}:untrained"
        return f"{self.name}:{checkpoint_sha256(self.checkpoint_path)[:12]}"

    def build(self, weights: bool = True) -> nn.Module:
        """The model in eval mode on the CPU; with ``weights`` the shipped checkpoint is loaded (it must exist)."""
        torch.manual_seed(0)  # an untrained model is the same every time, too
        model = self.builder()
        if weights:
            path = self.checkpoint_path
            if path is None or not path.is_file():
                raise WorkspaceError(
                    f"the checkpoint of {self.name!r} ({path}) is missing; train it with "
                    f"`python -m models.train {self.name}` or restore models/checkpoints from git"
                )
            apply_state_dict(model, load_state_dict_file(path), path)
        return model.eval()

    def features(self, model: nn.Module, images: torch.Tensor) -> np.ndarray:
        return penultimate_features(model, images, self.classifier_layer)


@dataclass(frozen=True)
class TorchvisionEntry:
    """A torchvision architecture; weights come from torchvision's weights API (see models.torchvision_models)."""

    name: str
    default_layer: str
    classifier_layer: str

    def weights_enum(self):
        from torchvision.models import get_model_weights

        return get_model_weights(self.name)

    @property
    def meta(self) -> dict[str, Any]:
        default = self.weights_enum().DEFAULT
        return {
            "categories": list(default.meta["categories"]),
            "input_size": (224, 224),
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
            "default_layer": self.default_layer,
            "classifier_layer": self.classifier_layer,
            "weights": str(default),
        }

    def transforms(self, weights: str | None = "DEFAULT"):
        from models.torchvision_models import torchvision_transform

        return torchvision_transform(self.name, weights)

    def build(self, weights: str | None = "DEFAULT", num_classes: int | None = None) -> nn.Module:
        from models.torchvision_models import load_torchvision

        model, _, _ = load_torchvision(self.name, weights=weights, num_classes=num_classes)
        return model

    def features(self, model: nn.Module, images: torch.Tensor) -> np.ndarray:
        return penultimate_features(model, images, self.classifier_layer)


def _shapes_entry(name: str) -> ModelEntry:
    """The two shapes models share an architecture and preprocessing; only their training data differs."""
    return ModelEntry(
        name=name,
        builder=lambda: ShapesResNet(num_classes=len(SHAPE_CLASSES)),
        categories=SHAPE_CLASSES,
        input_size=(IMAGE_SIZE, IMAGE_SIZE),
        mean=SHAPES_MEAN,
        std=SHAPES_STD,
        default_layer="head.0",
        classifier_layer="fc",
        checkpoint=f"{name}.safetensors",
    )


BUNDLED_MODELS: dict[str, ModelEntry] = {
    "shapes": _shapes_entry("shapes"),
    "shapes-shortcut": _shapes_entry("shapes-shortcut"),
    "digits": ModelEntry(
        name="digits",
        builder=lambda: DigitsCNN(num_classes=len(DIGIT_CLASSES)),
        categories=DIGIT_CLASSES,
        input_size=(DIGITS_SIZE, DIGITS_SIZE),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        default_layer="features.14",
        classifier_layer="fc",
        checkpoint="digits.safetensors",
    ),
}

TORCHVISION_MODELS: dict[str, TorchvisionEntry] = {
    entry.name: entry
    for entry in (
        TorchvisionEntry("resnet18", "layer4.1.conv2", "fc"),
        TorchvisionEntry("resnet50", "layer4.2.conv3", "fc"),
        TorchvisionEntry("vgg16", "features.28", "classifier.6"),
        TorchvisionEntry("densenet121", "features.denseblock4.denselayer16.conv2", "classifier"),
        TorchvisionEntry("mobilenet_v3_large", "features.16.0", "classifier.3"),
        TorchvisionEntry("efficientnet_b0", "features.8.0", "classifier.1"),
        TorchvisionEntry("convnext_tiny", "features.7.2.block.0", "classifier.2"),
    )
}

MODEL_REGISTRY: dict[str, ModelEntry | TorchvisionEntry] = {**BUNDLED_MODELS, **TORCHVISION_MODELS}


def list_models() -> list[str]:
    return list(MODEL_REGISTRY)


def get_entry(name: str) -> ModelEntry | TorchvisionEntry:
    try:
        return MODEL_REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(MODEL_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise WorkspaceError(f"model {name!r} is not in the registry{hint} (known: {', '.join(MODEL_REGISTRY)})") \
            from None
