"""Several targets at once: top-k maps from one forward and one batched backward equal k single-target calls."""

import numpy as np
import pytest
import torch
from torchvision.models import resnet18

from gradcam_core import CamEngine

METHODS = ("gradcam", "gradcampp", "hirescam", "xgradcam", "layercam", "eigencam")


@pytest.fixture(scope="module")
def engine_and_images():
    torch.manual_seed(0)
    engine = CamEngine(resnet18(weights=None, num_classes=20), device="cpu")
    return engine, torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))


def test_topk_maps_equal_single_target_calls(engine_and_images):
    engine, images = engine_and_images
    layers = ["layer2.0.conv1", "layer4.1.conv2"]
    batched = engine.explain_topk(images, k=5, layers=layers, methods=METHODS)
    assert batched.targets.shape == (2, 5)
    probs, indices = engine.topk(images, k=5)
    np.testing.assert_array_equal(batched.targets, indices)
    assert np.all(np.diff(probs, axis=1) <= 0)
    for j in range(5):
        single = engine.explain(images, layers=layers, targets=batched.targets[:, j].tolist(), methods=METHODS)
        for method in METHODS:
            for layer in layers:
                np.testing.assert_allclose(batched.cams[method][layer][:, j], single.cams[method][layer],
                                           atol=2e-5, err_msg=f"{method} {layer} target {j}")


def test_explain_classes_shapes_and_values(engine_and_images):
    engine, images = engine_and_images
    classes = [[1, 7], [7, 19]]
    res = engine.explain_classes(images, classes, layers=["layer3.1.conv2"])
    assert res.cams["gradcam"]["layer3.1.conv2"].shape == (2, 2, 4, 4)
    np.testing.assert_array_equal(res.targets, classes)
    one = engine.explain(images[1:], layers=["layer3.1.conv2"], targets=19)
    np.testing.assert_allclose(res.cams["gradcam"]["layer3.1.conv2"][1, 1], one.cams["gradcam"]["layer3.1.conv2"][0],
                               atol=2e-5)


def test_fallback_when_batched_gradients_are_unsupported(engine_and_images, monkeypatch):
    engine, images = engine_and_images
    expected = engine.explain_topk(images, k=3, layers=["layer1.0.conv2"])
    real_grad = torch.autograd.grad

    def no_batching(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("Batching rule not implemented for aten::some_op")
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_batching)
    fallback = engine.explain_topk(images, k=3, layers=["layer1.0.conv2"])
    np.testing.assert_allclose(fallback.cams["gradcam"]["layer1.0.conv2"],
                               expected.cams["gradcam"]["layer1.0.conv2"], atol=2e-5)


def test_targets_forms(engine_and_images):
    engine, images = engine_and_images
    predicted = engine.explain(images, layers=["conv1"])
    np.testing.assert_array_equal(predicted.targets, predicted.logits.argmax(axis=1))
    assert engine.explain(images, layers=["conv1"], targets=4).targets.tolist() == [4, 4]
    assert engine.explain(images, layers=["conv1"], targets=torch.tensor([2, 3])).targets.tolist() == [2, 3]
    assert engine.explain(images, layers=["conv1"], targets=np.array([5, 6])).targets.tolist() == [5, 6]


def test_return_tensors_keeps_results_on_the_device(engine_and_images):
    engine, images = engine_and_images
    res = engine.explain(images, layers=["conv1"], return_tensors=True)
    assert torch.is_tensor(res.cams["gradcam"]["conv1"])
    assert res.cams["gradcam"]["conv1"].device == engine.device
