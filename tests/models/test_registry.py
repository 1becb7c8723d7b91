"""The registry: every entry builds, knows its preprocessing, classes, default CAM layer and classifier."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradcam_core import list_conv_layers
from models import DEFAULT_WORKSPACE, MODEL_REGISTRY, WorkspaceError, get_entry, list_workspaces, load_torchvision
from models.registry import BUNDLED_MODELS, TORCHVISION_MODELS

REQUIRED_TORCHVISION = {"resnet18", "resnet50", "vgg16", "densenet121", "mobilenet_v3_large", "efficientnet_b0",
                        "convnext_tiny"}


def test_list_workspaces_puts_the_default_first():
    assert DEFAULT_WORKSPACE == "shapes"
    assert list_workspaces() == ["shapes", "shapes-shortcut", "digits"]


def test_registry_has_the_bundled_models_and_the_torchvision_architectures():
    assert set(BUNDLED_MODELS) == set(list_workspaces())
    assert set(TORCHVISION_MODELS) >= REQUIRED_TORCHVISION
    assert set(MODEL_REGISTRY) == set(BUNDLED_MODELS) | set(TORCHVISION_MODELS)


@pytest.mark.parametrize("name", list(BUNDLED_MODELS))
def test_bundled_entry_builds_with_a_conv_default_layer(name):
    entry = BUNDLED_MODELS[name]
    model = entry.build(weights=False)
    modules = dict(model.named_modules())
    assert isinstance(modules[entry.default_layer], nn.Conv2d)
    assert entry.default_layer == list_conv_layers(model)[-1]
    assert isinstance(modules[entry.classifier_layer], nn.Linear)
    assert modules[entry.classifier_layer].out_features == len(entry.categories)
    x = entry.transforms()(__import__("PIL.Image").Image.new("RGB", (100, 80)))[None]
    assert x.shape == (1, 3, *entry.input_size)
    assert model(x).shape == (1, len(entry.categories))
    features = entry.features(model, x)
    assert features.shape == (1, modules[entry.classifier_layer].in_features)
    assert entry.meta["categories"] == list(entry.categories)
    assert entry.meta["default_layer"] == entry.default_layer


def test_shapes_model_is_resnet_style_with_at_least_10_convs_and_a_useful_last_map():
    from gradcam_core import layer_output_shapes

    model = get_entry("shapes").build(weights=False)
    convs = list_conv_layers(model)
    assert len(convs) >= 10
    assert layer_output_shapes(model, (64, 64))[convs[-1]][1:] in {(8, 8), (16, 16)}


@pytest.mark.parametrize("arch", sorted(REQUIRED_TORCHVISION))
def test_torchvision_entry_builds_without_weights(arch):
    entry = TORCHVISION_MODELS[arch]
    model, _, names = load_torchvision(arch, weights=None)
    modules = dict(model.named_modules())
    assert not model.training
    assert isinstance(modules[entry.default_layer], nn.Conv2d)
    assert entry.default_layer == list_conv_layers(model)[-1]
    assert isinstance(modules[entry.classifier_layer], nn.Linear)
    assert len(names) == 1000 and names[0] == "tench"  # ImageNet names from the weights' meta, no download
    assert entry.meta["categories"] == names


def test_torchvision_num_classes_gives_generic_names_and_a_small_head():
    model, transform, names = load_torchvision("resnet18", weights=None, num_classes=3)
    assert names == ["class 0", "class 1", "class 2"] and model.fc.out_features == 3
    assert transform(__import__("PIL.Image").Image.new("RGB", (300, 200))).shape == (3, 224, 224)


def test_unknown_names_are_reported_with_suggestions():
    with pytest.raises(WorkspaceError, match="did you mean 'resnet18'"):
        load_torchvision("resnet-18", weights=None)
    with pytest.raises(WorkspaceError, match="did you mean 'shapes'"):
        get_entry("shape")


def test_models_never_imports_streamlit():
    import subprocess
    import sys

    code = "import sys, models, models.byo, models.train; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_building_twice_gives_the_same_untrained_weights():
    a = get_entry("digits").build(weights=False)
    b = get_entry("digits").build(weights=False)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
