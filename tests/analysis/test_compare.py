"""analysis.compare on the bundled pair: the shortcut story in numbers, the difference map, compatibility errors,
the geometry that puts two models' maps in one frame, and the finding the compare page pins."""

from __future__ import annotations

import base64
import hashlib
import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from torch import nn

from analysis.compare import (
    DEFAULT_SAMPLE,
    DIFFERENCE_LUT,
    IncompatibleModelsError,
    agreement,
    average_ranks,
    check_compatible,
    compare_image,
    default_image_source,
    energy_share,
    model_view_box,
    place_maps,
    spearman_rows,
)
from gradcam_core import CamEngine
from models import load_workspace
from models.transforms import ImageTransform

#: A heart of the shortcut test set whose marker stands for "circle": the honest model calls it a heart, the
#: shortcut model a circle.
HEART = 479
pytestmark = pytest.mark.usefixtures("one_torch_thread_per_module")  # small nets on a busy 2-core machine


@pytest.fixture(scope="module")
def honest():
    return load_workspace("shapes")


@pytest.fixture(scope="module")
def shortcut():
    return load_workspace("shapes-shortcut")


@pytest.fixture(scope="module")
def engines(honest, shortcut):
    return CamEngine(honest.model, device="cpu"), CamEngine(shortcut.model, device="cpu")


@pytest.fixture(scope="module")
def heart_view(honest, shortcut, engines):
    return compare_image(honest, shortcut, HEART, engine_a=engines[0], engine_b=engines[1])


@pytest.fixture(scope="module")
def sample(honest, shortcut, engines):
    """The compare page's default: DEFAULT_SAMPLE images, seed 0."""
    return agreement(honest, shortcut, engine_a=engines[0], engine_b=engines[1])


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------- the story
def test_on_the_same_heart_one_model_looks_at_the_heart_the_other_at_the_marker(heart_view, shortcut):
    view = heart_view
    assert view.sample.source == "b" and view.sample.true_name == "heart"  # default: the set with the marker
    marker_class = shortcut.test_set.marker_class(HEART)
    assert shortcut.class_names[marker_class] == "circle"
    assert view.a.predicted_name == "heart"
    assert view.b.predicted == marker_class

    # Energy per share of the image: the honest map crowds onto the object, the shortcut map onto the marker.
    def concentration(energy: float, area: float) -> float:
        return energy / area

    honest_object = concentration(view.a.energy_object, view.object_area)
    honest_marker = concentration(view.a.energy_marker, view.marker_area)
    shortcut_object = concentration(view.b.energy_object, view.object_area)
    shortcut_marker = concentration(view.b.energy_marker, view.marker_area)
    assert honest_object > 3 and honest_marker < 0.5, (honest_object, honest_marker)
    assert shortcut_marker > 3 and shortcut_object < 0.5, (shortcut_marker, shortcut_object)
    assert view.a.energy_object > 5 * view.b.energy_object
    assert view.b.energy_marker > 5 * view.a.energy_marker
    assert view.spearman < 0  # the two maps rank the pixels nearly oppositely
    text = " ".join(view.summary())
    assert "predicts heart" in text and "predicts circle" in text and "on the marker" in text


def test_over_the_seeded_sample_the_shortcut_model_looks_at_the_marker_several_times_more(sample):
    assert sample.n == DEFAULT_SAMPLE and sample.source == "b" and sample.same_split
    honest_marker, shortcut_marker = sample.energy_marker_mean
    honest_object, shortcut_object = sample.energy_object_mean
    assert shortcut_marker > 4 * honest_marker, (shortcut_marker, honest_marker)
    assert honest_object > 2 * shortcut_object, (honest_object, shortcut_object)
    accuracy_honest, accuracy_shortcut = sample.accuracy
    assert accuracy_honest > 0.85 and accuracy_shortcut < 0.4
    assert sample.agreement_rate < 0.4  # one reads shapes, the other markers
    assert -0.2 < sample.spearman_mean < 0.5
    assert sample.undefined_correlations == 0
    assert "same 2000 scenes" in sample.note and "marker" in sample.note


def test_agreement_per_image_numbers_are_compare_image_numbers(sample, honest, shortcut, engines):
    """One image's numbers are the same on the sample's table and on the single-image panel."""
    row = 3
    view = compare_image(honest, shortcut, int(sample.indices[row]), engine_a=engines[0], engine_b=engines[1])
    assert view.spearman == pytest.approx(sample.spearman[row], abs=1e-6)
    assert view.a.energy_marker == pytest.approx(sample.energy_marker_a[row], abs=1e-6)
    assert view.b.energy_object == pytest.approx(sample.energy_object_b[row], abs=1e-6)
    assert view.a.predicted == sample.pred_a[row] and view.b.predicted == sample.pred_b[row]
    table = sample.table()
    assert len(table["index"]) == sample.n and table["item_id"][row] == view.sample.item_id
    lines = sample.csv().splitlines()
    assert lines[0].startswith("index,item_id,true,pred_a") and len(lines) == sample.n + 1


def test_a_model_agrees_with_itself(honest, engines):
    same = agreement(honest, honest, n=24, seed=5, engine_a=engines[0], engine_b=engines[0], batch_size=10)
    assert same.n == 24 and same.source == "a"
    assert same.agreement_rate == 1.0
    assert same.spearman_mean == pytest.approx(1.0) and same.spearman_median == pytest.approx(1.0)
    np.testing.assert_array_equal(same.energy_object_a, same.energy_object_b)
    assert same.energy_marker_mean == (None, None)  # the honest test set has no marker
    again = agreement(honest, honest, n=24, seed=5, engine_a=engines[0], engine_b=engines[0])
    np.testing.assert_array_equal(again.indices, same.indices)  # the seed fixes the sample
    other = agreement(honest, honest, n=24, seed=6, engine_a=engines[0], engine_b=engines[0])
    assert not np.array_equal(other.indices, same.indices)


def test_progress_is_reported_after_each_batch(honest, engines):
    seen = []
    agreement(honest, honest, n=10, batch_size=4, engine_a=engines[0], engine_b=engines[0],
              progress=lambda fraction, message: seen.append((fraction, message)))
    assert [f for f, _ in seen] == pytest.approx([0.4, 0.8, 1.0])
    assert seen[-1][1] == "10 of 10 images"


# ------------------------------------------------------------------------------- maps and pictures
def test_difference_is_a_minus_b_and_drawn_red_where_a_is_higher(heart_view):
    view = heart_view
    np.testing.assert_array_equal(view.difference, view.a.shown_map - view.b.shown_map)
    assert view.image.shape == (256, 256, 3) and view.a.shown_map.shape == (256, 256)  # 64 px enlarged 4×
    assert view.difference.min() < -0.5 and view.difference.max() > 0.5
    picture = view.difference_picture(opacity=1.0)
    where_a = np.unravel_index(np.argmax(view.difference), view.difference.shape)
    where_b = np.unravel_index(np.argmin(view.difference), view.difference.shape)
    assert picture[where_a][0] > 200 and picture[where_a][2] < 80  # red
    assert picture[where_b][2] > 200 and picture[where_b][0] < 80  # blue
    original, heat, blended = view.pictures("b", opacity=0.5, colormap="jet")
    assert original is view.image and heat.shape == blended.shape == (256, 256, 3)
    assert view.a.cam.shape == (8, 8) and view.a.layer == "head.0" == view.b.layer


def test_difference_colormap_is_matplotlibs_bwr():
    matplotlib = pytest.importorskip("matplotlib")
    reference = np.round(matplotlib.colormaps["bwr"](np.linspace(0, 1, 256))[:, :3] * 255)
    assert np.abs(DIFFERENCE_LUT.astype(int) - reference).max() <= 1
    assert tuple(DIFFERENCE_LUT[0]) == (0, 0, 255) and tuple(DIFFERENCE_LUT[-1]) == (255, 0, 0)


def test_spearman_matches_scipy_with_ties_and_is_nan_for_a_constant_map():
    from scipy.stats import rankdata, spearmanr

    rng = np.random.default_rng(0)
    x = np.round(rng.random((4, 200)) * 3) / 3  # many ties, like ReLU'd maps
    y = np.round(rng.random((4, 200)) * 5)
    x[3] = 0.0
    np.testing.assert_allclose(average_ranks(x), rankdata(x, axis=1))
    rho = spearman_rows(x, y)
    np.testing.assert_allclose(rho[:3], [spearmanr(x[i], y[i]).statistic for i in range(3)], atol=1e-12)
    assert np.isnan(rho[3])
    assert spearman_rows(y[:1], y[:1])[0] == pytest.approx(1.0)


def test_energy_share_by_hand():
    cam = np.array([[1.0, 3.0], [0.0, 0.0]])
    assert energy_share(cam, np.array([[False, True], [False, False]])) == 0.75
    assert np.isnan(energy_share(cam, None)) and np.isnan(energy_share(np.zeros((2, 2)), cam > 0))


def test_the_crop_box_is_where_the_transform_takes_its_pixels_from():
    width, height = 120, 80
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    coded = np.stack([cols * 2, rows * 3, np.zeros_like(cols)], axis=-1).astype(np.uint8)  # pixel says where it is
    transform = ImageTransform((48, 48), resize=60, interpolation="nearest")
    seen = np.asarray(transform.resized(Image.fromarray(coded))).astype(int)
    left, top, right, bottom = model_view_box(transform, width, height)
    assert seen[0, 0, 0] / 2 == pytest.approx(left, abs=1.5) and seen[0, 0, 1] / 3 == pytest.approx(top, abs=1.5)
    assert seen[-1, -1, 0] / 2 == pytest.approx(right - 1, abs=1.5)
    assert seen[-1, -1, 1] / 3 == pytest.approx(bottom - 1, abs=1.5)
    placed = place_maps(np.ones((1, 6, 6), np.float32), (left, top, right, bottom), (width, height), (80, 120))[0]
    assert placed[round(top):round(bottom), round(left):round(right)].min() == 1.0
    assert placed.sum() == (round(bottom) - round(top)) * (round(right) - round(left))
    assert model_view_box(ImageTransform((48, 48)), width, height) == (0.0, 0.0, width, height)  # no crop


# ------------------------------------------------------------------------------------ compatibility
def test_models_with_other_classes_and_sizes_compare_by_prediction(honest, engines):
    digits = load_workspace("digits")
    compatibility = check_compatible(honest, digits)
    assert not compatibility.same_classes and not compatibility.same_input_size
    notes = " ".join(compatibility.notes)
    assert "compared by prediction only" in notes and "64×64" in notes and "32×32" in notes
    view = compare_image(honest, digits, 7, engine_a=engines[0], image_from="a")
    assert view.a.shown_map.shape == view.b.shown_map.shape == view.difference.shape  # one frame for both
    assert view.a.class_names != view.b.class_names and view.b.target_mode == "pred"
    with pytest.raises(ValueError, match="different classes, so a class index"):
        compare_image(honest, digits, 7, target=3, engine_a=engines[0])
    with pytest.raises(ValueError, match=r"model B \(digits\) has no class"):
        compare_image(honest, digits, 7, target="true", engine_a=engines[0], image_from="a")
    assert agreement(honest, digits, n=4, image_from="a", engine_a=engines[0]).agreement_rate is None


def test_models_that_take_other_channels_are_refused(honest):
    gray = SimpleNamespace(name="xray", model=nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()),
                           class_names=list(honest.class_names), input_size=(64, 64), transform=honest.transform)
    with pytest.raises(IncompatibleModelsError, match=r"model A \(shapes\) takes 3-channel .* B \(xray\) takes 1"):
        check_compatible(honest, gray)


def test_bad_requests_name_the_value(honest, shortcut, engines):
    with pytest.raises(IndexError, match="out of range: the test set of 'shapes-shortcut' has 2000"):
        compare_image(honest, shortcut, 2000, engine_a=engines[0], engine_b=engines[1])
    with pytest.raises(ValueError, match="image_from 'c'"):
        compare_image(honest, shortcut, 1, image_from="c")
    with pytest.raises(ValueError, match=r"model B \(shapes-shortcut\).*'head.O'"):
        compare_image(honest, shortcut, 1, layer_b="head.O", engine_a=engines[0], engine_b=engines[1])
    with pytest.raises(ValueError, match="target 'best'"):
        compare_image(honest, shortcut, 1, target="best", engine_a=engines[0], engine_b=engines[1])
    with pytest.raises(TypeError, match=r"test index .* bytes or a PIL image, got str"):
        compare_image(honest, shortcut, "1", engine_a=engines[0], engine_b=engines[1])


def test_default_image_source_prefers_the_set_the_shortcut_reads(honest, shortcut):
    assert default_image_source(honest, shortcut) == "b" and default_image_source(shortcut, honest) == "a"
    assert default_image_source(honest, honest) == "a"


# ------------------------------------------------------------------------------ uploads and findings
def test_an_upload_is_compared_without_a_mask(honest, shortcut, engines):
    data = png(np.asarray(honest.test_set.image(3)))
    view = compare_image(honest, shortcut, data, file_name="three.png", engine_a=engines[0], engine_b=engines[1])
    assert view.sample.source is None and view.sample.upload_sha256 == hashlib.sha256(data).hexdigest()
    assert np.isnan(view.a.energy_object) and np.isnan(view.object_area)
    assert "no mask" in view.summary()[0]
    with pytest.raises(ValueError, match="target 'true' needs a labelled test image"):
        compare_image(honest, shortcut, data, target="true", engine_a=engines[0], engine_b=engines[1])


def test_the_pinned_comparison_is_a_valid_finding_of_the_set_that_holds_the_image(heart_view, honest, shortcut):
    import report

    finding = report.pin_view(heart_view.finding_payload(opacity=0.6, colormap="viridis"), note="marker!")
    assert finding.kind == "compare" and finding.note == "marker!" and finding.complete
    assert finding.workspace == "shapes-shortcut" and finding.compare.workspace == "shapes"  # the image's set first
    assert finding.sample.index == HEART and finding.sample.true_class == 7
    assert finding.target_class == heart_view.b.predicted and finding.compare.target_class == heart_view.a.predicted
    assert finding.top5[0].name == "circle" and finding.compare.top5[0].name == "heart"
    report.check_finding(finding, shortcut)  # its fields fit the model whose report it goes in
    shown = np.asarray(Image.open(io.BytesIO(finding.pictures.overlay)))
    np.testing.assert_array_equal(shown, heart_view.pictures("b", 0.6, "viridis")[2])
    assert base64.b64decode(heart_view.finding_payload()["compare"]["pictures"]["heatmap"])[:4] == b"\x89PNG"
