"""Conv2d followed by ReLU(inplace=True) (torchvision VGG16): the CAM uses the conv output before the ReLU."""

import numpy as np
import torch
from torch import nn
from torchvision.models import vgg16

from gradcam_core import CamEngine


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
