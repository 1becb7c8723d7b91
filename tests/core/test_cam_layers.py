"""Layers beyond Conv2d: tokens and channels-last outputs put back on the input's grid, and list_cam_layers.

The hand-built nets below turn a conv's (B, C, h, w) output into tokens (with leading extra tokens) or into a
channels-last tensor, and classify from the mean of the patch positions. Their tokens are a permutation of the conv
output and carry the same gradients, so every CAM at the token layer must equal the CAM at the conv, on the same
grid and in the same orientation — and both equal relu(W[target] . A) min-max scaled, worked out by hand.
"""

import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from gradcam_core import CamEngine, layer_output_shapes, list_cam_layers, list_conv_layers
from gradcam_core.layers import infer_input_size
from tests.core.core_helpers import hook_count

GRID = (4, 6)  # a 16 x 24 input through a 4 x 4 / stride 4 patch embedding: not square, so a transposed grid shows


class TokenNet(nn.Module):
    """Patch embedding -> ``to_tokens`` ((B, extra + h*w, C) tokens, or (B, h, w, C), or a (tokens, weights)
    tuple) -> mean of the patch positions -> Linear."""

    def __init__(self, kind: str = "tokens", extra: int = 1, channels: int = 3, num_classes: int = 5):
        super().__init__()
        torch.manual_seed(0)
        self.kind, self.extra = kind, extra
        self.embed = nn.Conv2d(3, channels, 4, stride=4)
        self.extra_tokens = nn.Parameter(torch.randn(1, extra, channels))
        self.to_tokens = _ToTokens(kind)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x):
        fmap = self.embed(x)
        out = self.to_tokens(fmap, self.extra_tokens)
        if self.kind == "channels_last":
            return self.head(out.mean(dim=(1, 2)))
        tokens = out[0] if self.kind == "tuple" else out
        return self.head(tokens[:, self.extra:].mean(dim=1))


class _ToTokens(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, fmap, extra):
        if self.kind == "channels_last":
            return fmap.permute(0, 2, 3, 1)
        tokens = torch.cat([extra.expand(fmap.shape[0], -1, -1), fmap.flatten(2).transpose(1, 2)], dim=1)
        return (tokens, torch.ones(1)) if self.kind == "tuple" else tokens


@pytest.fixture
def wide_images() -> torch.Tensor:
    return torch.randn(2, 3, 16, 24, generator=torch.Generator().manual_seed(3))


def _by_hand(model: TokenNet, images: torch.Tensor, target: int) -> np.ndarray:
    with torch.no_grad():
        fmap = model.embed(images)
    cam = torch.relu(torch.einsum("c,bchw->bhw", model.head.weight[target].detach(), fmap)).numpy()
    cam = cam - cam.min(axis=(1, 2), keepdims=True)
    return cam / cam.max(axis=(1, 2), keepdims=True)


@pytest.mark.parametrize(("kind", "extra"), [("tokens", 1), ("tokens", 2), ("tokens", 5), ("tuple", 1),
                                             ("channels_last", 1)])
def test_token_and_channels_last_outputs_give_the_maps_of_the_conv_they_came_from(kind, extra, wide_images):
    model = TokenNet(kind, extra)
    methods = ("gradcam", "gradcampp", "hirescam", "xgradcam", "layercam", "eigencam")
    res = CamEngine(model, device="cpu").explain(wide_images, layers=["embed", "to_tokens"], targets=2,
                                                 methods=methods)
    assert res.cams["gradcam"]["to_tokens"].shape == (2, *GRID)
    np.testing.assert_allclose(res.cams["gradcam"]["to_tokens"], _by_hand(model, wide_images, 2), atol=1e-5)
    for method in methods:
        np.testing.assert_allclose(res.cams[method]["to_tokens"], res.cams[method]["embed"], atol=1e-5,
                                   err_msg=method)
    assert hook_count(model) == 0


@pytest.mark.parametrize("kind", ["tokens", "channels_last"])
def test_several_targets_at_a_token_layer_equal_single_target_calls(kind, wide_images):
    model = TokenNet(kind, extra=2)
    engine = CamEngine(model, device="cpu")
    methods = ("gradcam", "gradcampp", "layercam")
    batched = engine.explain_topk(wide_images, k=3, layers=["to_tokens"], methods=methods)
    assert batched.cams["gradcam"]["to_tokens"].shape == (2, 3, *GRID)
    for j in range(3):
        single = engine.explain(wide_images, layers=["to_tokens"], targets=batched.targets[:, j].tolist(),
                                methods=methods)
        for method in methods:
            np.testing.assert_allclose(batched.cams[method]["to_tokens"][:, j], single.cams[method]["to_tokens"],
                                       atol=1e-5, err_msg=f"{method} target {j}")


def test_register_tokens_declared_by_the_model_are_dropped_even_on_a_tiny_grid():
    # 2 x 2 patches after 1 class + 4 register tokens: 9 tokens would also read as a 3 x 3 grid with no extras,
    # so only the model's own count (timm's num_prefix_tokens) can tell; without it the layer is refused.
    model = TokenNet("tokens", extra=5)
    images = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"layer 'to_tokens' is a _ToTokens that gives an output of shape "
                                         r"\(1, 9, 3\), which is not a feature map"):
        CamEngine(model, device="cpu").explain(images, layers=["to_tokens"])
    model.num_prefix_tokens = 5
    res = CamEngine(model, device="cpu").explain(images, layers=["embed", "to_tokens"], targets=1)
    assert res.cams["gradcam"]["to_tokens"].shape == (1, 2, 2)
    np.testing.assert_allclose(res.cams["gradcam"]["to_tokens"], res.cams["gradcam"]["embed"], atol=1e-6)


def test_an_explicit_reshape_overrides_the_automatic_one(wide_images):
    model = TokenNet("tokens", extra=2)
    engine = CamEngine(model, device="cpu")
    auto = engine.explain(wide_images, layers=["to_tokens"], targets=0).cams["gradcam"]["to_tokens"]

    def by_hand(tokens):  # (B, 2 + 24, C) -> (B, C, 4, 6)
        return tokens[:, 2:].transpose(1, 2).reshape(tokens.shape[0], -1, *GRID)

    for reshape in (by_hand, {"to_tokens": by_hand}):
        res = engine.explain(wide_images, layers=["to_tokens"], targets=0, reshape=reshape)
        np.testing.assert_allclose(res.cams["gradcam"]["to_tokens"], auto, atol=1e-6)
    # A different reading gives a different map: the override is really used (here: the grid transposed).
    flipped = engine.explain(wide_images, layers=["to_tokens"], targets=0,
                             reshape=lambda t: by_hand(t).transpose(2, 3)).cams["gradcam"]["to_tokens"]
    np.testing.assert_allclose(flipped, auto.transpose(0, 2, 1), atol=1e-6)
    with pytest.raises(ValueError, match=r"reshape for layer 'to_tokens' turned \(2, 26, 3\) into \(2, 24, 3\); "
                                         r"it must return a \(B=2, C, h, w\) tensor"):
        engine.explain(wide_images, layers=["to_tokens"], reshape=lambda t: t[:, 2:])
    assert hook_count(model) == 0


def test_shapes_and_activations_of_token_layers(wide_images):
    model = TokenNet("tokens", extra=2)
    assert layer_output_shapes(model, (16, 24), ["embed", "to_tokens"]) == {"embed": (3, 4, 6),
                                                                             "to_tokens": (3, 4, 6)}
    acts = CamEngine(model, device="cpu").activations(wide_images, ["embed", "to_tokens"])
    np.testing.assert_array_equal(acts["to_tokens"], acts["embed"])
    channels_last = TokenNet("channels_last")
    assert layer_output_shapes(channels_last, (16, 24), ["to_tokens"]) == {"to_tokens": (3, 4, 6)}


def _tiny_vit(num_layers: int = 2) -> torchvision.models.VisionTransformer:
    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=num_layers, num_heads=2,
                                                hidden_dim=16, mlp_dim=32, num_classes=5)


def test_list_cam_layers_of_a_vision_transformer():
    model = _tiny_vit()
    blocks = [f"encoder.layers.encoder_layer_{i}" for i in range(2)]
    expected = ["conv_proj"] + [n for b in blocks for n in (b, f"{b}.ln_1", f"{b}.ln_2")] + ["encoder.ln"]
    assert list_cam_layers(model) == expected
    assert list_conv_layers(model) == ["conv_proj"]
    assert layer_output_shapes(model, (32, 32), expected) == {n: (16, 4, 4) for n in expected}


def test_list_cam_layers_of_a_plain_cnn_is_its_conv_list():
    model = torchvision.models.resnet18(weights=None)
    assert list_cam_layers(model, (64, 64)) == list_conv_layers(model)


@pytest.mark.slow
def test_list_cam_layers_of_swin_and_convnext():
    swin = torchvision.models.swin_t(weights=None)
    layers = list_cam_layers(swin)  # dry forward at the 224 x 224 default
    assert layers[:3] == ["features.0", "features.0.0", "features.0.2"]  # patch embedding, its conv and norm
    assert {"features.1", "features.1.0.norm1", "features.1.0.norm2", "features.5.5", "features.7",
            "features.7.1.norm1"} <= set(layers)
    assert layers == [n for n, _ in swin.named_modules() if n in set(layers)], "named_modules() order"
    assert layer_output_shapes(swin, (64, 64), ["features.7", "features.5"]) == {"features.7": (768, 2, 2),
                                                                                  "features.5": (384, 4, 4)}
    convnext = torchvision.models.convnext_tiny(weights=None)
    layers = list_cam_layers(convnext, (64, 64))
    assert {"features.1.0", "features.1.0.block.2", "features.7.2"} <= set(layers)
    assert "classifier.0" not in layers, "the norm after global pooling has a 1 x 1 grid: no place to show"
    assert set(list_conv_layers(convnext)) <= set(layers)


def test_list_cam_layers_restores_the_model_state():
    model = _tiny_vit().train()
    model.encoder.eval()
    flags = [m.training for m in model.modules()]
    list_cam_layers(model)
    assert [m.training for m in model.modules()] == flags
    assert hook_count(model) == 0


def test_input_size_is_what_the_model_says_else_224():
    assert infer_input_size(_tiny_vit()) == (3, 32, 32)
    assert infer_input_size(torchvision.models.resnet18(weights=None)) == (3, 224, 224)

    class Declares(nn.Module):
        def __init__(self, **attributes):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.__dict__.update(attributes)

    assert infer_input_size(Declares(pretrained_cfg={"input_size": (3, 40, 48)})) == (1, 40, 48)
    assert infer_input_size(Declares(config=type("Config", (), {"image_size": 96})())) == (1, 96, 96)


def test_a_model_that_does_not_take_the_guessed_size_lists_its_convs_with_a_warning():
    torch.manual_seed(0)
    blocks = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.LayerNorm([4, 6, 6])))
    model = nn.Sequential(blocks, nn.Flatten(), nn.Linear(4 * 6 * 6, 2))  # takes 8 x 8 images only
    with pytest.warns(UserWarning, match=r"test forward failed.*Pass input_size"):
        assert list_cam_layers(model) == ["0.0.0"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list_cam_layers(model, (8, 8)) == ["0", "0.0", "0.0.0", "0.0.1"]
    with pytest.raises(ValueError, match=r"forward pass of a \(3, 9, 9\) zero image.*failed"):
        list_cam_layers(model, (9, 9))
