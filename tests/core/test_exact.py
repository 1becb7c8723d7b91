"""Grad-CAM on a hand-weighted net, checked against numbers worked out on paper.

Net: a 1x1 conv copies R into channel 0 and G into channel 1, global average pooling, then a linear layer with
W = [[1, -1], [0.5, 2]]. On the 2x2 image R = [[1, 2], [3, 4]], G = [[4, 0], [0, 0]]:
mean(R) = 2.5, mean(G) = 1, so logits = (1.5, 3.25) and the predicted class is 1.
dlogit_t / dA_c(i, j) = W[t, c] / 4 everywhere, so the Grad-CAM weights are W[t] / 4.
"""

import numpy as np
import pytest
import torch
from torch import nn

from gradcam_core import CamEngine


@pytest.fixture
def paper_net() -> nn.Sequential:
    conv = nn.Conv2d(3, 2, kernel_size=1, bias=False)
    fc = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0
        conv.weight[1, 1] = 1.0
        fc.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0]]))
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc)


@pytest.fixture
def paper_image() -> torch.Tensor:
    red = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    green = torch.tensor([[4.0, 0.0], [0.0, 0.0]])
    blue = torch.tensor([[7.0, -3.0], [5.0, 1.0]])
    return torch.stack([red, green, blue])[None]


def test_logits_and_predicted_target(paper_net, paper_image):
    res = CamEngine(paper_net, device="cpu").explain(paper_image)
    np.testing.assert_allclose(res.logits, [[1.5, 3.25]], rtol=1e-6)
    assert res.targets.tolist() == [1]


def test_gradcam_predicted_class(paper_net, paper_image):
    # weights (0.125, 0.5): 0.125 R + 0.5 G = [[2.125, 0.25], [0.375, 0.5]]; min-max -> (x - 0.25) / 1.875
    cam = CamEngine(paper_net, device="cpu").explain(paper_image, layers=["0"]).cams["gradcam"]["0"][0]
    np.testing.assert_allclose(cam, [[1.0, 0.0], [0.125 / 1.875, 0.25 / 1.875]], atol=1e-6)


def test_gradcam_other_class_applies_relu(paper_net, paper_image):
    # class 0: weights (0.25, -0.25): [[-0.75, 0.5], [0.75, 1.0]] -> ReLU -> [[0, 0.5], [0.75, 1]]
    cam = CamEngine(paper_net, device="cpu").explain(paper_image, targets=0).cams["gradcam"]["0"][0]
    np.testing.assert_allclose(cam, [[0.0, 0.5], [0.75, 1.0]], atol=1e-6)


def test_layercam_keeps_only_positive_gradients(paper_net, paper_image):
    # class 0: relu(grad) = (0.25, 0) per pixel -> 0.25 R = [[.25, .5], [.75, 1]] -> (x - .25) / .75
    res = CamEngine(paper_net, device="cpu").explain(paper_image, targets=0, methods=("layercam",))
    np.testing.assert_allclose(res.cams["layercam"]["0"][0], [[0.0, 1 / 3], [2 / 3, 1.0]], atol=1e-6)


def test_gradcampp_closed_form(paper_net, paper_image):
    # class 1, channel 0: g = 1/8, sum A = 10: alpha = g^2 / (2 g^2 + 10 g^3) = 4/13, weight = 4 * g * alpha = 2/13
    # channel 1: g = 1/2, sum A = 4: alpha = 1/4, weight = 1/2.
    # 2/13 R + 1/2 G = [[28/13, 4/13], [6/13, 8/13]] -> min-max -> [[1, 0], [1/12, 1/6]]
    res = CamEngine(paper_net, device="cpu").explain(paper_image, methods=("gradcampp",))
    np.testing.assert_allclose(res.cams["gradcampp"]["0"][0], [[1.0, 0.0], [1 / 12, 1 / 6]], atol=1e-5)


def test_an_all_zero_map_stays_zero(paper_net):
    # A black image: every activation is 0, so every map is 0 — not NaN, not stretched to 1.
    res = CamEngine(paper_net, device="cpu").explain(torch.zeros(1, 3, 2, 2), targets=1,
                                                     methods=("gradcam", "hirescam", "xgradcam"))
    for method in ("gradcam", "hirescam", "xgradcam"):
        cam = res.cams[method]["0"][0]
        assert np.all(cam == 0), method
