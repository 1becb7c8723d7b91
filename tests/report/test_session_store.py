"""report.session_store: pinned findings kept on the server under the id in ``?report=<id>``, so they survive a page
reload and a shared link; edits from several sessions never lose a finding; bad ids never reach the file system."""

from __future__ import annotations

import dataclasses
import importlib
import io
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from report import ComparedModel, Finding, Pictures, Sample, TopClass, load_findings
from report.session_store import (
    MAX_FINDINGS,
    ReportFullError,
    ReportStoreError,
    SessionStore,
    StaleReportError,
    check_id,
    default_folder,
    finding_link,
    finding_query_params,
    parse_report_param,
)


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()


PICTURES = Pictures(original=png((10, 20, 30)), heatmap=png((200, 0, 0)), overlay=png((100, 10, 15)))


def finding(n: int, **changes) -> Finding:
    """A pinned view with pictures and top-5, as "Add to report" makes it."""
    base = Finding(workspace="shapes", model_id="shapes:fbe0561bf82a",
                   sample=Sample(index=n, item_id=f"test-{n:05d}", true_class=n % 8), layer="head.0",
                   note=f"finding {n}", created="2026-12-02T10:15:00+01:00",
                   top5=(TopClass(n % 8, "square", 0.75), TopClass(0, "circle", 0.2)), pictures=PICTURES)
    return dataclasses.replace(base, **changes)


@pytest.fixture
def store(tmp_path) -> SessionStore:
    return SessionStore(tmp_path / "reports")


def test_findings_survive_a_reload_and_the_file_is_a_findings_json(store, tmp_path):
    report_id = store.new_id()
    compared = finding(5, kind="compare", compare=ComparedModel(
        workspace="shapes-shortcut", layer="head.0", target_mode="true", target_class=5, pictures=PICTURES,
        top5=(TopClass(0, "circle", 0.9),)))
    upload = finding(0, sample=Sample(upload_sha256="ab" * 32, file_name="cat.png"), note="an upload")
    pinned = [finding(42), compared, upload]
    for item in pinned:
        store.append(report_id, item)
    reloaded = SessionStore(tmp_path / "reports")  # a new server session (or process) on the same folder
    assert reloaded.load(report_id) == pinned  # pictures, top-5, the second model: all of it
    assert reloaded.exists(report_id) and not reloaded.exists(store.new_id())
    assert load_findings(store.path(report_id)) == pinned  # gradcam report --findings <this file> works
    assert store.load(store.new_id()) == []  # an id with nothing pinned yet


def test_new_ids_are_random_url_safe_and_valid(store):
    ids = {store.new_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(check_id(i) == i and len(i) >= 22 for i in ids)


def test_reorder_edit_and_remove(store):
    report_id = store.new_id()
    store.save(report_id, [finding(n) for n in range(4)])
    assert [f.sample.index for f in store.move(report_id, 3, 0)] == [3, 0, 1, 2]
    assert [f.sample.index for f in store.move(report_id, 0, 3)] == [0, 1, 2, 3]
    edited = store.update_note(report_id, 2, "looks at the <marker>")
    assert [f.note for f in edited] == ["finding 0", "finding 1", "looks at the <marker>", "finding 3"]
    assert edited[2].pictures == PICTURES  # only the note changed
    assert [f.sample.index for f in store.remove(report_id, 1)] == [0, 2, 3]
    assert store.load(report_id) == edited[:1] + edited[2:]
    with pytest.raises(ReportStoreError, match="has no finding 4: it holds 3 findings"):
        store.remove(report_id, 3)
    with pytest.raises(ReportStoreError, match="cannot move finding 1 to position 9"):
        store.move(report_id, 0, 8)
    with pytest.raises(ReportStoreError, match="at most 10000 characters"):
        store.update_note(report_id, 0, "x" * 10_001)


def test_an_edit_follows_its_finding_when_another_tab_moved_it(store):
    report_id = store.new_id()
    shown = store.save(report_id, [finding(n) for n in range(3)])  # what this tab shows
    store.move(report_id, 0, 2)  # another tab: [1, 2, 0]
    after = store.update_note(report_id, 0, "about #0", expected=shown[0])
    assert [(f.sample.index, f.note) for f in after] == [(1, "finding 1"), (2, "finding 2"), (0, "about #0")]
    store.remove(report_id, 1, expected=shown[1])  # another tab removes finding 1 ...
    with pytest.raises(StaleReportError, match="changed or removed in another tab"):
        store.remove(report_id, 1, expected=shown[1])  # ... so this tab's click finds nothing to remove
    assert [f.sample.index for f in store.load(report_id)] == [2, 0]


def test_two_writers_in_one_server_lose_nothing(tmp_path):
    """Two sessions (threads, each with its own store object) pin at once on one report."""
    report_id = SessionStore(tmp_path).new_id()
    errors = []

    def pin(first: int) -> None:
        mine = SessionStore(tmp_path)
        try:
            for n in range(first, first + 25):
                mine.append(report_id, finding(n))
        except Exception as error:  # reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=pin, args=(start,)) for start in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    indices = [f.sample.index for f in SessionStore(tmp_path).load(report_id)]
    assert sorted(indices) == list(range(25)) + list(range(100, 125))
    assert [i for i in indices if i < 100] == list(range(25))  # each session's findings in its order


def pin_in_another_process(folder: Path, report_id: str, first: int) -> None:
    store = SessionStore(folder)
    for n in range(first, first + 15):
        store.append(report_id, finding(n))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork shares the imports (spawning re-imports torch)")
def test_two_server_processes_sharing_the_folder_lose_nothing(tmp_path):
    """Two processes (two servers on one cache folder) coordinate through the folder's lock file."""
    report_id = SessionStore(tmp_path).new_id()
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=pin_in_another_process, args=(tmp_path, report_id, start))
               for start in (0, 100)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
        assert writer.exitcode == 0
    indices = sorted(f.sample.index for f in SessionStore(tmp_path).load(report_id))
    assert indices == list(range(15)) + list(range(100, 115))


@pytest.mark.parametrize("bad", ["../../etc/passwd", "..%2F..%2Fsecret", "abc", "a" * 65, "abcdefghijklmnop/",
                                 "abcdefghijklmno.", "abcdefghijklmnop\x00", "abcdefghijklmnop\n", "", None, 12345678])
def test_bad_ids_are_refused_before_they_reach_the_file_system(store, tmp_path, bad):
    for action in (lambda: store.load(bad), lambda: store.append(bad, finding(1)), lambda: store.remove(bad, 0),
                   lambda: store.path(bad)):
        with pytest.raises(ReportStoreError, match="is not valid: expected 16 to 64 letters"):
            action()
    assert not any(p.suffix == ".json" for p in tmp_path.rglob("*"))
    report_id, warning = parse_report_param({"report": bad})
    assert report_id is None and (warning is None if bad in ("", None) else "not valid" in warning)


def test_the_report_param_of_a_link():
    good = "Ab-_" * 6
    assert parse_report_param({"report": good}) == (good, None)
    assert parse_report_param({"report": ["x", good]}) == (good, None)  # st.query_params.to_dict() lists
    assert parse_report_param({}) == (None, None)


def test_a_full_report_refuses_one_more_and_keeps_what_it_has(tmp_path):
    small = SessionStore(tmp_path, max_findings=3)
    report_id = small.new_id()
    small.save(report_id, [finding(n) for n in range(3)])
    with pytest.raises(ReportFullError, match="would hold 4 findings, more than the 3 a report keeps"):
        small.append(report_id, finding(3))
    assert len(small.load(report_id)) == 3
    assert SessionStore(tmp_path).max_findings == MAX_FINDINGS == 200


def test_old_reports_and_leftover_temp_files_are_pruned(store):
    old_id, used_id, fresh_id = store.new_id(), store.new_id(), store.new_id()
    for report_id in (old_id, used_id, fresh_id):
        store.append(report_id, finding(1))
    month_ago = time.time() - 31 * 86400
    temp = store.folder / f".{fresh_id}.json.x1y2.tmp"  # what a killed write leaves
    temp.write_text("[")
    for path in (store.path(old_id), store.path(used_id), temp):
        os.utime(path, (month_ago, month_ago))
    store.load(used_id)  # reading counts as use
    assert store.prune() == [old_id]
    assert not store.exists(old_id) and store.exists(used_id) and store.exists(fresh_id)
    assert not temp.exists() and (store.folder / "_lock").exists()
    assert store.prune(now=time.time() + 40 * 86400) == sorted([used_id, fresh_id])


def test_creating_ids_prunes_at_most_once_per_interval(tmp_path):
    store = SessionStore(tmp_path, prune_every_s=3600)
    report_id = store.new_id()
    store.append(report_id, finding(1))
    os.utime(store.path(report_id), (0, 0))
    store.new_id()  # pruned on the first new_id, not on this one
    assert store.exists(report_id)
    SessionStore(tmp_path, prune_every_s=3600).new_id()  # a new server process prunes at once
    assert not store.exists(report_id)


def test_a_damaged_file_is_reported_and_left_in_place(store):
    report_id = store.new_id()
    store.folder.mkdir(parents=True, exist_ok=True)
    store.path(report_id).write_text('[{"workspace": "shapes"}]')
    with pytest.raises(ReportStoreError, match=r"cannot be read .*field 'sample': missing.*left as it is"):
        store.load(report_id)
    with pytest.raises(ReportStoreError):
        store.append(report_id, finding(1))
    assert store.path(report_id).read_text() == '[{"workspace": "shapes"}]'


def test_the_store_folder_follows_the_cache_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADCAM_CACHE_DIR", str(tmp_path / "cache"))
    assert default_folder() == tmp_path / "cache" / "reports"
    monkeypatch.delenv("GRADCAM_CACHE_DIR")
    assert default_folder() == Path.home() / ".cache" / "gradcam-dashboard" / "reports"


# ---------------------------------------------------------------------------------- links to the views
def explorer_link_module():
    """The explorer's URL parser: ``dashboard.explorer_link`` after the dashboard's restructuring, else
    ``dashboard.view_state``."""
    for name in ("dashboard.explorer_link", "dashboard.view_state"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise AssertionError("no explorer URL module (dashboard.explorer_link or dashboard.view_state)")


def test_a_finding_reopens_its_view_in_the_explorer():
    link = explorer_link_module()
    options = link.ViewOptions(layers=["stem.0", "layer2.1.conv2", "head.0"], default_layer="head.0",
                               class_names=["circle", "square", "triangle"], num_test=2000)
    pinned = finding(42, layer="layer2.1.conv2", method="gradcampp", target_mode="class", target_class=2,
                     opacity=0.7, colormap="viridis", link="http://localhost:8501/?ws=shapes&seed=7&filter=class%3A1")
    params = finding_query_params(pinned)
    state, warnings = link.parse_query_params(params, options)
    assert warnings == []
    assert (state.sample, state.layer, state.method, state.target, state.opacity, state.colormap, state.seed,
            state.filter) == (42, "layer2.1.conv2", "gradcampp", 2, 0.7, "viridis", 7, "class:1")
    assert params == {"ws": "shapes", **link.to_query_params(state)}  # written as the explorer writes its URL
    assert finding_link(pinned, "http://host:8501/").startswith("http://host:8501/?ws=shapes&seed=7&filter=class")


def test_each_side_of_a_comparison_and_an_upload_have_their_link():
    compared = finding(9, kind="compare", target_mode="pred", link="", compare=ComparedModel(
        workspace="shapes-shortcut", layer="layer2.1.conv2", target_mode="true", target_class=1))
    first, second = finding_query_params(compared), finding_query_params(compared, side="compare")
    assert (first["ws"], first["layer"], first["target"], first["seed"], first["filter"]) == (
        "shapes", "head.0", "pred", "0", "all")
    assert (second["ws"], second["layer"], second["target"], second["sample"]) == (
        "shapes-shortcut", "layer2.1.conv2", "true", "9")
    with pytest.raises(ValueError, match="has no second model"):
        finding_query_params(finding(1), side="compare")
    upload = finding(0, sample=Sample(upload_sha256="cd" * 32, file_name="x.png"))
    assert finding_query_params(upload)["sample"] == "upload:" + "cd" * 6
