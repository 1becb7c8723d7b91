"""The page-state helper: typed keys with defaults, and the one reset when the workspace changes."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from dashboard.state import ActivationsState, AnalysisState, ExplorerState, Key, PageState, TsneState
from dashboard.workspaces import load
from models import DEFAULT_WORKSPACE
from tests.app.helpers import assert_clean, run_app


def _state_script():
    """Runs as a Streamlit script: follows the workspace named in session state, sets every page's keys once,
    and reports what it sees."""
    import streamlit as st

    from dashboard.state import ActivationsState, AnalysisState, ExplorerState, TsneState, follow_workspace

    changed = follow_workspace(st.session_state["workspace"])
    if not st.session_state.get("filled"):
        st.session_state["filled"] = True
        ExplorerState.opacity.set(0.9)
        ExplorerState.upload.set("an upload")
        ExplorerState.link_read.set(True)
        ActivationsState.count.set(40)
        TsneState.perplexity.set(10)
        AnalysisState.layer.set("layer1")
    st.session_state["report"] = {
        "changed": changed, "opacity": ExplorerState.opacity.get(), "upload": ExplorerState.upload.get(),
        "link_read": ExplorerState.link_read.get(), "count": ActivationsState.count.get(),
        "perplexity": TsneState.perplexity.get(), "layer": AnalysisState.layer.get(),
        "layer_set": AnalysisState.layer.is_set(),
    }


def test_a_new_workspace_drops_every_pages_state_but_what_the_user_brought():
    at = AppTest.from_function(_state_script)
    at.session_state["workspace"] = "shapes"
    at.run()
    at.run()
    assert at.session_state["report"] == {"changed": False, "opacity": 0.9, "upload": "an upload", "link_read": True,
                                          "count": 40, "perplexity": 10, "layer": "layer1", "layer_set": True}
    at.session_state["workspace"] = "digits"
    at.run()
    # every page's keys back to their defaults; the upload and "the link was read" stay with the session
    assert at.session_state["report"] == {"changed": True, "opacity": 0.5, "upload": "an upload", "link_read": True,
                                          "count": 16, "perplexity": 30, "layer": None, "layer_set": False}


def test_every_key_is_declared_once_and_named_after_its_page():
    names = [str(key) for group in PageState.groups for key in group.all_keys()]
    assert len(names) == len(set(names))
    prefixes = {ExplorerState: "explorer.", ActivationsState: "activations.", TsneState: "tsne.",
                AnalysisState: "analysis."}
    for group, prefix in prefixes.items():
        assert all(str(key).startswith(prefix) for key in group.all_keys()), group
    assert set(PageState.groups) >= set(prefixes)


def test_a_key_is_a_widget_key():
    key = Key[int]("explorer.seed", 0)
    assert key == "explorer.seed" and hash(key) == hash("explorer.seed") and type(str(key)) is str
    assert key.default == 0 and not key.keep


def test_switching_workspace_on_the_analysis_page_starts_it_afresh():
    at = run_app()
    at.switch_page("pages/analysis.py").run()
    at.selectbox(key=AnalysisState.layer).set_value(load(DEFAULT_WORKSPACE).layers[0]).run()
    assert at.selectbox(key=AnalysisState.layer).value == "stem.0"
    at.selectbox(key="ws").set_value("digits").run()
    assert_clean(at)
    assert at.selectbox(key=AnalysisState.layer).value == "features.14"  # digits' default layer
