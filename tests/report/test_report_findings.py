"""findings.json: the round trip, a view.json read as a finding, and errors that name the finding and the field."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os
from datetime import datetime

import pytest

from report import (
    Finding,
    FindingError,
    Sample,
    findings_from_json,
    findings_to_json,
    load_findings,
    pin_comparison,
    pin_view,
    save_findings,
)
from report.findings import write_atomically

SHA = "ab" * 32


def test_round_trip_keeps_every_field_and_picture(pinned):
    finding = pinned[2]
    assert finding.kind == "compare" and finding.compare.pictures is not None  # the richest kind of finding
    text = findings_to_json(pinned)
    again = findings_from_json(text)
    assert again == pinned
    assert again[0].note == pinned[0].note and again[2].compare.pictures.overlay == finding.compare.pictures.overlay
    # the file says what a person needs to read it
    first = json.loads(text)[0]
    assert first["sample"] == {"index": 42, "item_id": "test-00042", "true_class": pinned[0].sample.true_class}
    assert first["target"] == {"mode": "pred", "class": pinned[0].target_class}
    assert base64.b64decode(first["pictures"]["overlay"]) == pinned[0].pictures.overlay
    assert set(first["top5"][0]) == {"class", "label", "probability"}


def test_without_pictures_the_file_leaves_them_out_and_reads_back_as_recomputable(pinned):
    text = findings_to_json(pinned, pictures=False)
    assert "pictures" not in text
    again = findings_from_json(text)
    assert [f.pictures for f in again] == [None, None, None] and again[2].compare.pictures is None
    assert [f.top5 for f in again] == [f.top5 for f in pinned]
    assert not any(f.complete for f in again) and all(f.complete for f in pinned)


def test_save_and_load(tmp_path, pinned):
    path = tmp_path / "findings.json"
    save_findings(pinned[:2], path)
    assert load_findings(path) == pinned[:2]


def test_the_explorers_view_json_is_a_finding():
    view_json = {  # as dashboard.explorer.view_payload writes it
        "workspace": "shapes", "model_id": "shapes:fbe0561bf82a",
        "sample": {"index": 12, "item_id": "test-00012", "true_class": 3, "true_label": "star"},
        "predicted": {"class": 3, "label": "star", "probability": 0.9},
        "top5": [{"class": 3, "label": "star", "probability": 0.9},
                 {"class": 0, "label": "circle", "probability": 0.1}],
        "layer": "head.0", "layer_shape": [128, 8, 8], "map_shape": [8, 8], "method": "layercam",
        "method_title": "LayerCAM", "target": {"mode": "true", "class": 3, "label": "star"}, "opacity": 0.35,
        "colormap": "turbo", "seed": 0, "filter": "all", "link": "http://localhost:8501/?ws=shapes&sample=12",
    }
    [finding] = findings_from_json(json.dumps([view_json]))
    assert finding.sample == Sample(index=12, item_id="test-00012", true_class=3)
    assert (finding.layer, finding.method) == ("head.0", "layercam")
    assert (finding.target_mode, finding.target_class) == ("true", 3)
    assert (finding.opacity, finding.colormap, finding.model_id) == (0.35, "turbo", "shapes:fbe0561bf82a")
    assert [t.name for t in finding.top5] == ["star", "circle"] and finding.pictures is None
    assert finding.link.endswith("sample=12") and finding.kind == "view"


def test_an_upload_finding_round_trips():
    finding = Finding(workspace="shapes", sample=Sample(upload_sha256=SHA, file_name="my <cat>.png"), layer="head.0",
                      target_mode="class", target_class=2)
    assert findings_from_json(findings_to_json([finding])) == [finding]


GOOD = {"workspace": "shapes", "sample": {"index": 4}, "layer": "head.0"}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 20).decode()


def _with(path: str, value):
    """GOOD with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(("finding", "field", "says"), [
    (_with("sample", ...), "sample", "missing"),
    (_with("layer", ...), "layer", "missing"),
    (_with("layer", 3), "layer", "got number 3"),
    (_with("sample.index", -1), "sample.index", "got -1"),
    (_with("sample.index", 2.5), "sample.index", "got 2.5"),
    (_with("sample.index", True), "sample.index", "got True"),
    (_with("sample.upload_sha256", SHA), "sample", "both 'index' and 'upload_sha256'"),
    ({**GOOD, "sample": {}}, "sample", "neither"),
    ({**GOOD, "sample": {"upload_sha256": "abc"}}, "sample.upload_sha256", "64 hex"),
    ({**GOOD, "sample": {"upload_sha256": SHA}, "target": {"mode": "true"}}, "target.mode", "no true class"),
    (_with("opacity", 1.5), "opacity", "between 0 and 1"),
    (_with("target", {"mode": "predicted"}), "target.mode", "'predicted'"),
    (_with("target", {"mode": "class"}), "target.class", "missing"),
    (_with("target", {"mode": "class", "class": -2}), "target.class", "got -2"),
    (_with("colourmap", "jet"), "colourmap", "did you mean 'colormap'"),
    (_with("kind", "diff"), "kind", "'diff'"),
    (_with("kind", "compare"), "compare", "missing for kind 'compare'"),
    (_with("compare", {"workspace": "shapes-shortcut", "layer": "head.0"}), "compare", "given for kind 'view'"),
    (_with("created", "yesterday"), "created", "ISO 8601"),
    (_with("top5", [{"class": 1, "label": "x", "probability": 2}]), "top5[0].probability", "in [0, 1]"),
    (_with("pictures", {"original": PNG, "heatmap": PNG}), "pictures.overlay", "missing"),
    (_with("pictures", {"original": PNG, "heatmap": PNG, "overlay": "%%%"}), "pictures.overlay", "not valid base64"),
    (_with("pictures", {"original": PNG, "heatmap": PNG, "overlay": base64.b64encode(b"GIF89a").decode()}),
     "pictures.overlay", "not a PNG"),
])
def test_a_bad_finding_is_named_with_its_field(finding, field, says):
    text = json.dumps([GOOD, finding, GOOD])
    with pytest.raises(FindingError) as error:
        findings_from_json(text, source="mine.json")
    message = str(error.value)
    assert message.startswith(f"mine.json: finding 2 of 3, field '{field}': "), message
    assert says in message and "expected" in message


@pytest.mark.parametrize(("text", "says"), [
    ('[{"workspace": "shapes",}]', "not valid JSON: Expecting property name enclosed in double quotes at line 1"),
    (json.dumps(GOOD), "holds a JSON object; expected a list of findings"),
    (json.dumps(["head.0"]), "finding 1 of 1: got string 'head.0'; expected a JSON object"),
])
def test_a_bad_file_says_what_is_wrong(text, says):
    with pytest.raises(FindingError, match=None) as error:
        findings_from_json(text, source="mine.json")
    assert says in str(error.value)


def test_a_missing_findings_file_is_named(tmp_path):
    with pytest.raises(FindingError, match=r"findings file '.*nope\.json' does not exist"):
        load_findings(tmp_path / "nope.json")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old")

    def refuse(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        write_atomically(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_pinning_a_view_and_a_comparison(pinned):
    compared = pinned[2]
    view = {**compared.to_dict(pictures=False), "kind": "view", "compare": None, "note": "", "created": ""}
    first = pin_view(view, pictures=compared.pictures, note="the same heart, two models")
    assert first.pictures == compared.pictures and first.note == "the same heart, two models"
    assert datetime.fromisoformat(first.created).tzinfo is not None
    other = compared.compare
    second = Finding(workspace=other.workspace, model_id=other.model_id, sample=compared.sample, layer=other.layer,
                     target_mode=other.target_mode, target_class=other.target_class, top5=other.top5,
                     pictures=other.pictures)
    both = pin_comparison(first, second)
    assert both == dataclasses.replace(compared, note=first.note, created=first.created)
    with pytest.raises(ValueError, match="one image with one method"):
        pin_comparison(first, dataclasses.replace(second, method="eigencam"))
