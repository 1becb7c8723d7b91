import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet50

from gradcam_core import (
    COLORMAPS,
    colorize,
    denormalise,
    heatmap_image,
    layer_output_shapes,
    list_conv_layers,
    overlay,
    upsample,
)


def test_list_conv_layers_in_named_modules_order():
    model = resnet50(weights=None)
    names = list_conv_layers(model)
    assert len(names) == 53
    assert names[0] == "conv1" and names[-1] == "layer4.2.conv3"
    assert names.index("layer1.0.downsample.0") > names.index("layer1.0.conv3")
    order = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert names == order


def test_layer_output_shapes_from_one_dummy_forward(net):
    net.train()
    shapes = layer_output_shapes(net, (16, 16))
    assert shapes == {"0": (8, 16, 16), "2": (8, 16, 16), "6": (16, 8, 8)}
    assert net.training, "training flag restored"
    assert layer_output_shapes(resnet50(weights=None), (224, 224))["layer4.2.conv3"] == (2048, 7, 7)


def test_upsample_is_bilinear_with_half_pixel_centres():
    cam = np.array([[0.0, 1.0]], dtype=np.float32)
    out = upsample(cam, (1, 4))
    # centres of the 4 output pixels map to x = -0.25, 0.25, 0.75, 1.25 -> clamped bilinear
    np.testing.assert_allclose(out, [[0.0, 0.25, 0.75, 1.0]], atol=1e-6)
    assert upsample(np.zeros((2, 3, 3)), (6, 6)).shape == (2, 6, 6)


@pytest.mark.parametrize("name", ["jet", "turbo", "viridis"])
def test_colormaps_run_from_dark_to_bright_ends(name):
    lut = COLORMAPS[name]
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert len({tuple(c) for c in lut}) > 100, "a smooth colormap has many distinct colours"
    assert not np.array_equal(lut[0], lut[-1])


@pytest.mark.parametrize("name", ["jet", "turbo", "viridis", "inferno", "gray", "magma", "plasma", "cividis"])
def test_colormaps_are_matplotlibs_own_tables(name):
    matplotlib = pytest.importorskip("matplotlib")
    rgb = matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3]
    np.testing.assert_array_equal(COLORMAPS[name], np.rint(rgb * 255).astype(np.uint8))
    # and colorize picks entry round(value * 255): every table entry is reachable, in order
    np.testing.assert_array_equal(colorize(np.linspace(0.0, 1.0, 256)[None], name)[0], COLORMAPS[name])


def test_the_shipped_tables_are_what_the_generator_makes():
    pytest.importorskip("matplotlib")
    from gradcam_core import _make_colormaps

    assert tuple(COLORMAPS) == _make_colormaps.NAMES
    for name in _make_colormaps.NAMES:
        np.testing.assert_array_equal(COLORMAPS[name], _make_colormaps.table(name), err_msg=name)
    assert not COLORMAPS["jet"].flags.writeable, "a shared table must not be writable by one caller"


def test_known_colours():
    assert colorize(np.array([[1.0]]), "jet")[0, 0].tolist() == [128, 0, 0]  # dark red top
    assert colorize(np.array([[0.0]]), "jet")[0, 0].tolist() == [0, 0, 128]  # dark blue bottom
    assert colorize(np.array([[0.0]]), "viridis")[0, 0].tolist() == [68, 1, 84]
    with pytest.raises(ValueError, match="unknown colormap 'rainbow'"):
        colorize(np.zeros((2, 2)), "rainbow")


def test_overlay_opacity_blends_linearly():
    image = np.full((4, 4, 3), 100, dtype=np.uint8)
    heat = np.ones((2, 2), dtype=np.float32)
    colour = heatmap_image(heat, (4, 4), "jet")
    np.testing.assert_array_equal(overlay(image, heat, 0.0), image)
    np.testing.assert_array_equal(overlay(image, heat, 1.0), colour)
    half = overlay(image, heat, 0.5)
    np.testing.assert_array_equal(half, np.rint((image.astype(float) + colour) / 2).astype(np.uint8))
    with pytest.raises(ValueError, match="alpha must be in"):
        overlay(image, heat, 1.5)
    with pytest.raises(ValueError, match="uint8 RGB"):
        overlay(image.astype(np.float32), heat, 0.5)


def test_denormalise_inverts_normalisation():
    pixels = torch.tensor([0.0, 0.5, 1.0]).repeat(3, 1, 1).reshape(3, 1, 3)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    normalised = (pixels - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    np.testing.assert_array_equal(denormalise(normalised, mean, std)[0, :, 0], [0, 128, 255])
