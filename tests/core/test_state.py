"""The caller's model is left exactly as it was: training flags, requires_grad, .grad and hooks."""

import numpy as np
import pytest
import torch
from torch import nn

from gradcam_core import CamEngine, layer_output_shapes
from tests.core.core_helpers import hook_count, tiny_net


def _snapshot(model: nn.Module):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        hook_count(model),
    )


def _assert_same(before, after):
    assert before[0] == after[0], "training flags changed"
    assert before[1] == after[1], "requires_grad changed"
    for g0, g1 in zip(before[2], after[2], strict=True):
        assert (g0 is None) == (g1 is None)
        if g0 is not None:
            assert torch.equal(g0, g1), ".grad changed"
    assert before[3] == after[3], "hooks left on the model"


def test_explain_restores_training_mode_and_grads(net, images):
    net.train()
    net[0].eval()  # a mixed state must come back exactly, not as all-train
    net(images).sum().backward()  # the caller has accumulated gradients of their own
    user_hook = net[2].register_forward_hook(lambda *a: None)
    before = _snapshot(net)
    engine = CamEngine(net, device="cpu")
    engine.explain(images, methods=("gradcam", "gradcampp", "eigencam"))
    engine.explain_topk(images, k=3)
    engine.topk(images)
    engine.activations(images)
    layer_output_shapes(net, (16, 16))
    _assert_same(before, _snapshot(net))
    assert user_hook.id in net[2]._forward_hooks, "the caller's own hook was removed"


def test_explain_works_on_a_frozen_model_and_leaves_it_frozen(net, images):
    for p in net.parameters():
        p.requires_grad_(False)
    before = _snapshot(net)
    res = CamEngine(net, device="cpu").explain(images)
    assert all(res.cams["gradcam"][layer].max() == 1.0 for layer in res.layers)
    _assert_same(before, _snapshot(net))


def test_explain_inside_no_grad_and_inference_mode(net, images):
    engine = CamEngine(net, device="cpu")
    expected = engine.explain(images).cams["gradcam"]["6"]
    with torch.no_grad():
        np.testing.assert_array_equal(engine.explain(images).cams["gradcam"]["6"], expected)
    with torch.inference_mode():
        np.testing.assert_array_equal(engine.explain(images.clone()).cams["gradcam"]["6"], expected)


def test_state_restored_when_the_forward_raises(images):
    class Exploding(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = tiny_net()

        def forward(self, x):
            self.body[0](x)  # the first conv's hook fires...
            raise RuntimeError("boom")  # ...then the model fails

    model = Exploding().train()
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        CamEngine(model, device="cpu").explain(images, layers=["body.0"])
    _assert_same(before, _snapshot(model))


def test_state_restored_when_a_target_is_invalid(net, images):
    net.train()
    before = _snapshot(net)
    with pytest.raises(ValueError, match="out of range"):
        CamEngine(net, device="cpu").explain(images, targets=99)
    _assert_same(before, _snapshot(net))


def test_explain_uses_eval_mode_for_batchnorm(net, images):
    """Explanations use running statistics, so one image's map does not depend on the rest of the batch."""
    net.train()
    engine = CamEngine(net, device="cpu")
    alone = engine.explain(images[:1]).cams["gradcam"]["2"][0]
    in_batch = engine.explain(images).cams["gradcam"]["2"][0]
    np.testing.assert_allclose(alone, in_batch, atol=1e-5)
