"""weights="DEFAULT" goes through torchvision's weights API and the torch cache, and fails clearly offline."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

import models.sources.torchvision as tvm
from models import WorkspaceError, load_torchvision


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(tvm.OFFLINE_ENV, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_offline_without_the_file_names_file_folder_and_remedy(empty_cache, monkeypatch):
    calls = []

    def no_network(url, destination):
        calls.append(url)
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(tvm, "_download", no_network)
    with pytest.raises(WorkspaceError) as info:
        load_torchvision("resnet18")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(empty_cache) in message
    assert "download" in message and "TORCH_HOME" in message and "name resolution" in message
    assert calls == [torchvision.models.ResNet18_Weights.DEFAULT.url]


def test_offline_switch_never_tries_the_network(empty_cache, monkeypatch):
    monkeypatch.setenv(tvm.OFFLINE_ENV, "1")
    monkeypatch.setattr(tvm, "_download", lambda *a: pytest.fail("tried to download"))
    with pytest.raises(WorkspaceError, match=r"mobilenet_v3_large-5c1a4163.pth"):
        load_torchvision("mobilenet_v3_large")


def test_a_cached_file_is_used_with_the_weights_transforms_and_categories(empty_cache, monkeypatch):
    monkeypatch.setattr(tvm, "_download", lambda *a: pytest.fail("tried to download a cached file"))
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)
    empty_cache.mkdir(parents=True)
    torch.save(reference.state_dict(), empty_cache / "resnet18-f37072fd.pth")
    model, transform, names = load_torchvision("resnet18", weights="DEFAULT")
    assert torch.equal(model.fc.weight, reference.fc.weight)
    assert not model.training
    assert names == torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]
    # the weights' own preset (resize 256, crop 224, ImageNet statistics) as the project's transform
    preset = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    assert (transform.input_size, transform.resize) == ((224, 224), 256)
    assert (list(transform.mean), list(transform.std)) == (list(preset.mean), list(preset.std))


def test_pretrained_weights_refuse_another_class_count(empty_cache):
    with pytest.raises(WorkspaceError, match=r"1000 classes, not num_classes=5"):
        load_torchvision("resnet18", weights="DEFAULT", num_classes=5)


def test_unknown_weights_name_lists_the_choices():
    with pytest.raises(WorkspaceError, match=r"IMAGENET1K_V1"):
        load_torchvision("resnet18", weights="IMAGENET9K")
