"""Findings against their model: recomputed pictures are the engine's, pinned ones are kept, and a finding that
does not fit the model is refused with its field named."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gradcam_core import colorize, denormalise, overlay, softmax, upsample
from models.datasets import ArrayImageSet
from report import ComparedModel, Finding, FindingError, Sample, build_report, complete_findings, summarise_model
from report.compute import confusion_matrix, decode_png
from tests.report.conftest import hand_written


def test_recomputed_pictures_and_top5_are_the_engines(shapes, shapes_engine, pinned):
    finding = pinned[1]  # test image 7, layer2.1.conv2, Grad-CAM++, the true class, opacity 0.7, viridis
    image = shapes.test_set.tensors([7])
    label = int(shapes.test_set.label(7))
    result = shapes_engine.explain(image, layers=["layer2.1.conv2"], targets=label, methods=("gradcampp",))
    cam = result.cams["gradcampp"]["layer2.1.conv2"][0]
    # 64 px shown at 256 px (the explorer's factor 4), every input pixel a 4x4 block
    shown = np.kron(denormalise(image[0], shapes.mean, shapes.std), np.ones((4, 4, 1), np.uint8))
    cam_shown = upsample(cam, (256, 256))
    assert np.array_equal(decode_png(finding.pictures.original), shown)
    assert np.array_equal(decode_png(finding.pictures.heatmap), colorize(cam_shown, "viridis"))
    assert np.array_equal(decode_png(finding.pictures.overlay), overlay(shown, cam_shown, 0.7, "viridis"))

    probabilities = softmax(result.logits[0])
    best = np.argsort(-probabilities)[:5]
    assert [t.index for t in finding.top5] == best.tolist()
    assert [t.name for t in finding.top5] == [shapes.class_names[c] for c in best]
    assert np.allclose([t.probability for t in finding.top5], probabilities[best])
    assert finding.target_class == label and finding.model_id == shapes.model_id
    assert finding.sample == Sample(index=7, item_id="test-00007", true_class=label)


def test_the_predicted_class_is_explained_by_default(shapes, pinned):
    first = pinned[0]
    assert first.target_mode == "pred" and first.target_class == first.top5[0].index


def test_a_comparison_explains_the_same_image_with_the_second_model(shapes, shortcut, pinned):
    other = pinned[2].compare
    assert other.model_id == shortcut.model_id != pinned[2].model_id
    expected = softmax(shortcut.model(shortcut.transform(shapes.test_set.image(5))[None]).detach().numpy()[0])
    assert [t.index for t in other.top5] == np.argsort(-expected)[:5].tolist()
    assert decode_png(other.pictures.original).shape == (256, 256, 3)
    assert other.pictures.heatmap != pinned[2].pictures.heatmap  # another model looks elsewhere


def test_pinned_pictures_are_kept_as_the_user_saw_them(shapes, shapes_engine, pinned):
    other_overlay = pinned[1].pictures.overlay
    seen = dataclasses.replace(pinned[0], pictures=dataclasses.replace(pinned[0].pictures, overlay=other_overlay))
    [kept] = complete_findings([seen], shapes, engine=shapes_engine)
    assert kept == seen


def test_pictures_without_top5_get_the_top5_and_keep_the_pictures(shapes, shapes_engine, pinned):
    partial = dataclasses.replace(pinned[1], top5=(), pictures=pinned[0].pictures)
    [completed] = complete_findings([partial], shapes, engine=shapes_engine)
    assert completed.pictures == pinned[0].pictures and completed.top5 == pinned[1].top5


def _bad(field: str, value) -> Finding:
    return dataclasses.replace(hand_written()[0], **{field: value})


@pytest.mark.parametrize(("finding", "field", "says"), [
    (_bad("layer", "head.9"), "layer", "layer 'head.9' is not in the model (ShapesResNet) (did you mean 'head.0'"),
    (_bad("layer", "fc"), "layer", "layer 'fc' is a Linear that gives an output of shape (1, 8), which is not a "
                                   "feature map"),
    (_bad("sample", Sample(index=2000)), "sample.index", "test image 2000 is out of range: the test set of 'shapes' "
                                                         "has 2000 images; expected an index from 0 to 1999"),
    (_bad("sample", Sample(index=3, item_id="test-00004")), "sample.item_id", "the test set changed"),
    (_bad("sample", Sample(index=3, true_class=7)), "sample.true_class", "but test image 3 is of class"),
    (_bad("method", "gradcam++"), "method", "got 'gradcam++'; expected one of gradcam, gradcampp"),
    (_bad("colormap", "rainbow"), "colormap", "got 'rainbow'; expected one of"),
    (dataclasses.replace(hand_written()[0], target_mode="class", target_class=8), "target.class",
     "class 8 is out of range: the model has 8 classes"),
    (_bad("model_id", "shapes:000000000000"), "model_id", "is not the model of workspace 'shapes'"),
    (_bad("workspace", "digits"), "workspace", "'digits' is not the workspace 'shapes'"),
    (_bad("sample", Sample(upload_sha256="ab" * 32, file_name="cat.png")), "pictures",
     "missing for uploaded image cat.png"),
    (dataclasses.replace(hand_written()[2], compare=ComparedModel(workspace="shapes-shortcut", layer="stem.9")),
     "compare.layer", "layer 'stem.9' is not in the model"),
])
def test_a_finding_that_does_not_fit_the_model_is_refused(shapes, shortcut, shapes_engine, finding, field, says):
    good = hand_written()[1]
    with pytest.raises(FindingError) as error:
        complete_findings([good, finding], shapes, engine=shapes_engine,
                          load_workspace={"shapes-shortcut": shortcut}.__getitem__)
    message = str(error.value)
    assert message.startswith(f"finding 2 of 2, field '{field}': "), message
    assert says in message


def test_a_finding_may_name_the_workspace_by_its_toml_path(shapes, shapes_engine):
    finding = dataclasses.replace(hand_written()[1], workspace=str(shapes.toml_path))
    [completed] = complete_findings([finding], shapes, engine=shapes_engine)
    assert completed.complete


def test_summary_from_shipped_logits_matches_the_recorded_accuracy(shapes):
    summary = summarise_model(shapes)
    assert summary.confusion.shape == (8, 8) and summary.confusion.sum() == len(shapes.test_set)
    assert np.array_equal(summary.confusion.sum(axis=1), np.bincount(shapes.test_set.labels, minlength=8))
    assert np.trace(summary.confusion) / 2000 == pytest.approx(shapes.test_accuracy, abs=5e-4)
    assert summary.predictions_from == "the logits shipped with the checkpoint"


def test_summary_from_the_callers_predictions(shapes):
    labels = shapes.test_set.labels
    wrong_first = labels.copy()
    wrong_first[0] = (labels[0] + 1) % 8
    confusion = summarise_model(shapes, predicted=wrong_first).confusion
    assert np.trace(confusion) == 1999 and confusion[labels[0], (labels[0] + 1) % 8] == 1
    with pytest.raises(ValueError, match="one predicted class per test image"):
        summarise_model(shapes, predicted=labels[:10])


def test_summary_without_logits_classifies_the_test_set(shapes, shapes_engine):
    """A workspace with neither recorded accuracy nor shipped logits (your own model): one pass over its images."""
    first = shapes.test_set.images[:150]  # enough for two batches of 128
    small = ArrayImageSet(first, shapes.test_set.labels[:150], shapes.transform)
    own = dataclasses.replace(shapes, test_set_factory=lambda: small, test_logits=None, test_accuracy=None)
    summary = summarise_model(own, engine=shapes_engine)
    assert summary.predictions_from == "classifying the 150 test images"
    assert summary.recorded_accuracy is None
    shipped = shapes.test_logits[:150].argmax(axis=1)
    assert np.abs(summary.confusion - confusion_matrix(small.labels, shipped, 8)).sum() <= 2  # float near-ties


class _NoModel:
    def __getattr__(self, name):
        raise AssertionError(f"the engine was used ({name}) for findings that carry their pictures")


def test_pinned_findings_build_without_running_the_model(shapes, pinned):
    """The dashboard's "Download report (HTML)": pictures pinned, logits shipped, so no forward pass at all."""
    html = build_report(shapes, pinned, engine=_NoModel(), load_workspace=_NoModel().__getattr__)
    assert html.count("data:image/png;base64,") == 12
