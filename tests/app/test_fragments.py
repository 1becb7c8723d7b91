"""What reruns when: the explorer's view is a fragment nested in the explorer fragment that also holds the gallery,
both outside the sidebar, so a control of the view reruns the view alone and a new image (a widget of the outer
fragment) reruns the view and the gallery (issue 13, item 2). Other pages keep their expensive parts (a grid of
pictures, a batched Grad-CAM) in fragments too.

Streamlit reruns the innermost fragment around a widget that changed; AppTest runs the whole script for a widget
change, so these tests check where each part is drawn (the fragment id it is drawn under, and the fragment the
view fragment is called from).
"""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState

from dashboard import activations_view, analysis_view, explorer_gallery, explorer_view, shell
from dashboard.state import ExplorerState as E
from models import DEFAULT_WORKSPACE
from tests.app.helpers import assert_clean, main_images, run_app


@pytest.fixture
def drawn_in(monkeypatch):
    """``drawn_in(module, "function")`` records the fragment id (None outside any) of every call of that function;
    the returned list fills as the app runs."""

    def record(module, name: str) -> list:
        calls: list = []
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls.append(ThreadState.get().fragment_id)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)
        return calls

    return record


def test_the_view_is_a_fragment_nested_in_the_gallerys_and_the_sidebar_is_in_neither(drawn_in, monkeypatch):
    view, gallery, sidebar = (drawn_in(explorer_view, "render_target"), drawn_in(explorer_gallery, "render_gallery"),
                              drawn_in(shell, "_describe"))
    pictures = drawn_in(explorer_view, "cam_viewer")
    called_from = drawn_in(explorer_view, "view_fragment")  # the fragment the view fragment is called in
    at = run_app()
    assert_clean(at)
    assert sidebar == [None]
    assert len(view) == len(gallery) == len(pictures) == 1
    assert view[0] and gallery[0] and view[0] != gallery[0]
    assert pictures == view  # the browser-side viewer is drawn in the view fragment: its reports rerun it alone
    assert called_from == gallery, "the view is nested in the gallery's fragment: a picked image reruns both"
    reruns = []
    original = st.rerun
    monkeypatch.setattr(st, "rerun", lambda *args, **kwargs: (reruns.append(args), original(*args, **kwargs)))
    [b for b in at.button if str(b.key).startswith("explorer.pick.")][2].click().run()
    assert_clean(at)
    assert reruns == [], "a pick asks for no rerun of its own (st.rerun from a callback restarts the run)"


def test_picking_an_image_reruns_the_view_and_the_gallery_with_one_pass(drawn_in, engine_calls):
    sidebar, view, gallery = drawn_in(shell, "_describe"), drawn_in(explorer_view, "render_target"), \
        drawn_in(explorer_gallery, "render_gallery")
    at = run_app()
    before = main_images(at)
    calls = dict(engine_calls)
    button = [b for b in at.button if str(b.key).startswith("explorer.pick.")][4]
    button.click().run()
    assert_clean(at)
    index = int(button.key.rsplit(".", 1)[1])
    assert at.session_state[E.sample] == index
    assert any(m.value.startswith(f"#### Test image #{index} ") for m in at.markdown)
    assert main_images(at) != before
    assert (len(view), len(gallery)) == (2, 2)  # (AppTest reruns the whole script: the sidebar is drawn again)
    assert len(sidebar) == 2
    # One pass for the new image: its prediction and its predicted class's maps (plus the true class's, for the
    # comparison row, when it is misclassified).
    comparison = any(m.value.startswith("##### Why **") for m in at.markdown)
    assert engine_calls["explain"] - calls.get("explain", 0) == 1 + comparison
    assert engine_calls["predict"] == calls.get("predict", 0)
    assert at.session_state["ws"] == DEFAULT_WORKSPACE  # the sidebar's picker keeps its value (AppTest shows only
    # what the last run drew: the two fragments)


def test_other_pages_keep_their_expensive_parts_in_fragments(drawn_in):
    channels = drawn_in(activations_view, "render_grid")
    grids = drawn_in(analysis_view, "render_grid_column")
    matrix = drawn_in(analysis_view, "render_matrix_and_table")
    at = run_app()
    at.switch_page("pages/activations.py").run()
    assert_clean(at)
    at.switch_page("pages/analysis.py").run()
    assert_clean(at)
    assert channels and channels[-1]
    assert grids and all(grids) and matrix and matrix[-1] and grids[-1] != matrix[-1]
