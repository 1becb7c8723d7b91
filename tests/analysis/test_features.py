"""Penultimate features of a workspace's test set: computed once, then read from disk for the same model, set,
layer and indices only."""

import numpy as np
import pytest

from analysis import features as features_module
from analysis.features import features_key, stored_features, workspace_features


@pytest.fixture
def forwards(monkeypatch):
    """Count the forward passes behind workspace_features."""
    calls = []
    real = features_module.forward_image_set

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(features_module, "forward_image_set", counting)
    return calls


def test_features_are_stored_and_read_back_without_a_forward(tiny_workspace, tmp_path, forwards):
    indices = np.array([3, 5, 8, 13])
    assert stored_features(tiny_workspace, indices, tmp_path) is None
    first = workspace_features(tiny_workspace, indices, tmp_path)
    assert first.source == "computed" and len(forwards) == 1
    assert first.features.shape == (4, 6)
    np.testing.assert_array_equal(first.labels, tiny_workspace.test_set.labels[indices])
    again = workspace_features(tiny_workspace, indices, tmp_path)
    assert again.source == "disk" and len(forwards) == 1
    for name in ("features", "labels", "predicted", "confidence"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    assert stored_features(tiny_workspace, indices, tmp_path).source == "disk"


def test_another_model_set_layer_or_subset_is_another_entry(tiny_workspace, tiny_set):
    from types import SimpleNamespace

    indices = np.arange(5)
    base = features_key(tiny_workspace, indices)
    assert base == features_key(tiny_workspace, np.arange(5, dtype=np.int32))
    assert base != features_key(tiny_workspace, np.arange(1, 6))
    for change in ({"model_id": "tiny@seed1"}, {"classifier_layer": "4"}, {"name": "other"}):
        other = SimpleNamespace(**{**vars(tiny_workspace), **change})
        assert features_key(other, indices) != base, change


def test_a_damaged_file_is_computed_again(tiny_workspace, tmp_path, forwards):
    indices = np.arange(10)
    workspace_features(tiny_workspace, indices, tmp_path)
    (path,) = tmp_path.glob("features-*.npz")
    path.write_bytes(path.read_bytes()[:100])
    assert stored_features(tiny_workspace, indices, tmp_path) is None
    assert workspace_features(tiny_workspace, indices, tmp_path).source == "computed" and len(forwards) == 2
