"""Findings in the dashboard: the "Add to report" button (explorer and "Compare models") and the Report page.

The findings live in ``report.session_store`` under the session's report id (``shell.report_id``, carried in the
URL as ``?report=``), so they survive a reload and a page switch. A report covers one workspace's model: the page
shows the findings pinned on the sidebar's workspace and says how many other workspaces have. "Download report
(HTML)" builds the self-contained file only when clicked (deferred download), from the pinned pictures and the
dashboard's cached predictions: it never reclassifies the test split.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from urllib.parse import urlencode, urlsplit

import numpy as np
import streamlit as st

from dashboard.predictions import classify_test_split
from dashboard.samples import open_test_image, open_upload
from dashboard.shell import WORKSPACE_KEY, report_id
from dashboard.state import ExplorerState as E
from dashboard.state import ReportState as R
from dashboard.workspaces import LoadedWorkspace, workspace_choices, workspace_label
from gradcam_core import CAM_METHODS
from report import (
    Finding,
    FindingError,
    build_report,
    check_finding,
    findings_to_json,
    pictures_from_arrays,
    pin_view,
    view_pictures,
)
from report.session_store import (
    MAX_NOTE_CHARS,
    REPORT_PARAM,
    ReportStoreError,
    default_store,
    finding_query_params,
)

ADD_LABEL = "Add to report"
DOWNLOAD_HTML_LABEL = "Download report (HTML)"
DOWNLOAD_JSON_LABEL = "Download findings (JSON)"
EXPLORER_PAGE = "pages/explorer.py"


# ---------------------------------------------------------------------------------------------- pinning
def pin(finding: Finding) -> str:
    """Append ``finding`` to the session's report (made on the first pin); returns the confirmation with the count,
    or why the store refused it."""
    try:
        findings = default_store().append(report_id(create=True), finding)
    except ReportStoreError as error:
        return f"Not added to the report: {error}"
    same_model = sum(f.model_id == finding.model_id for f in findings)
    others = f" ({len(findings)} in all)" if len(findings) != same_model else ""
    return (f"Added to the report: {same_model} finding{'s' if same_model != 1 else ''} of "
            f"{workspace_label(finding.workspace)}{others}")


def _pin_clicked(name: str, note_key: str, make_finding: Callable[[str], Finding]) -> None:
    """The button's callback. Its toast is shown by the next ``render_pin_controls`` (the explorer's controls live in
    a fragment, whose callbacks must not draw)."""
    try:
        message = pin(make_finding(str(st.session_state.get(note_key) or "")))
    except (FindingError, ValueError) as error:  # a view the report format cannot hold: say so, pin nothing
        message = f"Not added to the report: {error}"
    if message.startswith("Added"):
        st.session_state[note_key] = ""
    st.session_state[f"report._pinned.{name}"] = message


def render_pin_controls(name: str, make_finding: Callable[[str], Finding]) -> None:
    """An optional note and the "Add to report" button; ``make_finding(note)`` runs only when it is clicked."""
    message = st.session_state.pop(f"report._pinned.{name}", None)
    if message:
        st.toast(message, icon=":material/bookmark_added:" if message.startswith("Added") else ":material/error:",
                 duration="short" if message.startswith("Added") else "long")
    note_key = f"report.pin_note.{name}"
    st.text_input("Note for the report", key=note_key, max_chars=MAX_NOTE_CHARS,
                  placeholder="Optional: what this view shows")
    st.button(ADD_LABEL, key=f"report.pin.{name}", on_click=_pin_clicked, args=(name, note_key, make_finding),
              width="stretch", help="Pin this view, with its pictures, top-5 and your note, to the report (the "
                                    "Report page lists, orders and downloads the findings)")


def _shown_pixels(loaded: LoadedWorkspace, sample: Mapping) -> np.ndarray:
    """The explorer's input picture (as the model sees it) of a view's sample: cached, no engine call."""
    if sample.get("upload_sha256"):
        upload = E.upload.get()
        if upload is None or upload.sha256 != sample["upload_sha256"]:
            raise ValueError("the uploaded image of this view is no longer in this session; upload it again")
        return open_upload(loaded, upload)[1].pixels
    return open_test_image(loaded, int(sample["index"]))[1].pixels


def explorer_finding(loaded: LoadedWorkspace, payload: Mapping, cam: np.ndarray, note: str) -> Finding:
    """The explorer's view (``explorer_panels.view_payload``) with the pictures it draws, as a finding."""
    pixels = _shown_pixels(loaded, payload["sample"])
    pictures = pictures_from_arrays(*view_pictures(pixels, cam, payload["opacity"], payload["colormap"]))
    return pin_view(payload, pictures, note)


def render_add_to_report(loaded: LoadedWorkspace, payload: Mapping, cam: np.ndarray) -> None:
    """The explorer's hook (end of its downloads column): pin the view on screen with an optional note."""
    st.markdown("**Report**")
    render_pin_controls("explorer", lambda note: explorer_finding(loaded, payload, cam, note))


# ------------------------------------------------------------------------------------- the Report page
def page_url(params: Mapping[str, str] | None = None, path: str = "/") -> str:
    """The dashboard's address (from the browser's URL) at ``path`` (default the explorer, the first page), with
    ``params``; ``path=None``: this page's own address."""
    url = urlsplit(st.context.url or "http://localhost:8501/")
    return f"{url.scheme}://{url.netloc}{url.path if path is None else path}" + (
        f"?{urlencode(dict(params))}" if params else "")


def _finding_key(index: int, finding: Finding) -> str:
    """A widget-key suffix that changes when the finding changes or moves (so a widget never shows a stale note)."""
    text = findings_to_json([finding], pictures=False, indent=None)
    return f"{index}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:10]}"


def _edit(change: Callable[[str], object]) -> bool:
    """One edit of the stored report from a callback; a refused edit (another tab changed it) becomes a toast."""
    current_id = report_id()
    if current_id is None:
        return False
    try:
        change(current_id)
    except ReportStoreError as error:
        st.toast(str(error), icon=":material/error:", duration="long")
        return False
    return True


def _move(index: int, to: int, finding: Finding) -> None:
    _edit(lambda rid: default_store().move(rid, index, to, expected=finding))


def _remove(index: int, finding: Finding) -> None:
    if _edit(lambda rid: default_store().remove(rid, index, expected=finding)):
        st.toast("Removed from the report", icon=":material/delete:")


def _save_note(index: int, finding: Finding, key: str) -> None:
    _edit(lambda rid: default_store().update_note(rid, index, str(st.session_state.get(key) or ""),
                                                  expected=finding))


def _open_view(finding: Finding, side: str) -> None:
    """Reopen a finding's view in the explorer (on the next run): its workspace in the sidebar, and the explorer
    told to read the view from the URL again, as for a shared link."""
    params = finding_query_params(finding, side)
    st.session_state[WORKSPACE_KEY] = params["ws"]  # the button is enabled only for the server's workspaces
    E.saved_view.clear()
    E.link_read.set(False)
    R.open_view.set(params)


def _show_workspace(key: str) -> None:
    st.session_state[WORKSPACE_KEY] = key


def follow_open_request() -> None:
    """Called at the top of the Report page: switch to the explorer when a finding's "Open" was clicked."""
    params = R.open_view.get()
    if params:
        R.open_view.set(None)
        current_id = report_id()
        st.switch_page(EXPLORER_PAGE, query_params={**params, **({REPORT_PARAM: current_id} if current_id else {})})


def _target_text(mode: str, class_index: int | None, names: Mapping[int, str]) -> str:
    name = names.get(class_index, str(class_index)) if class_index is not None else "?"
    return {"pred": f"predicted class {name}", "true": f"true class {name}"}.get(mode, f"class {name}")


def describe(finding: Finding) -> str:
    """One line: the image, the layer, the method and the class explained."""
    names = {t.index: t.name for t in finding.top5}
    method = CAM_METHODS[finding.method].title if finding.method in CAM_METHODS else finding.method
    about = (f" for the {_target_text(finding.target_mode, finding.target_class, names)}"
             if CAM_METHODS.get(finding.method) is None or CAM_METHODS[finding.method].needs_gradients else "")
    image = finding.sample.describe()
    line = f"{image[0].upper()}{image[1:]} · {method} at `{finding.layer}`{about}"
    if finding.compare is not None:
        line += f" · compared with **{workspace_label(finding.compare.workspace)}** at `{finding.compare.layer}`"
    return line


def _top5_text(top5) -> str:
    return " · ".join(f"{t.name} {t.probability:.0%}" for t in top5[:5])


def _render_pictures(label: str, pictures, top5) -> None:
    st.markdown(f"**{label}** — top-5: {_top5_text(top5) or 'not recorded'}")
    if pictures is None:
        st.caption("No pictures pinned: the downloaded report recomputes them from the view.")
        return
    for column, (name, data) in zip(st.columns(3), pictures.items(), strict=True):
        column.image(data, width="stretch", caption=name)


def render_finding(position: int, index: int, finding: Finding, neighbours: tuple[int | None, int | None]) -> None:
    """One finding: its pictures (both models' for a comparison), note, order buttons and the way back to it."""
    key = _finding_key(index, finding)
    with st.container(border=True):
        head, up, down, remove = st.columns([8, 1, 1, 1.4], vertical_alignment="center")
        head.markdown(f"**{position + 1}.** {describe(finding)}")
        up.button("↑", key=f"report.up.{key}", disabled=neighbours[0] is None, help="Move up",
                  on_click=_move, args=(index, neighbours[0], finding), width="stretch")
        down.button("↓", key=f"report.down.{key}", disabled=neighbours[1] is None, help="Move down",
                    on_click=_move, args=(index, neighbours[1], finding), width="stretch")
        remove.button("Remove", key=f"report.remove.{key}", on_click=_remove, args=(index, finding),
                      width="stretch", help="Remove this finding from the report")
        pictures_col, text_col = st.columns([3, 2], gap="medium")
        with pictures_col:
            _render_pictures(workspace_label(finding.workspace), finding.pictures, finding.top5)
            if finding.compare is not None:
                _render_pictures(workspace_label(finding.compare.workspace), finding.compare.pictures,
                                 finding.compare.top5)
        with text_col:
            st.text_area("Note", value=finding.note, key=f"report.note.{key}", max_chars=MAX_NOTE_CHARS, height=100,
                         on_change=_save_note, args=(index, finding, f"report.note.{key}"),
                         placeholder="What this view shows (saved when you leave the box)")
            render_way_back(finding, key)


def render_way_back(finding: Finding, key: str) -> None:
    """"Open in the explorer" (this tab) for each model, and the view's link for someone else."""
    sides = [("first", finding.workspace)] + ([("compare", finding.compare.workspace)] if finding.compare else [])
    upload, choices = finding.sample.is_upload, workspace_choices()
    for side, workspace in sides:
        why_not = ("An uploaded image lives only in the session that uploaded it" if upload else
                   f"{workspace_label(workspace)} is not among this server's workspaces" if workspace not in choices
                   else None)
        st.button(f"Open in the explorer ({workspace_label(workspace)})" if finding.compare else
                  "Open in the explorer", key=f"report.open.{side}.{key}", on_click=_open_view, args=(finding, side),
                  disabled=why_not is not None, icon=":material/open_in_new:",
                  help=why_not or "Show this view in the explorer, as it was pinned")
    if not upload:
        st.caption("Link to this view, for someone else:")
        st.code(page_url(finding_query_params(finding)), language=None, wrap_lines=False)


def render_other_workspaces(findings: list[Finding], loaded: LoadedWorkspace) -> None:
    """How many findings belong to other workspaces' models, with a button to switch the sidebar to each."""
    others = Counter(f.workspace for f in findings if f.model_id != loaded.model_id)
    if not others:
        return
    total = sum(others.values())
    listing = ", ".join(f"{workspace_label(name)}: {n}" for name, n in others.items())
    st.info(f"This report also holds {total} finding{'s' if total != 1 else ''} of other workspaces ({listing}). "
            "A report covers one model: switch the sidebar's workspace to see and download them.",
            icon=":material/info:")
    choices = workspace_choices()
    switchable = [name for name in others if name in choices and name != loaded.key]
    for column, name in zip(st.columns(max(1, len(switchable))), switchable, strict=False):
        column.button(f"Show the {others[name]} of {workspace_label(name)}", key=f"report.show.{name}",
                      on_click=_show_workspace, args=(name,))


def usable_findings(loaded: LoadedWorkspace, mine: list[Finding]) -> list[Finding]:
    """The findings the report can be built from; a problem (a layer gone after the checkpoint changed) is shown."""
    usable = []
    for number, finding in enumerate(mine, 1):
        try:
            check_finding(finding, loaded.workspace, f"finding {number}", workspace_key=loaded.key)
            usable.append(finding)
        except FindingError as error:
            st.warning(f"Left out of the download: {error}", icon=":material/warning:")
    return usable


def report_html(loaded: LoadedWorkspace, findings: list[Finding], title: str, predicted: np.ndarray) -> str:
    """What "Download report (HTML)" delivers: pinned pictures kept, the confusion matrix from ``predicted``."""
    return build_report(loaded.workspace, findings, title, workspace_key=loaded.key, predicted=predicted,
                        engine=loaded.engine)


def render_downloads(loaded: LoadedWorkspace, findings: list[Finding]) -> None:
    R.title.setdefault(f"Grad-CAM report: {loaded.workspace.title}")
    title_col, html_col, json_col = st.columns([3, 1.3, 1.3], vertical_alignment="bottom")
    title = title_col.text_input("Report title", key=R.title, persist_state="session") or "Grad-CAM report"
    predicted = classify_test_split(loaded).predicted
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in f"report_{loaded.workspace.name}")
    html_col.download_button(DOWNLOAD_HTML_LABEL, lambda: report_html(loaded, findings, title, predicted),
                             file_name=f"{stem}.html", mime="text/html", on_click="ignore", type="primary",
                             width="stretch", disabled=not findings,
                             help="One self-contained file: pictures inline, no external request; opens offline "
                                  "and prints to PDF")
    json_col.download_button(DOWNLOAD_JSON_LABEL, lambda: findings_to_json(findings), file_name=f"{stem}.json",
                             mime="application/json", on_click="ignore", width="stretch", disabled=not findings,
                             help="The findings with their pictures; rebuilds the same report with "
                                  "`gradcam report`")
    st.caption(f"The same report from the command line (e.g. in CI): `gradcam report --workspace {loaded.key} "
               f"--findings {stem}.json --out {stem}.html`")


def render_report_page(loaded: LoadedWorkspace) -> None:
    current_id = report_id()
    try:
        findings = default_store().load(current_id) if current_id else []
    except ReportStoreError as error:
        st.error(str(error), icon=":material/block:")
        return
    mine = [(index, f) for index, f in enumerate(findings) if f.model_id == loaded.model_id]
    render_other_workspaces(findings, loaded)
    if not mine:
        st.info(f"No findings of {workspace_label(loaded.key)} yet. Press **{ADD_LABEL}** under a view in the "
                "explorer or on the Compare models page; the findings appear here, in order, with your notes.",
                icon=":material/bookmark_add:")
        return
    render_downloads(loaded, usable_findings(loaded, [f for _, f in mine]))
    st.caption(f"{len(mine)} finding{'s' if len(mine) != 1 else ''} of {workspace_label(loaded.key)}. This page's "
               f"address keeps the report (bookmark it): {page_url({REPORT_PARAM: current_id}, path=None)}")
    positions = [index for index, _ in mine]
    for position, (index, finding) in enumerate(mine):
        neighbours = (positions[position - 1] if position > 0 else None,
                      positions[position + 1] if position + 1 < len(positions) else None)
        render_finding(position, index, finding, neighbours)
