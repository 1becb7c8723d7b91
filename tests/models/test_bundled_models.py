"""The shipped checkpoints: they load fast, meet their accuracy on the regenerated test split, and Grad-CAM
points where the model card says it does (on the object for `shapes`, on the marker for `shapes-shortcut`)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from models import checkpoint_sha256, load_workspace
from models.datasets import digits_arrays
from models.evaluate import accuracy, logits, pointing_game, predict
from models.shapes import cached_shapes
from models.train import CHECKPOINT_DIR
from models.workspace import BUNDLED_WORKSPACES


@pytest.mark.parametrize("name", BUNDLED_WORKSPACES)
def test_checkpoint_is_committed_small_safetensors_with_a_card(name):
    path = CHECKPOINT_DIR / f"{name}.safetensors"
    assert path.suffix == ".safetensors" and path.is_file(), f"run `python -m models.train {name}`"
    assert path.stat().st_size < 10_000_000
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == checkpoint_sha256(path)
    assert {"seed", "date", "epochs", "train_seconds", "metrics"} <= set(card)
    assert card["train_seconds"] < 15 * 60


@pytest.mark.parametrize("name", BUNDLED_WORKSPACES)
def test_bundled_workspace_loads_fast_and_is_ready(name):
    """No training at load time: a cold load (test split regenerated) takes well under 2 s of CPU time (CPU,
    not wall time, so that other jobs on a shared machine do not make this flaky)."""
    cached_shapes.cache_clear()
    digits_arrays.cache_clear()
    start = time.process_time()
    ws = load_workspace(name)
    len(ws.test_set)  # the split is built on first use: count it in
    elapsed = time.process_time() - start
    assert elapsed < 2.0, f"loading {name} took {elapsed:.2f} s of CPU time"
    assert ws.name == name and ws.title and ws.description
    assert "untrained" not in ws.notes
    assert ws.model_id == f"{name}:{checkpoint_sha256(CHECKPOINT_DIR / f'{name}.safetensors')[:12]}"
    assert not ws.model.training and next(ws.model.parameters()).device.type == "cpu"
    assert ws.test_accuracy is not None
    assert ws.source == "python" and ws.toml_path.name == f"{name}.toml"
    assert ws.shortcut == (name == "shapes-shortcut")


def _measured_accuracy_and_shipped_logits(ws) -> float:
    """Accuracy from a fresh forward over the regenerated test split, after checking that the logits shipped
    beside the checkpoint (which the dashboard uses at start-up) are that same forward."""
    fresh = logits(ws.model, ws.test_set)
    assert ws.test_logits is not None, f"run `python -m models.train {ws.name} --test-logits-only`"
    np.testing.assert_allclose(ws.test_logits, fresh, atol=1e-4)
    return float((fresh.argmax(axis=1) == ws.test_set.labels).mean())


def test_shipped_logits_are_ignored_when_they_belong_to_another_checkpoint(tmp_path):
    """A checkpoint's sidecar logits are used only if they were made by that very checkpoint."""
    import shutil

    from models.workspace import checkpoint_sidecars

    weights = tmp_path / "digits.safetensors"
    shutil.copy(CHECKPOINT_DIR / "digits.safetensors", weights)
    with np.load(CHECKPOINT_DIR / "digits.test-logits.npz") as data:
        shipped = data["logits"]
        np.savez(tmp_path / "digits.test-logits.npz", logits=shipped, checkpoint_sha256=data["checkpoint_sha256"])
    assert checkpoint_sidecars(weights)[1] is not None  # same checkpoint bytes: used
    np.savez(tmp_path / "digits.test-logits.npz", logits=shipped, checkpoint_sha256=np.array("0" * 64))
    assert checkpoint_sidecars(weights)[1] is None


def test_shapes_accuracy_on_the_regenerated_test_split(shapes_ws):
    measured = _measured_accuracy_and_shipped_logits(shapes_ws)
    assert measured >= 0.95
    assert measured == pytest.approx(shapes_ws.test_accuracy, abs=1e-4)  # the card tells the truth
    assert measured < 1.0  # a few genuine errors are left to browse


def test_digits_accuracy_on_the_test_split(digits_ws):
    measured = _measured_accuracy_and_shipped_logits(digits_ws)
    assert measured >= 0.97
    assert measured == pytest.approx(digits_ws.test_accuracy, abs=1e-4)


def test_shortcut_model_is_good_on_aligned_markers_and_bad_on_shuffled_ones(shortcut_ws):
    from models.datasets import shapes_val_set

    validation = accuracy(shortcut_ws.model, shapes_val_set(shortcut_ws.transform, marker="aligned"))
    test = _measured_accuracy_and_shipped_logits(shortcut_ws)
    assert validation >= 0.9
    assert test < validation - 0.3, (validation, test)
    assert test == pytest.approx(shortcut_ws.test_accuracy, abs=1e-4)
    assert shortcut_ws.notes["metrics"]["val_accuracy"] == pytest.approx(validation, abs=1e-4)
    assert "marker, not the shape" in shortcut_ws.description and "Grad-CAM shows it" in shortcut_ws.description


def test_pointing_game_shapes_cam_peak_is_on_the_object(shapes_ws):
    """>= 90% of correctly classified test images: the last conv layer's Grad-CAM peak, upsampled to 64 px,
    is inside the object mask dilated by 3 px."""
    result = pointing_game(shapes_ws.model, shapes_ws.test_set, shapes_ws.default_layer, dilation=3)
    assert result["images"] >= 0.95 * len(shapes_ws.test_set)
    assert result["on_object"] >= 0.90, result


def test_shortcut_cam_peak_lands_on_the_marker_far_more_than_the_shapes_models(shapes_ws, shortcut_ws):
    test = shortcut_ws.test_set  # shuffled markers: same scenes as the shapes test split plus a marker
    subset = np.arange(0, len(test), 2)
    shortcut = pointing_game(shortcut_ws.model, test, shortcut_ws.default_layer, only_correct=False, indices=subset)
    honest = pointing_game(shapes_ws.model, test, shapes_ws.default_layer, only_correct=False, indices=subset)
    assert shortcut["on_marker"] >= 0.5, shortcut
    assert shortcut["on_marker"] >= 5 * max(honest["on_marker"], 0.02), (shortcut, honest)
    # and the shortcut model mostly predicts the marker's class, not the shape's
    predicted = predict(shortcut_ws.model, test, subset)
    marker_classes = test.batch.marker_classes[subset]
    assert (predicted == marker_classes).mean() > (predicted == test.labels[subset]).mean()
