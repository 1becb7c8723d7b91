"""The explorer's plain functions: gallery sampling, URL state, the --workspace argument, the upload handler."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dashboard import samples
from dashboard.argv import workspace_from_argv
from dashboard.explorer_link import ViewOptions, ViewState, default_state, parse_query_params, to_query_params
from dashboard.gallery import GALLERY_SIZE, MIN_MISCLASSIFIED, class_filter, lead_index, sample_gallery

LAYERS = ["stem.0", "layer1.0.conv1", "layer2.1.conv2"]
CLASSES = ["circle", "square", "triangle"]


@pytest.fixture
def split():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 500)
    predicted = labels.copy()
    predicted[:6] = (labels[:6] + 1) % 3  # 6 mistakes in 500: 1.2 %, a natural sample of 20 would show none
    return labels, predicted


# ------------------------------------------------------------------------------------------------ gallery
def test_gallery_is_seeded_distinct_and_includes_misclassified(split):
    labels, predicted = split
    gallery = sample_gallery(labels, predicted, seed=3)
    assert len(gallery) == GALLERY_SIZE == len(set(gallery.tolist()))
    assert np.array_equal(gallery, sample_gallery(labels, predicted, seed=3))
    assert not np.array_equal(gallery, sample_gallery(labels, predicted, seed=4))
    assert (labels[gallery] != predicted[gallery]).sum() == MIN_MISCLASSIFIED
    assert gallery[0] == lead_index(labels, 3)  # the first image needs no predictions


def test_gallery_filters(split):
    labels, predicted = split
    wrong = sample_gallery(labels, predicted, 1, "misclassified")
    assert len(wrong) == 6 and (labels[wrong] != predicted[wrong]).all()
    right = sample_gallery(labels, predicted, 1, "correct")
    assert len(right) == GALLERY_SIZE and (labels[right] == predicted[right]).all()
    squares = sample_gallery(labels, predicted, 1, class_filter(1))
    assert (labels[squares] == 1).all() and squares[0] == lead_index(labels, 1, class_filter(1))
    assert len(sample_gallery(labels, labels, 1, "misclassified")) == 0
    # A model without mistakes still gets a full gallery of distinct images, led by the labels-only first image.
    perfect = sample_gallery(labels, labels, 1)
    assert len(perfect) == len(set(perfect.tolist())) == GALLERY_SIZE
    assert perfect[0] == lead_index(labels, 1)


def test_small_split_gives_every_image_once():
    labels = np.array([0, 1, 2, 0, 1])
    gallery = sample_gallery(labels, np.array([0, 1, 2, 1, 1]), seed=0)
    assert sorted(gallery.tolist()) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------- URL state
@pytest.fixture
def options():
    return ViewOptions(layers=LAYERS, default_layer=LAYERS[-1], class_names=CLASSES, num_test=100)


def test_a_view_survives_the_url(options):
    view = ViewState(layer="stem.0", seed=42, filter=class_filter(2), sample=17, method="eigencam", target=1,
                     opacity=0.35, colormap="viridis")
    parsed, warnings = parse_query_params(to_query_params(view), options)
    assert warnings == []
    assert parsed == view


def test_url_values_are_accepted_in_friendly_forms(options):
    parsed, warnings = parse_query_params({"target": "square", "filter": "class:triangle", "method": "LayerCAM",
                                           "colormap": "Gray", "opacity": "0.333"}, options)
    assert warnings == []
    assert (parsed.target, parsed.filter, parsed.method, parsed.colormap, parsed.opacity) == (
        1, "class:2", "layercam", "gray", 0.33)


@pytest.mark.parametrize(("key", "value"), [
    ("seed", "abc"), ("seed", "-1"), ("filter", "class:7"), ("filter", "wrong"), ("sample", "100"),
    ("sample", "x"), ("layer", "layer9"), ("method", "gradcam3"), ("target", "99"), ("target", "dog"),
    ("opacity", "nan"), ("opacity", "1.5"), ("colormap", "rainbow"),
])
def test_a_bad_url_value_falls_back_with_a_warning(options, key, value):
    parsed, warnings = parse_query_params({key: value}, options)
    assert len(warnings) == 1
    assert repr(value) in warnings[0] or (key == "sample" and value in warnings[0])
    assert getattr(parsed, key) == getattr(default_state(options), key)


def test_a_mistyped_layer_gets_a_suggestion(options):
    _, warnings = parse_query_params({"layer": "layer2.1.conv3"}, options)
    assert "did you mean 'layer2.1.conv2'" in warnings[0]


def test_an_upload_link_explains_that_uploads_are_not_shared(options):
    parsed, warnings = parse_query_params({"sample": "upload:0123456789ab"}, options)
    assert parsed.sample is None
    assert "uploaded image" in warnings[0]


# ---------------------------------------------------------------------------------------------- --workspace
def test_workspace_argument():
    assert workspace_from_argv(["--workspace", "my/ws.toml"]) == "my/ws.toml"
    assert workspace_from_argv(["--workspace=my/ws.toml", "--other"]) == "my/ws.toml"
    assert workspace_from_argv([]) is None
    # pytest's own argv must never be taken for ours (no abbreviations either)
    assert workspace_from_argv(["tests/app", "-q", "--work", "x", "-k", "workspace"]) is None


# ---------------------------------------------------------------------------------------------- uploads
class _Workspace:
    """Just what prepare_upload uses: a transform, mean and std (a 32x32 resize and normalisation)."""

    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    @staticmethod
    def transform(image):
        import torch

        array = np.asarray(image.resize((32, 32)), dtype=np.float32) / 255
        return (torch.from_numpy(array).permute(2, 0, 1) - 0.5) / 0.25


class _Loaded:
    workspace = _Workspace()


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "I;16", "P"])
def test_upload_handler_takes_any_common_image(mode):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).convert(mode)
    result = samples.prepare_upload(_Loaded(), encode(image), "photo.png")
    assert tuple(result.tensor.shape) == (1, 3, 32, 32)
    assert result.pixels.shape == (32, 32, 3) and result.pixels.dtype == np.uint8


def test_upload_handler_refuses_what_is_not_an_image():
    with pytest.raises(samples.UploadError, match="empty"):
        samples.prepare_upload(_Loaded(), b"", "empty.png")
    with pytest.raises(samples.UploadError, match="not an image"):
        samples.prepare_upload(_Loaded(), b"%PDF-1.4 definitely not a picture", "report.png")
    truncated = encode(Image.new("RGB", (64, 64), "red"), "JPEG")[:200]
    with pytest.raises(samples.UploadError, match="truncated"):
        samples.prepare_upload(_Loaded(), truncated, "cut.jpg")


def test_upload_handler_reports_a_failing_transform():
    class Broken(_Loaded):
        class workspace(_Workspace):
            @staticmethod
            def transform(image):
                raise RuntimeError("expects 4 channels")

    with pytest.raises(samples.UploadError, match=r"transform could not process photo\.png: expects 4 channels"):
        samples.prepare_upload(Broken(), encode(Image.new("RGB", (8, 8))), "photo.png")


def test_uploads_are_keyed_by_their_bytes():
    a, b = encode(Image.new("RGB", (8, 8), "red")), encode(Image.new("RGB", (8, 8), "blue"))
    assert samples.upload_sample(a, "x.png").key == samples.upload_sample(a, "renamed.png").key
    assert samples.upload_sample(a, "x.png").key != samples.upload_sample(b, "x.png").key
    assert samples.upload_sample(a, "x.png").key == f"upload:{samples.upload_sha256(a)}"


# ---------------------------------------------------------------------------------------------- figures
def test_top5_chart_keeps_numeric_class_names_as_categories():
    from dashboard.figures import topk_figure

    probabilities = np.array([0.0, 0.01, 0.02, 0.3, 0.0, 0.0, 0.0, 0.0, 0.6, 0.07])
    figure = topk_figure(probabilities, [str(d) for d in range(10)], true_label=9, target=8)
    bars = figure.data[0]
    assert figure.layout.yaxis.type == "category"
    assert list(bars.y) == ["8  (explained)", "3", "9  (true)", "2", "1"]
    assert list(bars.x) == pytest.approx([0.6, 0.3, 0.07, 0.02, 0.01])


def test_top5_chart_adds_the_true_class_with_its_rank():
    from dashboard.figures import topk_figure

    probabilities = np.array([0.5, 0.2, 0.1, 0.08, 0.07, 0.05])
    figure = topk_figure(probabilities, list("abcdef"), true_label=5)
    assert list(figure.data[0].y)[-1] == "f  (true, rank 6)"
    assert len(figure.data[0].y) == 6


def test_view_json_names_the_sample_the_prediction_and_the_view():
    from types import SimpleNamespace

    from dashboard.explorer_panels import view_payload

    loaded = SimpleNamespace(key="shapes", model_id="shapes:abc", class_names=CLASSES,
                             layer_shapes={"stem.0": (8, 32, 32)})
    sample = samples.Sample(key="test:shapes:7:test-00007", label=1, index=7, item_id="test-00007")
    view = ViewState(layer="stem.0", seed=3, sample=7, method="hirescam", target="true", opacity=0.4)
    payload = view_payload(loaded, sample, view, np.array([0.7, 0.2, 0.1]), 1, np.zeros((32, 32)), "http://x/?a=b")
    assert payload["sample"] == {"index": 7, "item_id": "test-00007", "true_class": 1, "true_label": "square"}
    assert payload["predicted"] == {"class": 0, "label": "circle", "probability": pytest.approx(0.7)}
    assert [entry["label"] for entry in payload["top5"]] == ["circle", "square", "triangle"]
    assert payload["target"] == {"mode": "true", "class": 1, "label": "square"}
    assert (payload["layer"], payload["layer_shape"], payload["map_shape"]) == ("stem.0", [8, 32, 32], [32, 32])
    assert (payload["method"], payload["method_title"], payload["link"]) == ("hirescam", "HiResCAM", "http://x/?a=b")
