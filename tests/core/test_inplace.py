"""Conv2d followed by ReLU(inplace=True) (torchvision VGG16): the CAM uses the conv output before the ReLU."""

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import vgg16

from gradcam_core import CamEngine
from gradcam_core.layers import _INPLACE_FOLLOWS
from tests.core.core_helpers import hook_count, tiny_net


def _without_inplace(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return model


def test_vgg16_inplace_relu_gives_the_same_maps_as_out_of_place():
    torch.manual_seed(0)
    inplace_model = vgg16(weights=None, num_classes=10)
    plain_model = _without_inplace(vgg16(weights=None, num_classes=10))
    plain_model.load_state_dict(inplace_model.state_dict())
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    methods = ("gradcam", "hirescam", "layercam")
    a = CamEngine(inplace_model, device="cpu").explain(images, targets=2, methods=methods)
    b = CamEngine(plain_model, device="cpu").explain(images, targets=2, methods=methods)
    assert len(a.layers) == 13
    for method in methods:
        for layer in a.layers:
            np.testing.assert_allclose(a.cams[method][layer], b.cams[method][layer], atol=1e-5)
    np.testing.assert_allclose(a.logits, b.logits, rtol=1e-5)


def test_activation_is_the_conv_output_before_relu():
    torch.manual_seed(0)
    model = vgg16(weights=None, num_classes=10)
    images = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        conv_out = model.features[0](images)
    acts = CamEngine(model, device="cpu").activations(images, ["features.0", "features.2"])
    assert (acts["features.0"] < 0).any(), "a post-ReLU activation would have no negative value"
    np.testing.assert_allclose(acts["features.0"], conv_out.numpy(), atol=1e-6)


def test_hirescam_equals_gradient_times_pre_relu_activation():
    """On the last conv, compute dScore/dA by hand on an out-of-place copy and compare HiResCAM."""
    torch.manual_seed(0)
    model = vgg16(weights=None, num_classes=10).eval()
    images = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    res = CamEngine(model, device="cpu").explain(images, layers=["features.28"], targets=4, methods=("hirescam",))

    plain = _without_inplace(vgg16(weights=None, num_classes=10)).eval()
    plain.load_state_dict(model.state_dict())
    x = plain.features[:28](images)
    a = plain.features[28](x)
    score = plain.classifier(torch.flatten(plain.avgpool(plain.features[29:](a)), 1))[0, 4]
    (g,) = torch.autograd.grad(score, a)
    manual = torch.relu((g * a).sum(dim=1))[0].detach().numpy()
    manual = (manual - manual.min()) / (manual.max() - manual.min())
    np.testing.assert_allclose(res.cams["hirescam"]["features.28"][0], manual, atol=1e-5)


def test_the_network_gets_a_copy_only_where_an_in_place_op_follows(images):
    # tiny_net: conv 0 -> ReLU(inplace), conv 2 -> BatchNorm -> ReLU(inplace), conv 6 -> ReLU(inplace)
    net = tiny_net()
    engine = CamEngine(net, device="cpu")
    first = engine.explain(images, methods=("gradcam", "layercam"))
    assert _INPLACE_FOLLOWS[net] == {"0": True, "2": False, "6": True}
    second = engine.explain(images, methods=("gradcam", "layercam"))  # now without a copy of conv 2's output
    plain = CamEngine(tiny_net(inplace=False), device="cpu").explain(images, methods=("gradcam", "layercam"))
    for method in ("gradcam", "layercam"):
        for layer in ("0", "2", "6"):
            np.testing.assert_allclose(first.cams[method][layer], plain.cams[method][layer], atol=1e-6)
            np.testing.assert_array_equal(second.cams[method][layer], first.cams[method][layer])


def test_an_in_place_op_added_after_the_plan_was_learned_is_caught(images):
    net = tiny_net()
    net[3], net[4] = nn.Identity(), nn.Identity()  # conv 2 -> (nothing): no in-place op after it
    engine = CamEngine(net, device="cpu")
    engine.explain(images, layers=["2"])
    assert _INPLACE_FOLLOWS[net] == {"2": False}
    net[3] = nn.ReLU(inplace=True)  # now an in-place op follows conv 2, which the learned plan does not copy
    res = engine.explain(images, layers=["2"], targets=0)
    assert _INPLACE_FOLLOWS[net] == {"2": True}
    plain = tiny_net(inplace=False)
    plain[3], plain[4] = nn.ReLU(), nn.Identity()
    expected = CamEngine(plain, device="cpu").explain(images, layers=["2"], targets=0)
    np.testing.assert_allclose(res.cams["gradcam"]["2"], expected.cams["gradcam"]["2"], atol=1e-6)


def test_a_conv_and_the_in_place_relu_after_it_in_one_pass(images):
    net = tiny_net()
    acts = CamEngine(net, device="cpu").activations(images, ["0", "1"])
    with torch.no_grad():
        conv_out = net[0](images)
    np.testing.assert_allclose(acts["0"], conv_out.numpy(), atol=1e-6)
    np.testing.assert_allclose(acts["1"], torch.relu(conv_out).numpy(), atol=1e-6)
    # Grad-CAM (unlike HiResCAM, where dS/dA * A is the same before and after a ReLU) tells the two apart.
    res = CamEngine(net, device="cpu").explain(images, layers=["0", "1"], targets=1)
    expected = CamEngine(tiny_net(inplace=False), device="cpu").explain(images, layers=["0", "1"], targets=1)
    for layer in ("0", "1"):
        np.testing.assert_allclose(res.cams["gradcam"][layer], expected.cams["gradcam"][layer], atol=1e-6)
    assert np.abs(res.cams["gradcam"]["0"] - res.cams["gradcam"]["1"]).max() > 0.1


class _ViewThenInPlace(nn.Module):
    """`pick` returns a view of the conv output, which the forward then changes in place through the base."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pick = _FirstTwoChannels()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        y = self.conv(x)
        first_two = self.pick(y)
        y.relu_()
        return self.head(torch.cat([first_two, y[:, 2:]], dim=1).mean(dim=(2, 3)))


class _FirstTwoChannels(nn.Module):
    def forward(self, y):
        return y[:, :2]


def test_a_layer_output_changed_in_place_through_its_base_is_refused(images):
    model = _ViewThenInPlace()
    with pytest.raises(ValueError, match=r"layer\(s\) 'pick' is changed in place later in the forward pass even "
                                         r"when the network is handed a copy"):
        CamEngine(model, device="cpu").explain(images, layers=["pick"])
    assert hook_count(model) == 0
