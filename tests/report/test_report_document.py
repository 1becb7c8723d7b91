"""The HTML report: well-formed, every picture inline, nothing that points outside the file, user text escaped."""

from __future__ import annotations

import base64
import dataclasses
import re

import numpy as np
import pytest

from report import ModelCard, Sample, build_report, render_report, summarise_model
from tests.report.conftest import NASTY_NOTE
from tests.report.html_check import ReportPage

DATA_PNG = "data:image/png;base64,"


@pytest.fixture(scope="module")
def report_html(shapes, shapes_engine, pinned) -> str:
    return build_report(shapes, pinned, title="Shapes <review> & more", engine=shapes_engine,
                        created="2026-12-01 10:00 UTC")


@pytest.fixture(scope="module")
def page(report_html) -> ReportPage:
    return ReportPage(report_html)


def _expected_pictures(findings) -> list[bytes]:
    pictures = []
    for finding in findings:
        for side in (finding, finding.compare):
            if side is not None:
                pictures += [data for _, data in side.pictures.items()]
    return pictures


def test_the_report_is_well_formed_html(page):
    assert page.problems == []
    assert page.doctype.lower() == "doctype html"
    assert page.tags("html")[0]["lang"] == "en" and page.tags("meta")[0] == {"charset": "utf-8"}
    assert page.text("finding").count("Test image #") == 3


def test_every_picture_is_inline_in_the_order_of_the_findings(page, pinned):
    sources = [img["src"] for img in page.tags("img")]
    assert all(src.startswith(DATA_PNG) for src in sources)
    assert [base64.b64decode(src[len(DATA_PNG):]) for src in sources] == _expected_pictures(pinned)
    assert len(sources) == 3 + 3 + 6  # the comparison shows both models
    assert all(img["alt"] and int(img["width"]) == 256 for img in page.tags("img"))


def test_nothing_points_outside_the_file(page, report_html):
    for tag, attributes in page.elements:
        for name in ("src", "href", "srcset", "action", "poster", "data"):
            value = attributes.get(name)
            assert value is None or value.startswith(DATA_PNG), f"<{tag} {name}={value[:60]!r}>"
    assert not {"script", "link", "iframe", "object", "embed", "base"} & {tag for tag, _ in page.elements}
    outside_pictures = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", report_html).lower()
    for loader in ("url(", "@import", "http:", "https:", "//", "@font-face"):
        assert loader not in outside_pictures, loader
    policy = next(m["content"] for m in page.tags("meta") if m.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in policy and "img-src data:" in policy


def test_a_note_stays_text(page, pinned):
    assert page.text("note") == NASTY_NOTE  # shown as written, markup and all
    assert not page.tags("script")
    assert len(page.tags("img")) == len(_expected_pictures(pinned))  # the note's <img src=x> is no element
    assert "Shapes <review> & more" in page.text() and page.tags("title")


def test_the_model_card(page, shapes):
    card = page.text("model")
    for fact in (shapes.title, shapes.model_id, "python", f"{shapes.test_accuracy:.1%} (recorded with the checkpoint)",
                 "2000", "2026-11-22", ", ".join(shapes.class_names)):
        assert fact in card, fact


def test_the_confusion_matrix_counts_every_test_image(page, shapes):
    cells = np.array([int(c) for c in page.cells_by_class["confusion"]]).reshape(8, 8)
    assert np.array_equal(cells, summarise_model(shapes).confusion)
    assert cells.sum() == 2000 and np.trace(cells) == round(shapes.test_accuracy * 2000)


def test_each_finding_says_what_it_shows(page, pinned, shapes):
    findings = page.text("finding")
    assert "Layer" in findings and "layer2.1.conv2" in findings and "Grad-CAM++" in findings
    true_name = shapes.class_names[pinned[1].sample.true_class]
    assert f"the true class, {true_name} ({pinned[1].sample.true_class})" in findings
    assert "shapes-shortcut" in findings and "Overlay, opacity 0.70" in findings and "Heatmap (viridis)" in findings
    top = pinned[0].top5[0]
    assert f"{top.name} (true, explained)" in page.text("top5") or f"{top.name} (explained)" in page.text("top5")
    assert f"{top.probability:.1%}" in page.text("top5")


def _card(class_names, confusion=None) -> ModelCard:
    return ModelCard(workspace="w", title="<i>My</i> model", description="", model_id="w:1", source="python",
                     class_names=tuple(class_names), test_images=10, confusion=confusion)


def test_names_from_a_workspace_and_an_upload_are_escaped(pinned):
    upload = dataclasses.replace(pinned[0], sample=Sample(upload_sha256="ab" * 32, file_name="<img src=x>.png"),
                                 method="eigencam", note="")
    names = ["<b>cat</b>", *(f"c{i}" for i in range(1, 8))]
    page = ReportPage(render_report("<u>T</u>", _card(names), [upload], "today", {"eigencam": "Eigen-CAM"},
                                    {"eigencam"}))
    assert page.problems == [] and not page.tags("b") and not page.tags("u") and not page.tags("i")
    assert len(page.tags("img")) == 3
    text = page.text()
    assert "<b>cat</b>" in text and "Uploaded image <img src=x>.png" in text and "<i>My</i> model" in text
    assert "not used: Eigen-CAM does not depend on the class" in text


def test_many_classes_list_the_most_frequent_confusions():
    names = [f"class-{i}" for i in range(40)]
    confusion = np.eye(40, dtype=np.int64) * 5
    confusion[3, 17] = 9
    confusion[8, 2] = 4
    page = ReportPage(render_report("T", _card(names, confusion), [], "today"))
    assert page.problems == []
    # the two confusions, not a 40 x 40 table
    assert page.cells_by_class["confusion"] == ["class-3", "class-17", "9", "class-8", "class-2", "4"]
