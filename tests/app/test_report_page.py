"""The demo flow's findings: "Add to report" on the explorer and the compare page, the Report page (order, notes,
removal, a reload), the way back to each view, and the downloaded HTML with every picture inline."""

from __future__ import annotations

import ast
import base64
import re
from pathlib import Path

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from dashboard.page_help import PAGE_HELP
from dashboard.report_view import ADD_LABEL, DOWNLOAD_HTML_LABEL, DOWNLOAD_JSON_LABEL
from dashboard.state import ExplorerState as E
from report import findings_from_json
from report.session_store import REPORT_PARAM, SessionStore
from tests.app.helpers import APP, RUN_TIMEOUT, assert_clean, report
from tests.report.html_check import ReportPage

SHORTCUT = "shapes-shortcut"
COMPARE, REPORT, EXPLORER = "pages/compare.py", "pages/report.py", "pages/explorer.py"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def report_folder(tmp_path, monkeypatch) -> Path:
    """Each test's reports in its own folder (report.session_store reads $GRADCAM_CACHE_DIR)."""
    monkeypatch.setenv("GRADCAM_CACHE_DIR", str(tmp_path))
    return tmp_path / "reports"


@pytest.fixture
def deferred_downloads(monkeypatch) -> dict:
    """file id -> the callable a deferred ``st.download_button`` registered (what a click would run)."""
    registered = {}
    original = MediaFileManager.add_deferred

    def recording(self, data_callable, *args, **kwargs):
        file_id = original(self, data_callable, *args, **kwargs)
        registered[file_id] = data_callable
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", recording)
    return registered


def open_app(params: dict, page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    at.query_params.update(params)
    for key, value in state.items():
        at.session_state[key] = value
    if page is not None:
        at.switch_page(page)
    return at.run()


def pin(at: AppTest, where: str, note: str) -> str:
    """Type a note and press "Add to report"; returns the toast."""
    at.text_input(key=f"report.pin_note.{where}").input(note).run()
    button = at.button(key=f"report.pin.{where}")
    assert button.label == ADD_LABEL
    button.click().run()
    assert_clean(at)
    return at.toast[-1].value


def listed(at: AppTest) -> list[str]:
    """The Report page's finding headings, in order."""
    return [m.value for m in at.markdown if re.match(r"\*\*\d+\.\*\*", m.value)]


def finding_button(at: AppTest, action: str, position: int):
    """The ``action`` button ("up", "down", "remove", "open.first", "open.compare") of the listed finding at
    ``position`` (0-based, as shown)."""
    return [b for b in at.button if b.key and b.key.startswith(f"report.{action}.")][position]


def stored(report_folder: Path, report_id: str):
    return SessionStore(report_folder).load(report_id)


def pin_three(report_folder: Path) -> tuple[AppTest, str]:
    """Two explorer views (two layers) and one comparison, all on the shortcut model."""
    at = open_app({"ws": SHORTCUT, "sample": "479"}, **{"compare.n": 20})
    assert_clean(at)
    assert "1 finding of shapes-shortcut" in pin(at, "explorer", "the marker, not the heart")
    report(at, layer="layer2.1.conv2")  # the viewer's Layer control reports a new layer
    assert "2 findings of shapes-shortcut" in pin(at, "explorer", "")
    at.switch_page(COMPARE).run()
    assert "3 findings of shapes-shortcut" in pin(at, "compare", "shapes looks at the heart")
    report_id = at.query_params[REPORT_PARAM]
    return at, report_id[0] if isinstance(report_id, list) else report_id


@pytest.mark.slow
def test_pinned_findings_are_listed_reordered_edited_removed_and_survive_a_reload(report_folder):
    at, report_id = pin_three(report_folder)
    findings = stored(report_folder, report_id)
    assert [(f.kind, f.layer, f.note) for f in findings] == [
        ("view", "head.0", "the marker, not the heart"), ("view", "layer2.1.conv2", ""),
        ("compare", "head.0", "shapes looks at the heart")]
    assert all(f.pictures is not None and len(f.top5) == 5 for f in findings)
    assert findings[2].compare.workspace == "shapes" and findings[2].compare.pictures is not None
    assert findings[0].sample.index == 479 and findings[2].sample.index == 479
    assert [(f.opacity, f.colormap, f.method) for f in findings] == [(0.5, "jet", "gradcam")] * 3

    at.switch_page(REPORT).run()
    assert_clean(at)
    headings = listed(at)
    assert len(headings) == 3 and "layer2.1.conv2" in headings[1] and "compared with **shapes**" in headings[2]
    assert len(at.image) == 3 + 3 + 6  # every pinned picture, both models' for the comparison

    finding_button(at, "up", 2).click().run()
    assert [f.kind for f in stored(report_folder, report_id)] == ["view", "compare", "view"]
    note_box = next(t for t in at.text_area if t.value == "the marker, not the heart")
    note_box.input("shapes-shortcut reads the marker").run()
    assert stored(report_folder, report_id)[0].note == "shapes-shortcut reads the marker"
    finding_button(at, "remove", 2).click().run()
    assert [(f.kind, f.layer) for f in stored(report_folder, report_id)] == [("view", "head.0"),
                                                                             ("compare", "head.0")]

    reloaded = open_app({"ws": SHORTCUT, REPORT_PARAM: report_id}, REPORT)
    assert_clean(reloaded)
    headings = listed(reloaded)
    assert len(headings) == 2 and "compared with" in headings[1]
    assert [t.value for t in reloaded.text_area] == ["shapes-shortcut reads the marker", "shapes looks at the heart"]


def test_download_is_the_self_contained_report_of_the_pinned_pictures(report_folder, deferred_downloads):
    at, report_id = pin_three(report_folder)
    at.switch_page(REPORT).run()
    buttons = {b.label: b for b in at.download_button}
    html_file = deferred_downloads[buttons[DOWNLOAD_HTML_LABEL].proto.deferred_file_id]
    html = html_file()
    findings = stored(report_folder, report_id)

    parsed = ReportPage(html)
    assert not parsed.problems and parsed.doctype.lower() == "doctype html"
    sources = [img.get("src") or "" for img in parsed.tags("img")]
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    assert not parsed.tags("script") and not parsed.tags("link") and not parsed.tags("iframe")
    inline = {base64.b64decode(src.split(",", 1)[1]) for src in sources}
    for finding in findings:  # the pictures the user saw, not recomputed ones
        sides = [finding.pictures] + ([finding.compare.pictures] if finding.compare else [])
        assert {data for pictures in sides for _, data in pictures.items()} <= inline
    assert "the marker, not the heart" in html and "shapes looks at the heart" in html
    again = findings_from_json(deferred_downloads[buttons[DOWNLOAD_JSON_LABEL].proto.deferred_file_id]())
    assert again == findings


def test_a_finding_reopens_its_view_in_the_explorer_and_other_workspaces_are_counted(report_folder):
    at, _ = pin_three(report_folder)
    at.selectbox(key="ws").select("shapes").run()
    at.switch_page(REPORT).run()
    assert_clean(at)
    assert not listed(at)
    assert any("3 findings of other workspaces (shapes-shortcut: 3)" in i.value for i in at.info)
    at.button(key="report.show.shapes-shortcut").click().run()
    assert len(listed(at)) == 3

    finding_button(at, "open.first", 1).click().run()  # the callback asks for the explorer; the next run switches to it
    assert_clean(at)
    assert at.session_state[E.layer] == "layer2.1.conv2" and at.session_state[E.sample] == 479
    assert at.query_params["layer"] in ("layer2.1.conv2", ["layer2.1.conv2"])

    at.switch_page(REPORT).run()
    finding_button(at, "open.compare", 0).click().run()  # the comparison's second model: the sidebar follows
    assert at.session_state["ws"] == "shapes" and at.session_state[E.sample] == 479


def test_a_bad_report_id_in_the_link_is_refused_with_a_warning(report_folder):
    at = open_app({"ws": SHORTCUT, REPORT_PARAM: "../../etc/passwd"}, REPORT)
    assert any("report id" in w.value for w in at.warning)
    assert REPORT_PARAM not in at.query_params
    assert any("No findings of shapes-shortcut yet" in i.value for i in at.info)
    assert not report_folder.exists() or not list(report_folder.glob("*.json"))


def test_every_page_script_shows_its_help_line():
    """One ``page_help.show(<name>)`` per page script, with a name that has a text or the page's own text."""
    shown = {}
    for script in sorted((ROOT / "pages").glob("*.py")):
        calls = [node for node in ast.walk(ast.parse(script.read_text())) if isinstance(node, ast.Call)
                 and ast.unparse(node.func) == "page_help.show"]
        assert len(calls) == 1, f"{script.name} should call page_help.show once, calls it {len(calls)} times"
        if len(calls[0].args) == 2:  # the page's own (plain, expert) text
            plain, _ = ast.literal_eval(calls[0].args[1])
            assert len(plain) < 200, script.name
            continue
        shown[script.name] = calls[0].args[0].value
    assert set(shown.values()) <= set(PAGE_HELP), shown
    assert {"explorer.py", "activations.py", "analysis.py", "compare.py", "report.py"} <= set(shown)
    assert all(len(plain) < 200 for plain, _ in PAGE_HELP.values())  # one line for a non-expert
