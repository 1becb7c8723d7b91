"""Agreement with pytorch-grad-cam on transformer layers, with its standard ``reshape_transform``.

Same protocol as test_parity.py: pytorch-grad-cam's hooks capture activations and gradients (through its reshape
transform), its own ``get_cam_image`` weights them (Grad-CAM++ fed float64, see there), and the result goes through
ReLU + per-image min-max at the layer's resolution. Ours reshapes on its own (no reshape argument). The heads are
re-initialised at random: torchvision initialises a ViT's head to zero, which makes every gradient zero.

pytorch-grad-cam's ``swinT_reshape_transform`` takes tokens (B, h*w, C); torchvision's Swin gives (B, h, w, C), so it
is handed ``t.flatten(1, 2)``.
"""

import functools

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM
from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform, vit_reshape_transform

from gradcam_core import CamEngine

PEERS = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "layercam": LayerCAM}


def _minmax(cam: np.ndarray) -> np.ndarray:
    cam = np.maximum(cam, 0)
    cam = cam - cam.min(axis=(1, 2), keepdims=True)
    high = cam.max(axis=(1, 2), keepdims=True)
    return np.where(high > 0, cam / np.where(high > 0, high, 1), cam)


def _peer_maps(model, images, layers, targets, reshape_transform) -> dict:
    """pytorch-grad-cam's maps for every (method, layer), from one of its passes over all layers."""
    modules = dict(model.named_modules())
    layers = [n for n in modules if n in set(layers)]  # its hooks fire, and list, in forward order
    hooks = ActivationsAndGradients(model, [modules[n] for n in layers], reshape_transform)
    try:
        outputs = hooks(images)
        model.zero_grad()
        sum(ClassifierOutputTarget(t)(o) for t, o in zip(targets, outputs, strict=True)).backward()
        acts = [a.numpy() for a in hooks.activations]
        grads = [g.numpy() for g in hooks.gradients]
    finally:
        hooks.release()
        model.zero_grad(set_to_none=True)
    maps = {}
    for method, peer_cls in PEERS.items():
        peer = peer_cls(model=model, target_layers=[modules[layers[0]]])
        peer.activations_and_grads.release()  # only its weighting code is used
        for name, a, g in zip(layers, acts, grads, strict=True):
            if method == "gradcampp":
                a, g = a.astype(np.float64), g.astype(np.float64)
            maps[method, name] = _minmax(peer.get_cam_image(images, modules[name], None, a, g, eigen_smooth=False))
    return maps


def _assert_parity(model, images, layers, targets, reshape_transform, grid):
    ours = CamEngine(model, device="cpu").explain(images, layers=layers, targets=targets, methods=tuple(PEERS))
    theirs = _peer_maps(model, images, layers, targets, reshape_transform)
    for (method, layer), peer in theirs.items():
        mine = ours.cams[method][layer]
        assert mine.shape == (images.shape[0], *grid[layer]), (method, layer)
        assert 0.05 < mine.mean() < 0.95 and np.ptp(mine) == 1, f"a trivial map proves nothing: {method} {layer}"
        assert np.abs(mine - peer).max() < 1e-4, (method, layer, float(np.abs(mine - peer).max()))


def _random_head(linear: nn.Linear, seed: int = 0) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.randn(linear.weight.shape, generator=torch.Generator().manual_seed(seed)) * 0.5)


def test_small_torchvision_vit():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=3, num_heads=2,
                                                 hidden_dim=32, mlp_dim=64, num_classes=10).eval()
    _random_head(model.heads.head)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    layers = ["encoder.layers.encoder_layer_0.ln_2", "encoder.layers.encoder_layer_1",
              "encoder.layers.encoder_layer_2.ln_1"]
    _assert_parity(model, images, layers, [3, 7], functools.partial(vit_reshape_transform, height=4, width=4),
                   dict.fromkeys(layers, (4, 4)))


@pytest.mark.slow
def test_vit_b_16():
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None).eval()
    _random_head(model.heads.head)
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    layers = ["encoder.layers.encoder_layer_5", "encoder.layers.encoder_layer_11.ln_1"]
    _assert_parity(model, images, layers, [417], vit_reshape_transform, dict.fromkeys(layers, (14, 14)))


@pytest.mark.slow
def test_swin_t():
    torch.manual_seed(0)
    model = torchvision.models.swin_t(weights=None).eval()
    images = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    grid = {"features.3.1.norm1": (12, 12), "features.5": (6, 6), "features.7": (3, 3)}

    def reshape_transform(tensor):
        return swinT_reshape_transform(tensor.flatten(1, 2), tensor.shape[1], tensor.shape[2])

    _assert_parity(model, images, list(grid), [5], reshape_transform, grid)


def test_timm_vit_with_register_tokens():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=6, reg_tokens=4).eval()
    assert model.num_prefix_tokens == 5  # class + 4 registers
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    layers = ["blocks.0", "blocks.1.norm1"]

    def reshape_transform(tensor):  # the library's transform drops one token: drop the other four first
        return vit_reshape_transform(tensor[:, 4:], height=4, width=4)

    _assert_parity(model, images, layers, [1, 4], reshape_transform, dict.fromkeys(layers, (4, 4)))


class _Logits(nn.Module):
    """pytorch-grad-cam needs a tensor of logits; a Hugging Face model returns an object holding them."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).logits


def test_hugging_face_vit_explains_the_logits_of_its_output_object():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, image_size=32, patch_size=8, num_labels=5)
    model = transformers.ViTForImageClassification(config).eval()
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    blocks = [n for n, m in model.named_modules() if type(m).__name__ == "ViTLayer"]
    layers = [blocks[0], f"{blocks[1]}.layernorm_before"]
    ours = CamEngine(model, device="cpu").explain(images, layers=layers, targets=[0, 3], methods=tuple(PEERS))
    with torch.no_grad():
        np.testing.assert_allclose(ours.logits, model(images).logits.numpy(), rtol=1e-5)
    wrapped = _Logits(model)
    theirs = _peer_maps(wrapped, images, [f"model.{n}" for n in layers], [0, 3],
                        functools.partial(vit_reshape_transform, height=4, width=4))
    for (method, layer), peer in theirs.items():
        mine = ours.cams[method][layer.removeprefix("model.")]
        assert np.ptp(mine) == 1 and np.abs(mine - peer).max() < 1e-4, (method, layer)
