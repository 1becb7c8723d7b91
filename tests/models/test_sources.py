"""Every model source on small random-init models built here: the workspace gives the very logits of the model
the test built, opens on the right default CAM layer, and `gradcam explain` writes its files. Offline, CPU."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cli.main import main as gradcam
from models import WorkspaceError, list_workspaces, load_workspace
from tests.models.conftest import write_image_folder

CLASSES = ("cat", "dog", "fox")

NETS_PY = '''
import torch
from torch import nn

from blocks import conv_block   # a neighbour module: the file's folder is importable while it loads

CONSTANT = 3


class XRayClassifier(nn.Module):
    def __init__(self, num_classes=2, width=8):
        super().__init__()
        self.features = nn.Sequential(conv_block(3, width), conv_block(width, 2 * width))
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def make_dict(**kwargs):
    return {"not": "a model"}
'''
BLOCKS_PY = '''
from torch import nn


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
'''


def _same_logits(workspace, reference: nn.Module) -> None:
    x = workspace.test_set.tensors(range(len(workspace.test_set)))
    with torch.no_grad():
        ours = workspace.model(x)
        ours = getattr(ours, "logits", ours)
        theirs = reference.eval()(x)
        theirs = getattr(theirs, "logits", theirs)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def _explain_writes_its_files(toml: Path, out: Path, image: Path) -> dict:
    assert gradcam(["explain", str(image), "--workspace", str(toml), "--out", str(out), "--device", "cpu"]) == 0
    for name in ("original.png", "heatmap.png", "overlay.png"):
        assert (out / name).stat().st_size > 0
    return json.loads((out / "result.json").read_text())


def _explorer_shows_the_models_layers(toml: Path, monkeypatch) -> list[str]:
    """An AppTest run of the explorer on ``toml``: no error, the viewer offers the model's Conv2d layers then its
    token layers, and opens on the workspace's default layer. Returns the offered layers."""
    from gradcam_core import list_cam_layers
    from tests.app.helpers import assert_clean, run_app, viewer_data, viewer_layers

    workspace = load_workspace(toml)
    convs = [name for name, module in workspace.model.named_modules() if isinstance(module, nn.Conv2d)]
    expected = convs + [n for n in list_cam_layers(workspace.model, workspace.input_size) if n not in convs]
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(toml)])
    at = run_app()
    assert_clean(at)
    offered = viewer_layers(at)
    assert offered == expected
    assert viewer_data(at)["view"]["layer"] == workspace.default_layer
    return offered


@pytest.fixture
def folder(tmp_path) -> Path:
    write_image_folder(tmp_path / "images", classes=CLASSES, per_class=2, size=(40, 48))
    return tmp_path


def _seeded(build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


# ------------------------------------------------------------------------------------------- python
def _python_workspace(folder: Path, extra: str = "") -> Path:
    (folder / "nets.py").write_text(NETS_PY)
    (folder / "blocks.py").write_text(BLOCKS_PY)
    toml = folder / "xray.toml"
    toml.write_text(textwrap.dedent(f'''
        [model]
        source = "python"
        factory = "nets.py:XRayClassifier"
        kwargs = {{ num_classes = 3, width = 8 }}
        checkpoint = "xray.pt"
        {extra}
        [data]
        root = "images"
        [preprocessing]
        input_size = [32, 32]
    '''))
    return toml


def test_python_source_loads_the_users_class_from_a_file_beside_the_toml(folder, monkeypatch):
    import importlib.util

    sys.path.insert(0, str(folder))
    try:
        (folder / "blocks.py").write_text(BLOCKS_PY)
        spec = importlib.util.spec_from_file_location("reference_nets", _write_nets(folder))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    reference = _seeded(lambda: module.XRayClassifier(num_classes=3, width=8))
    torch.save(reference.state_dict(), folder / "xray.pt")
    workspace = load_workspace(_python_workspace(folder))
    assert (workspace.name, workspace.source, workspace.class_names) == ("xray", "python", list(CLASSES))
    assert workspace.default_layer == "features.1.0" and workspace.classifier_layer == "head"
    assert workspace.model_id.startswith("xray:") and "untrained" not in workspace.notes
    _same_logits(workspace, reference)
    summary = _explain_writes_its_files(folder / "xray.toml", folder / "out", folder / "images" / "dog" / "0.png")
    assert summary["layer"] == "features.1.0" and summary["top5"][0]["name"] in CLASSES
    assert _explorer_shows_the_models_layers(folder / "xray.toml", monkeypatch) == ["features.0.0", "features.1.0"]
    assert "shapes" in list_workspaces()  # the bundled workspaces stay selectable


def _write_nets(folder: Path) -> Path:
    (folder / "nets.py").write_text(NETS_PY)
    return folder / "nets.py"


def test_python_source_without_checkpoint_is_untrained_and_says_so(folder):
    toml = _python_workspace(folder)
    toml.write_text(toml.read_text().replace('checkpoint = "xray.pt"\n', ""))
    workspace = load_workspace(toml)
    assert "untrained" in workspace.notes and ":untrained" in workspace.model_id


PYTHON_ERRORS = [
    ('source = "keras"', r"model.source: unknown source 'keras'; use one of .*'python'"),
    ('factory = "nets.py:CONSTANT"', r"model.factory: nets.py:CONSTANT is a int, not callable"),
    ('factory = "nets.py:make_dict"', r"nets.py:make_dict returned dict, not a torch.nn.Module"),
    ('factory = "nets.py:Nope"', r"nets.py has no attribute 'Nope'; choose one of .*XRayClassifier"),
    ('factory = "missing.py:Net"', r"model.factory: the file '.*missing.py' does not exist"),
    ('factory = "no_such_package.nets:Net"', r"no module named 'no_such_package'"),
    ('factory = "XRayClassifier"', r'expected "file.py:ClassName" or "package.module:callable"'),
    ("kwargs = { depth = 3 }", r"model.kwargs: nets.py:XRayClassifier does not accept kwargs \{'depth': 3\}.*"
                               r"\(num_classes=2, width=8\)"),
    ('default_layer = "head"', r"model.default_layer: 'head' is not a CAM layer"),
]


@pytest.mark.parametrize(("change", "pattern"), PYTHON_ERRORS)
def test_python_source_errors_name_the_field_and_the_fix(folder, change, pattern):
    toml = _python_workspace(folder)
    key = change.split(" =")[0]
    lines = [line for line in toml.read_text().splitlines() if not line.strip().startswith(f"{key} =")]
    lines.insert(lines.index("[model]") + 1, change)
    toml.write_text("\n".join(line for line in lines if "checkpoint" not in line) + "\n")  # untrained is enough
    with pytest.raises(WorkspaceError, match=pattern):
        load_workspace(toml)


def test_an_error_inside_the_users_file_names_its_line(folder):
    toml = _python_workspace(folder)
    (folder / "nets.py").write_text("import torch\n\ndef broken(:\n    pass\n")
    with pytest.raises(WorkspaceError, match=r"importing '.*nets.py' raised SyntaxError.*\(nets.py, line 3\)"):
        load_workspace(toml)


def test_fields_of_another_tool_point_to_factory(folder):
    toml = folder / "w.toml"
    toml.write_text('[model]\nclass = "XRayClassifier"\nmodule = "nets"\ncheckpoint = "x.pt"\n'
                    '[data]\nroot = "images"\n')
    with pytest.raises(WorkspaceError, match=r"unknown field\(s\) 'class', 'module'.*source = \"python\" and "
                                             r"factory = \"nets.py:XRayClassifier\""):
        load_workspace(toml)


# --------------------------------------------------------------------------------------------- timm
def _timm_workspace(folder: Path, name: str, kwargs: str = "", preprocessing: str = "") -> Path:
    toml = folder / "timm.toml"
    toml.write_text(f'[model]\nsource = "timm"\nname = "{name}"\ncheckpoint = "timm.pt"\n{kwargs}\n'
                    f'[data]\nroot = "images"\n{preprocessing}')
    return toml


def test_timm_resnet_with_timms_own_preprocessing(folder, monkeypatch):
    timm = pytest.importorskip("timm")
    reference = _seeded(lambda: timm.create_model("resnet18", pretrained=False, num_classes=3))
    torch.save(reference.state_dict(), folder / "timm.pt")
    workspace = load_workspace(_timm_workspace(folder, "resnet18"))
    transform = workspace.transform  # timm's data config: 224 crop of the shorter side at 224 / 0.95, bicubic
    assert (transform.input_size, transform.resize, transform.interpolation) == ((224, 224), 236, "bicubic")
    assert workspace.default_layer == "layer4.1.conv2" and workspace.classifier_layer == "fc"
    _same_logits(workspace, reference)
    _explain_writes_its_files(folder / "timm.toml", folder / "out", folder / "images" / "cat" / "1.png")
    assert len(_explorer_shows_the_models_layers(folder / "timm.toml", monkeypatch)) == 20  # resnet18's convs


def test_timm_vit_opens_on_the_last_blocks_first_norm(folder, monkeypatch):
    timm = pytest.importorskip("timm")
    reference = _seeded(lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3,
                                                  img_size=32, depth=4))
    torch.save(reference.state_dict(), folder / "timm.pt")
    toml = _timm_workspace(folder, "vit_tiny_patch16_224", "kwargs = { img_size = 32, depth = 4 }")
    workspace = load_workspace(toml)
    assert workspace.input_size == (32, 32)
    assert workspace.default_layer == "blocks.3.norm1" and workspace.classifier_layer == "head"
    _same_logits(workspace, reference)
    summary = _explain_writes_its_files(toml, folder / "out", folder / "images" / "fox" / "0.png")
    assert summary["map_shape"] == [2, 2]  # the 2x2 patch grid of a 32 px input with 16 px patches
    offered = _explorer_shows_the_models_layers(toml, monkeypatch)
    assert offered[0] == "patch_embed.proj" and "blocks.3.norm1" in offered  # the one conv, then the blocks


def test_timm_missing_extra_names_the_pip_extra(folder, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    torch.save({}, folder / "timm.pt")
    with pytest.raises(WorkspaceError, match=r"needs the Python package 'timm'.*pip install -e \.\[timm\]"):
        load_workspace(_timm_workspace(folder, "resnet18"))


def test_timm_unknown_name_and_offline_pretrained(folder, monkeypatch):
    pytest.importorskip("timm")
    with pytest.raises(WorkspaceError, match=r"model.name: timm has no model 'resnet-18'"):
        load_workspace(_timm_workspace(folder, "resnet-18"))
    monkeypatch.setenv("GRADCAM_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(folder / "empty-hub"))
    toml = folder / "pre.toml"
    toml.write_text('[model]\nsource = "timm"\nname = "resnet18"\npretrained = true\n[data]\nroot = "images"\n')
    with pytest.raises(WorkspaceError, match=r"pretrained weights of 'resnet18' are not in the local cache.*"
                                             r"GRADCAM_OFFLINE"):
        load_workspace(toml)


# ------------------------------------------------------------------------------------- Hugging Face
def _hf_folder(folder: Path, model, processor: dict) -> Path:
    model.save_pretrained(folder / "hf-model")
    (folder / "hf-model" / "preprocessor_config.json").write_text(json.dumps(processor))
    toml = folder / "hf.toml"
    toml.write_text('[model]\nsource = "huggingface"\npath = "hf-model"\n[data]\nroot = "images"\n')
    return toml


def test_huggingface_resnet_folder_with_its_processor(folder, monkeypatch):
    transformers = pytest.importorskip("transformers")
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3,
                                       id2label=dict(enumerate(CLASSES)),
                                       label2id={c: i for i, c in enumerate(CLASSES)})
    reference = _seeded(lambda: transformers.ResNetForImageClassification(config))
    toml = _hf_folder(folder, reference, {"do_resize": True, "size": {"shortest_edge": 32}, "crop_pct": 0.875,
                                          "do_normalize": True, "image_mean": [0.5, 0.4, 0.3],
                                          "image_std": [0.2, 0.2, 0.2], "resample": 3})
    workspace = load_workspace(toml)
    assert workspace.class_names == list(CLASSES) and workspace.source == "huggingface"
    transform = workspace.transform
    assert (transform.input_size, transform.resize, transform.mean) == ((32, 32), 37, (0.5, 0.4, 0.3))
    convs = [n for n, m in workspace.model.named_modules() if isinstance(m, nn.Conv2d)]
    assert workspace.default_layer == convs[-1] and workspace.classifier_layer == "classifier.1"
    _same_logits(workspace, reference)
    _explain_writes_its_files(toml, folder / "out", folder / "images" / "cat" / "0.png")
    assert _explorer_shows_the_models_layers(toml, monkeypatch)[-1] == convs[-1]


def test_huggingface_vit_folder_explains_its_logits(folder, monkeypatch):
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, image_size=32, patch_size=8, num_labels=3)
    reference = _seeded(lambda: transformers.ViTForImageClassification(config))
    toml = _hf_folder(folder, reference, {"do_resize": True, "size": {"height": 32, "width": 32},
                                          "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3})
    workspace = load_workspace(toml)
    assert workspace.class_names == list(CLASSES)  # generic LABEL_i names: the data folder's names instead
    assert workspace.default_layer.endswith("1.layernorm_before") and workspace.classifier_layer == "classifier"
    _same_logits(workspace, reference)
    summary = _explain_writes_its_files(toml, folder / "out", folder / "images" / "dog" / "1.png")
    assert summary["map_shape"] == [4, 4]
    assert workspace.default_layer in _explorer_shows_the_models_layers(toml, monkeypatch)


def test_huggingface_errors(folder):
    toml = folder / "hf.toml"
    toml.write_text('[model]\npath = "nowhere"\n[data]\nroot = "images"\n')
    with pytest.raises(WorkspaceError, match=r"model.path: '.*nowhere' does not exist"):
        load_workspace(toml)
    (folder / "empty").mkdir()
    toml.write_text('[model]\npath = "empty"\n[data]\nroot = "images"\n')
    with pytest.raises(WorkspaceError, match=r"has no config.json"):
        load_workspace(toml)


# -------------------------------------------------------------------------------- torchvision ViT, Swin
@pytest.mark.slow
@pytest.mark.parametrize(("arch", "default_layer", "grid"), [
    ("vit_b_16", "encoder.layers.encoder_layer_11.ln_1", [14, 14]),
    ("swin_t", "features.7.1.norm1", [7, 7]),
])
def test_torchvision_transformers(folder, arch, default_layer, grid, monkeypatch):
    import torchvision

    reference = _seeded(lambda: torchvision.models.get_model(arch, weights=None, num_classes=3))
    torch.save(reference.state_dict(), folder / "tv.pt")
    toml = folder / "tv.toml"
    toml.write_text(f'[model]\narch = "{arch}"\ncheckpoint = "tv.pt"\n[data]\nroot = "images"\n')
    workspace = load_workspace(toml)
    assert workspace.default_layer == default_layer and workspace.input_size == (224, 224)
    _same_logits(workspace, reference)
    summary = _explain_writes_its_files(toml, folder / "out", folder / "images" / "cat" / "0.png")
    assert summary["map_shape"] == grid
    assert default_layer in _explorer_shows_the_models_layers(toml, monkeypatch)


# ------------------------------------------------------------------------------- misplaced weights
def test_checkpoints_of_another_library_say_which_source_to_use(folder):
    transformers = pytest.importorskip("transformers")
    timm = pytest.importorskip("timm")
    toml = folder / "tv.toml"
    toml.write_text('[model]\narch = "vit_b_16"\ncheckpoint = "w.pt"\n[data]\nroot = "images"\n')
    torch.save(timm.create_model("vit_tiny_patch16_224", num_classes=3, depth=1).state_dict(), folder / "w.pt")
    with pytest.raises(WorkspaceError, match=r"keys look like a timm model's: use source = \"timm\""):
        load_workspace(toml)
    toml.write_text(toml.read_text().replace("vit_b_16", "resnet18"))
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8], depths=[1], num_labels=3)
    torch.save(transformers.ResNetForImageClassification(config).state_dict(), folder / "w.pt")
    with pytest.raises(WorkspaceError, match=r"keys look like a Hugging Face model's.*source = \"huggingface\""):
        load_workspace(toml)
    transformers.ResNetForImageClassification(config).save_pretrained(folder / "hf")
    toml.write_text(toml.read_text().replace('"w.pt"', '"hf"'))
    with pytest.raises(WorkspaceError, match=r"is a Hugging Face save_pretrained folder.*source = \"huggingface\""):
        load_workspace(toml)


def test_missing_keys_list_the_weights_before_batch_norm_bookkeeping(folder):
    import torchvision

    state = torchvision.models.resnet18(weights=None, num_classes=3).state_dict()
    for suffix in ("num_batches_tracked", "running_mean", "running_var", "weight", "bias"):
        state.pop(f"layer1.0.bn1.{suffix}")
    torch.save(state, folder / "w.pt")
    toml = folder / "tv.toml"
    toml.write_text('[model]\narch = "resnet18"\ncheckpoint = "w.pt"\n[data]\nroot = "images"\n')
    with pytest.raises(WorkspaceError, match=r"5 missing key\(s\): layer1\.0\.bn1\.weight, layer1\.0\.bn1\.bias, "):
        load_workspace(toml)


def test_building_a_torchvision_model_leaves_the_global_rng_alone():
    from models.sources.torchvision import build_arch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = build_arch("resnet18", 3)
    assert torch.equal(torch.rand(3), expected)
    second = build_arch("resnet18", 3)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                 strict=True))
    assert np.isfinite(first.fc.weight.detach().numpy()).all()
