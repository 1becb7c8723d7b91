"""Shared fixtures for tests/models: bundled workspaces loaded once, and a tiny bring-your-own workspace."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from models import load_workspace


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every model test on one intra-op thread, restored after it (tests/conftest.py): a session-wide setting
    leaked into every test that ran after the first model test."""


@pytest.fixture(scope="session")
def shapes_ws():
    return load_workspace("shapes")


@pytest.fixture(scope="session")
def shortcut_ws():
    return load_workspace("shapes-shortcut")


@pytest.fixture(scope="session")
def digits_ws():
    return load_workspace("digits")


def write_image_folder(root, classes=("cat", "dog", "fox"), per_class=2, size=(40, 50)):
    """A tiny ImageFolder of random RGB images: root/<class>/<i>.png."""
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def _byo_template(tmp_path_factory):
    import torchvision

    root = tmp_path_factory.mktemp("byo-template")
    write_image_folder(root / "images")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    torch.save(model.state_dict(), root / "weights.pt")
    return root


@pytest.fixture
def byo_dir(_byo_template, tmp_path):
    """A fresh folder with images/ (cat, dog, fox: 2 each), weights.pt (a resnet18 state_dict with 3 classes)
    and a valid workspace.toml; tests may change any of it."""
    shutil.copytree(_byo_template, tmp_path, dirs_exist_ok=True)
    (tmp_path / "workspace.toml").write_text(
        'name = "pets"\n'
        'title = "Pets"\n'
        "[model]\n"
        'arch = "resnet18"\n'
        'checkpoint = "weights.pt"\n'
        'class_names = ["cat", "dog", "fox"]\n'
        "[data]\n"
        'root = "images"\n'
        "[preprocessing]\n"
        "input_size = [64, 64]\n"
    )
    return tmp_path
