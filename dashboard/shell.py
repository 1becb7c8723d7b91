"""What every page shares, drawn by app.py: the sidebar's workspace picker and facts, and the loaded workspace.

A workspace that fails to load shows an error in the page (no traceback) while the picker stays usable. The
sidebar's test accuracy is filled in after the page ran (``finish_shell``), from the same cached predictions the
pages show, so it never delays the page and never disagrees with it.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from dashboard.explorer_link import WORKSPACE_PARAM
from dashboard.predictions import sidebar_accuracy
from dashboard.state import ReportState, follow_workspace
from dashboard.workspaces import LoadedWorkspace, load, workspace_choices, workspace_label
from models import WorkspaceError
from report.session_store import REPORT_PARAM, default_store, parse_report_param

WORKSPACE_KEY = "ws"
LINK_ICON = ":material/link:"  # marks warnings about the URL the page was opened with
_LOADED_KEY = "_loaded_workspace"
_ACCURACY_SLOT_KEY = "_sidebar_accuracy"  # this run's sidebar place for the test accuracy


def set_query_params(values: Mapping[str, str]) -> None:
    """Write only what changed: each write is a message to the browser."""
    for key, value in values.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value


def report_id(create: bool = False) -> str | None:
    """The session's report id (findings pinned with "Add to report"); with ``create``, a new one when the session
    has none yet. It travels in the URL as ``?report=<id>`` (``carry_report_param``), so a reload finds it."""
    current_id = ReportState.report_id.get()
    if current_id is None and create:
        current_id = default_store().new_id()
        ReportState.report_id.set(current_id)
        set_query_params({REPORT_PARAM: current_id})
    return current_id


def carry_report_param() -> None:
    """Keep ``?report=`` in the URL on every page, as ``ws`` is: the first run of a session (a reload, a shared
    link) takes the id from the URL; later runs write the session's id back (a page switch drops the parameter)."""
    if ReportState.report_id.get() is None:
        link_id, warning = parse_report_param(st.query_params)
        if warning:
            st.warning(warning, icon=LINK_ICON)
            del st.query_params[REPORT_PARAM]
        ReportState.report_id.set(link_id)
    current_id = ReportState.report_id.get()
    if current_id is not None:
        set_query_params({REPORT_PARAM: current_id})


def _pick_workspace(choices: list[str]) -> str:
    if WORKSPACE_KEY not in st.session_state:  # first run of this browser session: the link decides
        requested = st.query_params.get(WORKSPACE_PARAM)
        if requested in choices:
            st.session_state[WORKSPACE_KEY] = requested
        else:
            st.session_state[WORKSPACE_KEY] = choices[0]
            if requested:
                st.warning(f"The link's workspace {requested!r} is not available on this server "
                           f"(available: {', '.join(choices)}); showing {choices[0]!r} instead.", icon=LINK_ICON)
    elif st.session_state[WORKSPACE_KEY] not in choices:
        st.session_state[WORKSPACE_KEY] = choices[0]
    return st.sidebar.selectbox(
        "Workspace", choices, key=WORKSPACE_KEY, format_func=workspace_label,
        help="A model with its test images. Bundled ones, plus a TOML file given with "
             "`streamlit run app.py -- --workspace path.toml` (or `make run WORKSPACE=path.toml`).",
    )


def _describe(loaded: LoadedWorkspace) -> None:
    workspace = loaded.workspace
    sidebar = st.sidebar
    sidebar.markdown(f"**{workspace.title}**")
    description = str(getattr(workspace, "description", "") or "")
    if description:
        if loaded.shortcut:
            sidebar.warning(description, icon=":material/warning:")
        else:
            sidebar.info(description)
    left, right = sidebar.columns(2)
    slot = left.empty()
    recorded = workspace.test_accuracy
    slot.metric("Test accuracy", "…" if recorded is None else f"{recorded:.1%}",
                help="Checked against the model's predictions once the page has drawn")
    st.session_state[_ACCURACY_SLOT_KEY] = slot
    right.metric("Device", loaded.engine.device.type.upper(), help=f"Computations run on {loaded.device_label()}")
    height, width = workspace.input_size
    sidebar.caption(
        f"{len(loaded.class_names)} classes · input {height}×{width} · {len(workspace.test_set)} test images · "
        f"{len(loaded.layers)} conv layers  \nmodel id `{loaded.model_id}`"
    )


def finish_shell(loaded: LoadedWorkspace) -> None:
    """After the page ran: the sidebar's test accuracy, the same number the explorer and the analysis page show."""
    slot = st.session_state.pop(_ACCURACY_SLOT_KEY, None)
    if slot is None or not len(loaded.workspace.test_set):
        return
    value, help_text = sidebar_accuracy(loaded)  # from the store (or the rows classified here): one GROUP BY
    slot.metric("Test accuracy", value, help=help_text)


def render_shell() -> LoadedWorkspace | None:
    """Draw the sidebar and load the chosen workspace; None (with an error shown) when it does not load."""
    st.session_state.pop(_LOADED_KEY, None)
    st.session_state.pop(_ACCURACY_SLOT_KEY, None)
    try:
        choices = workspace_choices()
    except Exception as err:  # the registry itself failed: nothing to pick from
        st.error(f"Could not list the workspaces: {err}")
        return None
    key = _pick_workspace(choices)
    follow_workspace(key)
    set_query_params({WORKSPACE_PARAM: key})
    carry_report_param()
    try:
        with st.spinner(f"Loading workspace {workspace_label(key)}…", show_time=True):
            loaded = load(key)
    except WorkspaceError as err:
        st.error(f"**Workspace {workspace_label(key)!r} could not be loaded.**\n\n{err}\n\n"
                 "Fix the workspace file, or pick another workspace in the sidebar.", icon=":material/block:")
        return None
    except Exception as err:  # a broken checkpoint or user code in a workspace: still a message, not a crash
        st.error(f"**Workspace {workspace_label(key)!r} could not be loaded:** {type(err).__name__}: {err}\n\n"
                 "Pick another workspace in the sidebar.", icon=":material/block:")
        with st.expander("Technical details"):
            st.exception(err)
        return None
    if not loaded.layers:
        st.error(f"The model of workspace {workspace_label(key)!r} has no Conv2d layer, so there is nothing for "
                 "Grad-CAM to explain. Pick another workspace in the sidebar.", icon=":material/block:")
        return None
    _describe(loaded)
    if loaded.shortcut:
        st.warning(f"**{loaded.workspace.title}:** {loaded.workspace.description}", icon=":material/warning:")
    untrained = (getattr(loaded.workspace, "notes", None) or {}).get("untrained")
    if untrained:
        st.warning(f"**Untrained model:** {untrained}", icon=":material/warning:")
    st.session_state[_LOADED_KEY] = loaded
    return loaded


def forget_workspace() -> None:
    """Called by app.py after the page ran, so a page never sees a workspace loaded by an earlier run."""
    st.session_state.pop(_LOADED_KEY, None)
    st.session_state.pop(_ACCURACY_SLOT_KEY, None)


def current() -> LoadedWorkspace:
    """The workspace app.py loaded for this run (pages call this).

    When app.py did not run, the page draws the shell itself. Streamlit does that for the first request a fresh
    server gets when the URL names a page (``/explorer``): with a folder called ``pages/`` next to app.py it
    starts in its old multipage mode and runs the page file alone, until app.py's ``st.navigation`` has run once.
    """
    loaded = st.session_state.get(_LOADED_KEY)
    if loaded is None:
        setup_page()
        loaded = render_shell()
        # Drawn for this run only: nothing after the page clears it (app.py's forget_workspace did not run), and
        # leaving it would make the next page-alone run skip the sidebar. Pages call current() once, at the top.
        st.session_state.pop(_LOADED_KEY, None)
        if loaded is None:
            st.stop()
    return loaded


def setup_page() -> None:
    st.set_page_config(page_title="Grad-CAM dashboard", page_icon="🔥", layout="wide",
                       initial_sidebar_state="expanded")
    # A little less empty space above the page title (Streamlit's default leaves room for a top navigation bar).
    # A hairline around pictures, so a white-background image (digits) does not melt into the page.
    st.html("<style>[data-testid='stMainBlockContainer']{padding-top:2.5rem;padding-bottom:3rem}"
            "[data-testid='stImage'] img{outline:1px solid #dee2e6}</style>")
