"""Bring-your-own workspaces from a TOML file: the happy path, and a clear WorkspaceError for each mistake."""

from __future__ import annotations

import pickle

import pytest
import torch
import torchvision

from models import Workspace, WorkspaceError, load_workspace
from tests.models.conftest import write_image_folder
from tests.pickles import CreatesAFile

TOML_HEAD = 'name = "pets"\n[model]\narch = "resnet18"\ncheckpoint = "weights.pt"\n'
DATA = '[data]\nroot = "images"\n'


def _write(folder, text: str):
    path = folder / "workspace.toml"
    path.write_text(text)
    return path


def test_byo_workspace_opens_end_to_end(byo_dir):
    from gradcam_core import CamEngine

    ws = load_workspace(byo_dir / "workspace.toml")
    assert isinstance(ws, Workspace)
    assert (ws.name, ws.title, ws.class_names) == ("pets", "Pets", ["cat", "dog", "fox"])
    assert ws.default_layer == "layer4.1.conv2" and ws.classifier_layer == "fc"
    assert ws.input_size == (64, 64) and ws.mean == (0.485, 0.456, 0.406) and ws.test_accuracy is None
    assert ws.model_id.startswith("pets:") and len(ws.model_id) == len("pets:") + 12
    assert not ws.model.training
    test = ws.test_set
    assert len(test) == 6 and test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert test.item_id(2) == "dog/0.png" and test.mask(2) is None
    assert test.image(2).mode == "RGB" and test.image(2).size == (50, 40)
    x = test.tensors([0, 3])
    assert torch.equal(x, torch.stack([ws.transform(test.image(i)) for i in (0, 3)]))
    res = CamEngine(ws.model, device="cpu").explain(x, layers=[ws.default_layer])
    assert res.cams["gradcam"][ws.default_layer].shape == (2, 2, 2)
    assert ws.features(x).shape == (2, 512)
    # the weights really are the checkpoint's
    saved = torch.load(byo_dir / "weights.pt", weights_only=True)
    assert torch.equal(ws.model.fc.weight, saved["fc.weight"])


def test_relative_paths_resolve_against_the_toml_not_the_cwd(byo_dir, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert len(load_workspace(str(byo_dir / "workspace.toml")).test_set) == 6


def test_safetensors_class_file_folder_map_and_default_names(byo_dir):
    from safetensors.torch import save_file

    state = torch.load(byo_dir / "weights.pt", weights_only=True)
    save_file(state, str(byo_dir / "weights.safetensors"))
    (byo_dir / "classes.txt").write_text("# one per line\nfeline\ndog\nfox\n")
    path = _write(byo_dir, 'name = "pets2"\n[model]\narch = "resnet18"\ncheckpoint = "weights.safetensors"\n'
                           'class_names = "classes.txt"\n[data]\nroot = "images"\nclass_map = { cat = "feline" }\n')
    ws = load_workspace(path)
    assert ws.class_names == ["feline", "dog", "fox"] and ws.test_set.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert ws.input_size == (224, 224)
    # no class_names: the folder names, sorted (ImageFolder's convention)
    ws = load_workspace(_write(byo_dir, TOML_HEAD + DATA))
    assert ws.class_names == ["cat", "dog", "fox"]


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript_workspace_with_arch_is_explained(byo_dir):
    from torchvision.models import resnet18

    from gradcam_core import CamEngine

    torch.manual_seed(0)
    net = resnet18(weights=None, num_classes=3).eval()
    torch.jit.script(net).save(str(byo_dir / "model.ts"))
    ws = load_workspace(_write(byo_dir, 'name = "ts"\n[model]\narch = "resnet18"\ntorchscript = "model.ts"\n' + DATA))
    assert ws.class_names == ["cat", "dog", "fox"]
    assert (ws.default_layer, ws.classifier_layer) == ("layer4.1.conv2", "fc")
    images = ws.test_set.tensors([0, 1])
    with torch.no_grad():
        assert torch.allclose(ws.model(images), net(images), atol=1e-5)
    cams = CamEngine(ws.model, device="cpu").explain(images).cams["gradcam"]
    assert cams["layer4.1.conv2"].shape == (2, 7, 7)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript_alone_is_refused_with_a_way_out(byo_dir):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 3))
    torch.jit.script(net).save(str(byo_dir / "model.ts"))
    with pytest.raises(WorkspaceError, match=r"forward hooks.*add arch = .*state_dict"):
        load_workspace(_write(byo_dir, 'name = "ts"\n[model]\ntorchscript = "model.ts"\n' + DATA))


# ------------------------------------------------------------------------------------------------ errors
def test_missing_checkpoint_file(byo_dir):
    (byo_dir / "weights.pt").unlink()
    with pytest.raises(WorkspaceError, match=r"checkpoint '.*weights.pt' \(from model.checkpoint\) does not exist"):
        load_workspace(byo_dir / "workspace.toml")


def test_missing_workspace_file_and_unknown_name(tmp_path):
    with pytest.raises(WorkspaceError, match=r"does not exist"):
        load_workspace(tmp_path / "nope.toml")
    with pytest.raises(WorkspaceError, match=r"unknown workspace 'nope'.*shapes"):
        load_workspace("nope")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_checkpoint_carrying_code_is_refused_without_running_it(byo_dir, writer):
    target = byo_dir / "pwned.txt"
    with open(byo_dir / "weights.pt", "wb") as handle:
        if writer == "torch.save":
            torch.save({"fc.weight": torch.zeros(3, 512), "evil": CreatesAFile(target)}, handle)
        else:
            pickle.dump(CreatesAFile(target), handle)
    with pytest.raises(WorkspaceError, match=r"refused to load checkpoint .*weights.pt.*state_dict") as info:
        load_workspace(byo_dir / "workspace.toml")
    assert "torch.save(model.state_dict()" in str(info.value)
    assert not target.exists()


def test_pickled_full_model_is_refused_with_how_to_save_a_state_dict(byo_dir):
    torch.save(torchvision.models.resnet18(weights=None, num_classes=3), byo_dir / "weights.pt")
    with pytest.raises(WorkspaceError, match=r"refused.*ResNet.*whole pickled model.*torch.save\(model.state_dict\(\)"):
        load_workspace(byo_dir / "workspace.toml")


def test_missing_and_unexpected_keys_are_listed(byo_dir):
    state = torch.load(byo_dir / "weights.pt", weights_only=True)
    state.pop("layer1.0.conv1.weight")
    state["head.extra"] = torch.zeros(1)
    torch.save(state, byo_dir / "weights.pt")
    with pytest.raises(WorkspaceError, match=r"1 missing key\(s\): layer1.0.conv1.weight; 1 unexpected key\(s\): "
                                             r"head.extra"):
        load_workspace(byo_dir / "workspace.toml")


def test_shape_mismatch_from_another_architecture_is_listed(byo_dir):
    torch.save(torchvision.models.resnet34(weights=None, num_classes=3).state_dict(), byo_dir / "weights.pt")
    with pytest.raises(WorkspaceError, match=r"unexpected key.*layer1.2"):
        load_workspace(byo_dir / "workspace.toml")
    state = torchvision.models.resnet18(weights=None, num_classes=3).state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, byo_dir / "weights.pt")
    with pytest.raises(WorkspaceError, match=r"shape mismatch.*conv1.weight: checkpoint \(64, 3, 3, 3\) vs model "
                                             r"\(64, 3, 7, 7\)"):
        load_workspace(byo_dir / "workspace.toml")


def test_class_names_that_do_not_match_the_classifier(byo_dir):
    path = _write(byo_dir, TOML_HEAD + 'class_names = ["cat", "dog", "fox", "owl"]\n' + DATA)
    (byo_dir / "images" / "owl").mkdir()
    with pytest.raises(WorkspaceError, match=r"classifier \(fc.weight\) with 3 outputs, but 4 class names"):
        load_workspace(path)
    path = _write(byo_dir, TOML_HEAD + 'num_classes = 3\nclass_names = ["cat", "dog"]\n' + DATA)
    with pytest.raises(WorkspaceError, match=r"num_classes = 3 but \[model\] class_names gives 2 class names"):
        load_workspace(path)


def test_folders_that_match_no_class_name(byo_dir):
    path = _write(byo_dir, TOML_HEAD + 'class_names = ["cat", "dog", "owl"]\n' + DATA)
    with pytest.raises(WorkspaceError, match=r"class folder\(s\) 'fox' .* do not match any class name.*class_map"):
        load_workspace(path)


def test_image_folder_without_images(byo_dir, tmp_path):
    write_image_folder(tmp_path / "empty", per_class=0)
    (tmp_path / "empty" / "cat" / "notes.txt").write_text("not an image")
    path = _write(byo_dir, TOML_HEAD + '[data]\nroot = "' + (tmp_path / "empty").as_posix() + '"\n')
    with pytest.raises(WorkspaceError, match=r"holds no images"):
        load_workspace(path)
    path = _write(byo_dir, TOML_HEAD + '[data]\nroot = "no_such_folder"\n')
    with pytest.raises(WorkspaceError, match=r"no_such_folder.*does not exist"):
        load_workspace(path)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('name = "my pets"\n' + TOML_HEAD[len('name = "pets"\n'):] + DATA, r"workspace file .*, name: got 'my pets'"),
        ('name = "x"\n' + DATA, r"missing \[model\] table"),
        (TOML_HEAD + "[data]\n", r"data.root: give exactly one of root and factory"),
        (TOML_HEAD + "num_classes = 'three'\n" + DATA, r"model.num_classes: got 'three' \(str\); expected a positive"),
        (TOML_HEAD + "class_names = [1, 2, 3]\n" + DATA, r"model.class_names: got \[1, 2, 3\]"),
        (TOML_HEAD + "chekpoint = 'x'\n" + DATA, r"unknown field\(s\) 'chekpoint' \(did you mean 'checkpoint'\?\)"),
        (TOML_HEAD + DATA + "[preprocessing]\ninput_size = [224]\n", r"preprocessing.input_size: got \[224\]"),
        (TOML_HEAD + DATA + "[preprocessing]\nmean = [0.5, 0.5]\n", r"preprocessing.mean: got \[0.5, 0.5\]"),
        (TOML_HEAD.replace("resnet18", "resnet-18") + DATA, r"'resnet-18' is not a torchvision .*'resnet18'"),
        ('name = "x"\n[model]\narch = "resnet18"\n' + DATA, r"neither checkpoint nor weights"),
        ('name = "x"\n[model]\nclass_names = ["a"]\n' + DATA, r"no model given"),
        ("name = \n", r"is not valid TOML"),
    ],
)
def test_bad_toml_fields_name_the_field_and_the_expectation(byo_dir, text, pattern):
    with pytest.raises(WorkspaceError, match=pattern):
        load_workspace(_write(byo_dir, text))


def test_pretrained_torchvision_weights_with_imagenet_folder_names(tmp_path, monkeypatch):
    """weights = "DEFAULT": the weights' transform and ImageNet names; folders map to them via class_map."""
    import models.sources.torchvision as tvm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(tvm, "_download", lambda *a: pytest.fail("tried to download a cached file"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), cache / "resnet18-f37072fd.pth")
    write_image_folder(tmp_path / "images", classes=("tench", "n01443537"), per_class=1)
    path = _write(tmp_path, 'name = "imagenet"\n[model]\narch = "resnet18"\nweights = "DEFAULT"\n'
                            '[data]\nroot = "images"\nclass_map = { n01443537 = "goldfish" }\n')
    ws = load_workspace(path)
    assert len(ws.class_names) == 1000 and ws.input_size == (224, 224)
    assert ws.test_set.labels.tolist() == [1, 0]  # goldfish (folder n01443537) sorts first, tench is class 0
    assert ws.transform(ws.test_set.image(0)).shape == (3, 224, 224)
