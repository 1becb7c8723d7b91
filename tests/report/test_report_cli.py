"""``gradcam report`` on the bundled shapes workspace: a hand-written findings.json becomes a report; bad input
gives exit code 2 and a message, and leaves --out as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import models
from cli.main import main
from tests.report.html_check import ReportPage

REPO = Path(__file__).resolve().parents[2]

HAND_WRITTEN = [
    {"workspace": "shapes", "sample": {"index": 42}, "layer": "head.0", "note": "looks at the <b>shape</b>"},
    {"workspace": "shapes", "sample": {"index": 7, "item_id": "test-00007"}, "layer": "layer2.1.conv2",
     "method": "gradcampp", "target": {"mode": "true"}, "opacity": 0.7, "colormap": "viridis"},
    {"workspace": "shapes", "sample": {"index": 1999}, "layer": "head.0", "method": "eigencam",
     "target": {"mode": "class", "class": 3}},
]


def _write(folder, findings) -> str:
    path = folder / "findings.json"
    path.write_text(findings if isinstance(findings, str) else json.dumps(findings))
    return str(path)


def test_a_hand_written_findings_file_becomes_a_report(tmp_path, capsys):
    out = tmp_path / "out" / "report.html"  # the folder is created
    code = main(["report", "--workspace", "shapes", "--findings", _write(tmp_path, HAND_WRITTEN), "--out", str(out),
                 "--title", "Shapes review", "--device", "cpu"])
    assert code == 0
    said = capsys.readouterr().out
    assert f"wrote {out}: 3 finding(s), 3 recomputed with shapes:" in said
    page = ReportPage(out.read_text(encoding="utf-8"))
    assert page.problems == []
    assert [img["src"][:22] for img in page.tags("img")] == ["data:image/png;base64,"] * 9
    assert "Shapes review" in page.text() and page.text("note") == "looks at the <b>shape</b>"
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # no temporary file left


@pytest.fixture
def opened_once(monkeypatch, shapes):
    """The CLI opens the session's shapes workspace instead of loading it again (the error paths below)."""
    real = models.load_workspace
    monkeypatch.setattr(models, "load_workspace", lambda name: shapes if name == "shapes" else real(name))


def _with(**changes):
    return [HAND_WRITTEN[0], {**HAND_WRITTEN[1], **changes}]


@pytest.mark.parametrize(("findings", "workspace", "says"), [
    (None, "shapes", "findings file '{tmp}/findings.json' does not exist"),
    ('[{"workspace": "shapes",]', "shapes", "{tmp}/findings.json is not valid JSON: Expecting property name"),
    (_with(layer="layer9.conv"), "shapes", "{tmp}/findings.json: finding 2 of 2, field 'layer': layer 'layer9.conv' "
                                           "is not in the model"),
    (_with(sample={"index": 2000}), "shapes", "finding 2 of 2, field 'sample.index': test image 2000 is out of range"),
    (_with(colourmap="jet"), "shapes", "field 'colourmap': unknown field (did you mean 'colormap'?)"),
    (HAND_WRITTEN, "shapez", "unknown workspace 'shapez'"),
    (HAND_WRITTEN, "{tmp}/missing.toml", "missing.toml"),
])
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, capsys, opened_once, findings, workspace,
                                                             says):
    path = _write(tmp_path, findings) if findings is not None else str(tmp_path / "findings.json")
    out = tmp_path / "report.html"
    out.write_text("the report of yesterday")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["report", "--workspace", workspace.format(tmp=tmp_path), "--findings", path, "--out", str(out),
                 "--device", "cpu"])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("gradcam report: error: ") and says.format(tmp=tmp_path) in error, error
    assert out.read_text() == "the report of yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_out_must_be_a_file(tmp_path, capsys):
    code = main(["report", "--workspace", "shapes", "--findings", _write(tmp_path, HAND_WRITTEN),
                 "--out", str(tmp_path)])
    assert code == 2 and "is a folder; give the path of the HTML file to write" in capsys.readouterr().err


def test_the_command_module_imports_no_torch():
    """``gradcam --help`` and every other subcommand import cli.report; torch loads only when a report is built."""
    code = "import argparse, sys, cli.report; cli.report.add_arguments(argparse.ArgumentParser()); " \
           "print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "False"
