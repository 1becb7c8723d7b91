"""A tiny model and image set for the analysis tests: a 2-conv net on 16x16 images with a known classifier."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from models.datasets import ArrayImageSet
from models.transforms import ImageTransform

SIZE = 16


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    ).eval()


@pytest.fixture(name="tiny_model")
def tiny_model_factory():
    """``tiny_model()`` makes a fresh model with the same weights each call."""
    return tiny_model


@pytest.fixture
def tiny_set() -> ArrayImageSet:
    rng = np.random.default_rng(0)
    return ArrayImageSet(rng.integers(0, 256, (23, SIZE, SIZE, 3), dtype=np.uint8), rng.integers(0, 3, 23),
                         ImageTransform((SIZE, SIZE), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))


@pytest.fixture
def tiny_workspace(tiny_set):
    """Just what analysis.features reads of a models.Workspace."""
    return SimpleNamespace(name="tiny", model=tiny_model(), model_id="tiny@seed0", classifier_layer="6",
                           test_set=tiny_set)
