"""Bad input gets a clear error that says what was wrong and what to do."""

import numpy as np
import pytest
import torch
from torch import nn

from gradcam_core import CamEngine
from tests.core.core_helpers import hook_count, tiny_net


def test_unknown_layer_suggests_close_matches(images):
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)))
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", nn.Flatten())
    model.add_module("fc", nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"layer 'features.3' not found.*did you mean 'features.2'"):
        CamEngine(model, device="cpu").explain(images, layers=["features.3"])


def test_a_layer_whose_output_is_no_feature_map_is_named_with_its_type_and_shape(net, images):
    engine = CamEngine(net, device="cpu")
    with pytest.raises(ValueError, match=r"layer '10' is a Linear that gives an output of shape \(3, 4\), which "
                                         r"is not a feature map.*list_cam_layers\(model\).*reshape=callable"):
        engine.explain(images, layers=["10"])
    assert hook_count(net) == 0
    with pytest.raises(ValueError, match=r"layer '9' is a Flatten"):
        engine.activations(images, ["9"])


def test_a_container_that_is_no_feature_map_lists_the_cam_layers_inside_it(images):
    model = _Wrapped("tuple")  # body: the whole tiny net, whose output is (B, 4) logits
    with pytest.raises(ValueError, match=r"layer 'body' is a Sequential.*CAM layers inside it: 'body.0', 'body.2', "
                                         r"'body.6' \("):
        CamEngine(model, device="cpu").explain(images, layers=["body"])


def test_a_layer_that_does_not_influence_the_target_is_named(images):
    class SideBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = tiny_net()
            self.unused = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            self.unused(x)  # runs, but its output goes nowhere
            return self.body(x)

    model = SideBranch()
    with pytest.raises(ValueError, match=r"'unused' does not influence the class score"):
        CamEngine(model, device="cpu").explain(images, layers=["body.6", "unused"])
    assert hook_count(model) == 0
    # gradient-free Eigen-CAM still works on it
    res = CamEngine(model, device="cpu").explain(images, layers=["unused"], methods=("eigencam",))
    assert res.cams["eigencam"]["unused"].shape == (3, 16, 16)


def test_a_layer_that_never_runs_is_named(images):
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = tiny_net()
            self.spare = nn.Conv2d(3, 3, 1)  # registered, never called

        def forward(self, x):
            return self.body(x)

    model = WithSpare()
    with pytest.raises(ValueError, match=r"'spare' did not run in the forward pass"):
        CamEngine(model, device="cpu").explain(images, layers=["spare"])


@pytest.mark.parametrize(
    ("bad", "error", "pattern"),
    [
        (torch.zeros(3, 16, 16), ValueError, r"unsqueeze\(0\)"),
        (torch.zeros(1, 1, 16, 16), ValueError, r"1 channels but the model's first Conv2d expects 3"),
        (torch.zeros(1, 16, 16, 3), ValueError, r"permute"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), TypeError, r"float tensor.*torch.uint8"),
        (np.zeros((1, 3, 16, 16), dtype=np.float32), TypeError, r"torch.from_numpy"),
        (torch.zeros(0, 3, 16, 16), ValueError, r"B >= 1"),
        (torch.full((1, 3, 16, 16), float("nan")), ValueError, r"NaN"),
    ],
)
def test_bad_images(net, bad, error, pattern):
    with pytest.raises(error, match=pattern):
        CamEngine(net, device="cpu").explain(bad)


def test_target_out_of_range_and_wrong_count(net, images):
    engine = CamEngine(net, device="cpu")
    with pytest.raises(ValueError, match=r"target class 4 is out of range: the model has 4 classes"):
        engine.explain(images, targets=4)
    with pytest.raises(ValueError, match=r"got 2 targets for a batch of 3 images"):
        engine.explain(images, targets=[0, 1])
    with pytest.raises(ValueError, match=r"k=9 must be between 1"):
        engine.explain_topk(images, k=9)


def test_unknown_method(net, images):
    with pytest.raises(ValueError, match=r"unknown CAM method 'ablationcam'; choose from gradcam"):
        CamEngine(net, device="cpu").explain(images, methods=("ablationcam",))


def test_method_names_are_forgiving(net, images):
    res = CamEngine(net, device="cpu").explain(images, layers=["0"], methods=("Grad-CAM++", "grad_cam"))
    assert set(res.cams) == {"gradcampp", "gradcam"}


class _Wrapped(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.body = tiny_net()

    def forward(self, x):
        logits = self.body(x)
        if self.kind == "tuple":
            return logits, torch.zeros(1)
        if self.kind == "dict":
            return {"aux": torch.zeros(1), "logits": logits}
        if self.kind == "object":
            return type("Output", (), {"logits": logits})()
        if self.kind == "spatial":
            return logits[:, :, None, None].expand(-1, -1, 4, 4)
        return "not a tensor"


@pytest.mark.parametrize("kind", ["tuple", "dict", "object"])
def test_outputs_holding_logits_are_accepted(kind, images):
    reference = CamEngine(_Wrapped("plain_ok").body, device="cpu").explain(images).cams["gradcam"]["6"]
    res = CamEngine(_Wrapped(kind), device="cpu").explain(images)
    np.testing.assert_allclose(res.cams["gradcam"]["body.6"], reference, atol=1e-6)


def test_outputs_without_class_scores_are_refused(images):
    with pytest.raises(ValueError, match=r"shape \(3, 4, 4, 4\), expected \(batch=3, num_classes\)"):
        CamEngine(_Wrapped("spatial"), device="cpu").explain(images)
    with pytest.raises(ValueError, match=r"returned str, which holds no logits"):
        CamEngine(_Wrapped("string"), device="cpu").explain(images)


def test_model_without_conv_layers():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(ValueError, match=r"has no nn\.Conv2d layer"):
        CamEngine(model, device="cpu").explain(torch.zeros(1, 3, 2, 2))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_module_is_refused_with_a_way_out():
    scripted = torch.jit.script(tiny_net())
    with pytest.raises(TypeError, match=r"TorchScript module.*load_state_dict\(scripted.state_dict\(\)\)"):
        CamEngine(scripted, device="cpu")


class _TwoStems(nn.Module):
    """Two convs on the image side by side, both feeding the classifier: neither is downstream of the other."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.left, self.right = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 5, padding=2)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.cat([self.left(x), self.right(x)], dim=1).mean(dim=(2, 3)))


def test_layers_on_two_stems_get_their_maps_and_the_second_call_needs_one_pass(images):
    model = _TwoStems()
    forwards = []
    model.register_forward_pre_hook(lambda *_: forwards.append(1))
    engine = CamEngine(model, device="cpu")
    both = engine.explain(images, layers=["left", "right"], targets=2, methods=("gradcam", "layercam"))
    assert len(forwards) == 2, "the backward stopped at the first stem, then ran again to the image"
    alone = {name: engine.explain(images, layers=[name], targets=2, methods=("gradcam", "layercam"))
             for name in ("left", "right")}
    forwards.clear()
    again = engine.explain(images, layers=["left", "right"], targets=2, methods=("gradcam", "layercam"))
    assert len(forwards) == 1, "the second call remembers where the backward must go"
    for name in ("left", "right"):
        for method in ("gradcam", "layercam"):
            np.testing.assert_allclose(both.cams[method][name], alone[name].cams[method][name], atol=1e-6)
            np.testing.assert_array_equal(again.cams[method][name], both.cams[method][name])
