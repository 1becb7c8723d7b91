"""Score-CAM: a map computed on paper, the weights of pytorch-grad-cam, bounded batches, progress, cost guard."""

import numpy as np
import pytest
import torch
from torch import nn

from gradcam_core import CAM_METHODS, METHOD_NAMES, CamEngine
from gradcam_core.scorecam import ScoreCAM, score_cam, scorecam_weights
from tests.core.core_helpers import hook_count, tiny_net


@pytest.fixture
def paper_net() -> nn.Sequential:
    """A 1x1 conv copies R into channel 0 and G into channel 1; global average pool; fc W = [[1, -1], [0.5, 2]]."""
    conv = nn.Conv2d(3, 2, kernel_size=1, bias=False)
    fc = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0
        conv.weight[1, 1] = 1.0
        fc.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0]]))
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc)


def test_scorecam_on_paper(paper_net):
    # R = [[1, 2], [3, 4]], G = [[4, 0], [0, 0]]. At the input's own size the masks are the min-max channels:
    # mask0 = [[0, 1/3], [2/3, 1]], mask1 = [[1, 0], [0, 0]].
    # Class 1 of input * mask0: mean(R * mask0) = (2/3 + 2 + 4) / 4 = 5/3, mean(G * mask0) = 0 -> 0.5 * 5/3 = 5/6.
    # Class 1 of input * mask1: mean R = 1/4, mean G = 1 -> 0.5 / 4 + 2 = 17/8.
    # Weights: softmax over channels of (5/6, 17/8); map = w0 R + w1 G, then ReLU and min-max.
    image = torch.stack([torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[4.0, 0.0], [0.0, 0.0]]),
                         torch.tensor([[7.0, -3.0], [5.0, 1.0]])])[None]
    w1 = 1 / (1 + np.exp(5 / 6 - 17 / 8))
    w0 = 1 - w1
    raw = w0 * np.array([[1.0, 2.0], [3.0, 4.0]]) + w1 * np.array([[4.0, 0.0], [0.0, 0.0]])
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    res = CamEngine(paper_net, device="cpu").explain(image, layers=["0"], targets=1, methods=("scorecam",))
    np.testing.assert_allclose(res.cams["scorecam"]["0"][0], expected, atol=1e-6)


@pytest.mark.slow
def test_weights_match_pytorch_grad_cam_on_resnet18(one_torch_thread):
    # pytorch-grad-cam's own ScoreCAM.get_cam_weights, fed the same activations. The fc weights are scaled up so
    # the scores differ by tens of logits and the softmax weights spread over five orders of magnitude (with
    # weights=None they are all ~1/C, which any near-uniform answer would match). Agreement: 1e-5 relative,
    # float32 rounding of the same forwards grouped into other batches.
    pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=10).eval()
    with torch.no_grad():
        model.fc.weight.mul_(50)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    layer = model.layer1[1].conv2
    captured = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.setdefault("acts", out.detach()))
    with torch.no_grad():
        model(images)
    handle.remove()
    acts = captured["acts"]
    peer = pytorch_grad_cam.ScoreCAM(model=model, target_layers=[layer])
    peer.batch_size = 64
    try:
        theirs = peer.get_cam_weights(images, layer, [ClassifierOutputTarget(3), ClassifierOutputTarget(7)],
                                      acts.numpy(), None)
    finally:
        peer.activations_and_grads.release()
    ours = scorecam_weights(model, images, acts, torch.tensor([[3], [7]]), batch_size=48)[:, 0].numpy()
    assert theirs.max() > 1e4 * theirs.min()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_registered_with_its_title():
    assert "scorecam" in METHOD_NAMES
    assert CAM_METHODS["scorecam"].title == "Score-CAM"
    assert not CAM_METHODS["scorecam"].needs_gradients


def test_batch_size_and_targets_do_not_change_the_maps(images):
    engine = CamEngine(tiny_net(), device="cpu")
    one = engine.explain(images, layers=["2"], targets=[0, 1, 2], methods=(ScoreCAM(batch_size=1),))
    seven = engine.explain(images, layers=["2"], targets=[0, 1, 2], methods=(ScoreCAM(batch_size=7),))
    np.testing.assert_allclose(one.cams["scorecam"]["2"], seven.cams["scorecam"]["2"], atol=1e-5)
    # Two targets per image share the masked forwards and give what two separate calls give.
    both = engine.explain_classes(images, [[0, 3]] * 3, layers=["2"], methods=("scorecam",))
    for column, target in enumerate((0, 3)):
        alone = engine.explain(images, layers=["2"], targets=target, methods=("scorecam",))
        np.testing.assert_allclose(both.cams["scorecam"]["2"][:, column], alone.cams["scorecam"]["2"], atol=1e-5)
    assert not np.allclose(both.cams["scorecam"]["2"][:, 0], both.cams["scorecam"]["2"][:, 1])


def test_progress_counts_masked_images_in_bounded_batches(images):
    model = tiny_net()
    seen_batches, calls = [], []
    model[0].register_forward_pre_hook(lambda _m, args: seen_batches.append(args[0].shape[0]))
    engine = CamEngine(model, device="cpu")
    score_cam(engine, images, "2", batch_size=5, progress=lambda done, total: calls.append((done, total)))
    total = 3 * 8  # images x channels of layer "2"
    assert calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted({min(d, total) for d in range(5, total + 5, 5)})
    assert max(seen_batches[1:]) == 5  # after the engine's own forward of the 3 images, at most 5 at a time


def test_every_layer_is_refused_unless_named(images):
    engine = CamEngine(tiny_net(), device="cpu")
    with pytest.raises(ValueError, match=r"one forward per channel.*pass the layers you want"):
        engine.explain(images, methods=("gradcam", "scorecam"))
    res = engine.explain(images, layers=["0", "2", "6"], methods=("scorecam",))
    assert set(res.cams["scorecam"]) == {"0", "2", "6"}


def test_model_state_is_restored_also_after_a_raise(images):
    model = tiny_net()
    model.train()
    engine = CamEngine(model, device="cpu")
    score_cam(engine, images, "6")
    assert model.training and all(m.training for m in model.modules())
    assert hook_count(model) == 0

    def fail(done, total):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        score_cam(engine, images, "6", progress=fail)
    assert model.training and hook_count(model) == 0
