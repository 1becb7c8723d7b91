"""The one batched forward over an image set: the same numbers as the model itself, in any batch size."""

import numpy as np
import pytest
import torch

from analysis.forward import forward_image_set
from gradcam_core import CamEngine


@pytest.mark.parametrize("batch_size", [1, 5, 23, 128])
def test_logits_and_features_equal_the_models_own(tiny_model, tiny_set, batch_size):
    model = tiny_model()
    indices = [22, 0, 7, 7, 13, 1, 2]  # any order, repeats allowed
    with torch.no_grad():
        inputs = tiny_set.tensors(indices)
        expected_logits = model(inputs).numpy()
        expected_features = model[:6](inputs).numpy()  # the input of the Linear "6"
    result = forward_image_set(model, tiny_set, indices, features_of="6", batch_size=batch_size)
    np.testing.assert_array_equal(result.indices, indices)
    np.testing.assert_allclose(result.logits, expected_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.features, expected_features, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.predicted, expected_logits.argmax(1))
    probabilities = torch.softmax(torch.from_numpy(expected_logits), 1).numpy()
    np.testing.assert_allclose(result.confidence, probabilities.max(1), rtol=1e-5)
    assert result.logits.dtype == result.features.dtype == np.float32


def test_every_image_by_default_and_progress_after_every_batch(tiny_model, tiny_set):
    calls = []
    result = forward_image_set(tiny_model(), tiny_set, batch_size=10, progress=lambda f, m: calls.append((f, m)))
    assert result.features is None and result.logits.shape == (23, 3)
    np.testing.assert_array_equal(result.indices, np.arange(23))
    assert [f for f, _ in calls] == pytest.approx([10 / 23, 20 / 23, 1.0])
    assert calls[-1][1] == "Ran the model on 23 of 23 images"


def test_batches_never_decode_more_than_batch_size_images(tiny_model, tiny_set, monkeypatch):
    sizes = []
    original = type(tiny_set).tensors
    monkeypatch.setattr(type(tiny_set), "tensors", lambda self, idx: sizes.append(len(idx)) or original(self, idx))
    forward_image_set(tiny_model(), tiny_set, batch_size=8)
    assert sizes == [8, 8, 7]


def test_the_models_state_is_left_as_it_was(tiny_model, tiny_set):
    model = tiny_model().train()
    forward_image_set(model, tiny_set, [0, 1], features_of="6")
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks for m in model.modules())


def test_a_shared_engine_is_used_as_is(tiny_model, tiny_set):
    engine = CamEngine(tiny_model(), device="cpu")
    calls = []
    engine.predict = lambda images, batch_size=64: calls.append(len(images)) or np.zeros((len(images), 3), np.float32)
    assert forward_image_set(engine, tiny_set, batch_size=20).logits.shape == (23, 3)
    assert calls == [20, 3]


def test_nothing_asked_gives_empty_arrays_and_bad_batch_sizes_are_refused(tiny_model, tiny_set):
    empty = forward_image_set(tiny_model(), tiny_set, [], features_of="6")
    assert empty.logits.shape[0] == empty.features.shape[0] == len(empty.predicted) == len(empty.confidence) == 0
    with pytest.raises(ValueError, match="batch_size must be a positive whole number, got 0"):
        forward_image_set(tiny_model(), tiny_set, batch_size=0)
