"""Hostile or broken workspace files: each is a WorkspaceError that says what is wrong, and nothing runs.

What tests/models/test_byo.py already covers is not repeated here (a code-carrying pickle written with torch.save
and pickle.dump, a pickled full model, missing/unexpected keys, shape mismatches, most TOML field mistakes, a
missing data folder). This adds damaged files and an ImageFolder with bad images next to good ones.
``BROKEN_WORKSPACES`` and ``make_workspace`` are shared with tests/app/test_hardening_uploads.py, which shows each
case through the dashboard.
"""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from models import WorkspaceError, load_workspace
from tests.image_files import bomb_png
from tests.pickles import CreatesAFile

GOOD_TOML = (
    'name = "pets"\n[model]\narch = "resnet18"\ncheckpoint = "weights.pt"\nclass_names = ["cat", "dog", "fox"]\n'
    '[data]\nroot = "images"\n[preprocessing]\ninput_size = [64, 64]\n'
)


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_template(root: Path) -> Path:
    """images/{cat,dog,fox}/{0,1}.png (48x56 random RGB) and weights.pt (an untrained 3-class resnet18)."""
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "fox"):
        (root / "images" / name).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(root / "images" / name / f"{i}.png")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None, num_classes=3).state_dict(), root / "weights.pt")
    return root


def _pickle_payload(folder: Path) -> str:
    with open(folder / "weights.pt", "wb") as handle:
        pickle.dump(CreatesAFile(folder / "pwned.txt"), handle)
    return GOOD_TOML


def _truncated(folder: Path) -> str:
    data = (folder / "weights.pt").read_bytes()
    (folder / "weights.pt").write_bytes(data[: len(data) // 2])
    return GOOD_TOML


def _not_a_checkpoint(folder: Path) -> str:
    (folder / "weights.pt").write_text("these are my notes, not weights\n")
    return GOOD_TOML


def _garbage_safetensors(folder: Path) -> str:
    (folder / "weights.safetensors").write_bytes(np.random.default_rng(1).bytes(4096))
    return GOOD_TOML.replace("weights.pt", "weights.safetensors")


def _wrong_architecture(folder: Path) -> str:
    return GOOD_TOML.replace('"resnet18"', '"resnet34"')


def _missing_field(folder: Path) -> str:
    return GOOD_TOML.replace('[data]\nroot = "images"\n', "[data]\n")


def _wrong_field_type(folder: Path) -> str:
    return GOOD_TOML.replace("input_size = [64, 64]", 'input_size = "big"')


def _missing_data_folder(folder: Path) -> str:
    return GOOD_TOML.replace('root = "images"', 'root = "no_such_images"')


def _extra_folder(folder: Path) -> str:
    (folder / "images" / "owl").mkdir()
    return GOOD_TOML.replace('class_names = ["cat", "dog", "fox"]\n', "")


#: case -> (writer of the broken folder, returning the TOML text; what the error must say)
BROKEN_WORKSPACES = {
    "pickle-that-runs-code": (_pickle_payload, r"refused to load checkpoint .*weights\.pt.*arbitrary code"),
    "truncated-checkpoint": (_truncated, r"checkpoint .*weights\.pt' could not be read as a PyTorch file"),
    "text-file-as-checkpoint": (_not_a_checkpoint, r"checkpoint .*weights\.pt' could not be read as a PyTorch file"),
    "garbage-safetensors": (_garbage_safetensors, r"weights\.safetensors' is not a readable \.safetensors file"),
    "wrong-architecture": (_wrong_architecture,
                           r"does not fit ResNet: 96 missing key\(s\): layer1\.2\.conv1\.weight.*Check that the arch"),
    "missing-field": (_missing_field, r"data\.root: give exactly one of root and factory"),
    "wrong-field-type": (_wrong_field_type, r"preprocessing\.input_size: got 'big'.*expected"),
    "missing-data-folder": (_missing_data_folder, r"no_such_images.*does not exist"),
    "extra-class-folder": (_extra_folder, r"classifier \(fc.weight\) with 3 outputs, but 4 class names were given from "
                                          r"the data folder's sub-folders .*cat, dog, fox, owl"),
}


def make_workspace(template: Path, folder: Path, case: str | None = None) -> Path:
    """A copy of ``template`` in ``folder`` broken as ``case`` says (None: intact); returns the .toml path."""
    shutil.copytree(template, folder, dirs_exist_ok=True)
    text = BROKEN_WORKSPACES[case][0](folder) if case else GOOD_TOML
    path = folder / "workspace.toml"
    path.write_text(text)
    return path


def add_bad_images(images: Path) -> dict[str, str]:
    """Bad files next to the good ones; returns relative path -> what the skip note must say."""
    rng = np.random.default_rng(2)
    (images / "cat" / "empty.png").write_bytes(b"")
    (images / "dog" / "noise.png").write_bytes(rng.bytes(2000))
    (images / "dog" / "bomb.png").write_bytes(bomb_png(30000, 30000))
    whole = _jpeg(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (images / "fox" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    return {"cat/empty.png": "is empty", "dog/noise.png": "not an image format", "dog/bomb.png": "MP limit",
            "fox/cut.jpg": "truncated or corrupt"}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return write_template(tmp_path_factory.mktemp("hardening-template"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("case", list(BROKEN_WORKSPACES))
def test_a_broken_workspace_is_a_clear_error(template, tmp_path, case):
    path = make_workspace(template, tmp_path, case)
    with pytest.raises(WorkspaceError, match=BROKEN_WORKSPACES[case][1]):
        load_workspace(path)
    assert not (tmp_path / "pwned.txt").exists(), "unpickling ran code from the checkpoint"


def test_unreadable_images_are_reported_when_met_and_the_good_ones_load(template, tmp_path):
    """Opening a folder only lists it; a bad file is a clear error when it is read, and is remembered with the
    reason for the page to list. The good ones load as usual."""
    path = make_workspace(template, tmp_path)
    expected = add_bad_images(tmp_path / "images")
    test_set = load_workspace(path).test_set
    assert len(test_set) == 10 and test_set.skipped == []
    good = [i for i in range(len(test_set)) if test_set.item_id(i) not in expected]
    assert {test_set.item_id(i) for i in good} == {f"{c}/{i}.png" for c in ("cat", "dog", "fox") for i in (0, 1)}
    assert test_set.tensors(good).shape == (6, 3, 64, 64)
    for i in set(range(len(test_set))) - set(good):
        with pytest.raises(WorkspaceError, match=r"cannot read image"):
            test_set.image(i)
    skipped = dict(test_set.skipped)
    assert set(skipped) == set(expected)
    for name, needle in expected.items():
        assert needle in skipped[name], (name, skipped[name])


def test_an_image_damaged_after_loading_is_a_workspace_error(template, tmp_path):
    workspace = load_workspace(make_workspace(template, tmp_path))
    (tmp_path / "images" / "cat" / "0.png").write_bytes(b"gone")
    with pytest.raises(WorkspaceError, match=r"cannot read image .*0\.png.*not an image format"):
        workspace.test_set.image(0)
