"""Fixtures for tests/store: a tiny ImageFolder workspace (random-init resnet18), stores built once, comparisons."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import torch
from PIL import Image

CLASSES = ("cat", "dog", "fox")
PER_CLASS = 10
SHARD_SIZE = 8


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread_per_module):
    """The CI machine has 2 busy cores; one intra-op thread is faster there and keeps timings stable."""


def write_folder_workspace(root: Path, seed: int = 0, per_class: int = PER_CLASS) -> Path:
    """root/images/<class>/<i>.png (random 40×48 RGB), root/weights.pt (resnet18, 3 classes, random init) and
    root/workspace.toml (64×64 input); returns the TOML path."""
    import torchvision

    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (root / "images" / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / name / f"{i:02d}.png")
    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet18(weights=None, num_classes=len(CLASSES)).state_dict(), root / "weights.pt")
    toml = root / "workspace.toml"
    toml.write_text(
        'name = "pets"\n'
        "[model]\n"
        'arch = "resnet18"\n'
        'checkpoint = "weights.pt"\n'
        f"class_names = {list(CLASSES)!r}\n".replace("'", '"') +
        "[data]\n"
        'root = "images"\n'
        "[preprocessing]\n"
        "input_size = [64, 64]\n"
    )
    return toml


@pytest.fixture(scope="session")
def _folder_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder-workspace")
    write_folder_workspace(root)
    return root


@pytest.fixture
def folder_ws(_folder_template, tmp_path) -> Path:
    """A fresh copy of the tiny workspace (tests may damage its files); returns its TOML path."""
    shutil.copytree(_folder_template, tmp_path / "ws")
    return tmp_path / "ws" / "workspace.toml"


@pytest.fixture(scope="session")
def reference_store(_folder_template, tmp_path_factory) -> Path:
    """An uninterrupted local run over the template workspace (shard size 8: 4 shards of 30 images)."""
    from store.precompute import precompute

    out = tmp_path_factory.mktemp("reference") / "pets.store"
    precompute(_folder_template / "workspace.toml", out, shard_size=SHARD_SIZE, batch_size=4, workers=0)
    return out


def read_table(store: Path) -> pa.Table:
    return ds.dataset(store, format="parquet").to_table().sort_by("index")


def assert_same_rows(a: pa.Table, b: pa.Table, exact: bool = True) -> None:
    """Every column equal; with ``exact=False`` floats (also inside lists) allclose and thumbnails within 1/255."""
    assert a.schema.remove_metadata() == b.schema.remove_metadata()
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        left, right = a[name].to_pylist(), b[name].to_pylist()
        if exact or pa.types.is_integer(a.schema.field(name).type) or name in ("path", "correct"):
            assert left == right, f"column {name!r} differs"
        elif name == "cam_thumb":
            x = np.frombuffer(b"".join(left), np.uint8).astype(int)
            y = np.frombuffer(b"".join(right), np.uint8).astype(int)
            assert np.abs(x - y).max() <= 1, f"column {name!r} differs by more than 1/255"
        elif pa.types.is_list(a.schema.field(name).type) and pa.types.is_integer(a.schema.field(name).type.value_type):
            assert left == right, f"column {name!r} differs"
        else:
            x = np.array(left, dtype=np.float64)
            y = np.array(right, dtype=np.float64)
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5, equal_nan=True, err_msg=f"column {name!r}")
