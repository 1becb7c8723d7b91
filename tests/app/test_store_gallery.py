"""The explorer's gallery on the shipped shapes store: the seeded draw stays the default, and sorting, filtering
and paging show exactly the store's rows, in the URL too."""

from __future__ import annotations

import pytest

from dashboard.gallery import GALLERY_SIZE, SORT_MODES, ScoreFilter, row_filter
from dashboard.state import ExplorerState as E
from models import DEFAULT_WORKSPACE, load_workspace
from store import RowFilter, open_store
from tests.app.helpers import assert_clean, run_app
from tests.app.test_store_pages import picks

SORT = "explorer.sort"


@pytest.fixture(scope="module")
def store():
    return open_store(load_workspace(DEFAULT_WORKSPACE).store)


def pager(at) -> str:
    return next(c.value for c in at.caption if " · page " in c.value)


def test_the_default_view_is_the_seeded_draw_of_the_link(store):
    at = run_app({"seed": "7", "filter": "class:2"})
    assert_clean(at)
    assert picks(at) == store.sample(7, "class:2").tolist()
    assert at.session_state[E.sample] == picks(at)[0]  # the view shows the gallery's first image
    assert "sort" not in at.query_params and at.query_params["seed"] == "7"


def test_the_worst_mistakes_sorted_and_paged_are_the_stores(store):
    at = run_app()
    at.selectbox(key=E.filter).set_value("misclassified")
    at.selectbox(key=SORT).set_value("loss").run()
    assert_clean(at)
    worst = store.worst_mistakes(40)["index"].to_pylist()
    misclassified = store.count(RowFilter(outcome="misclassified"))
    assert picks(at) == worst[:GALLERY_SIZE]
    assert at.session_state[E.sample] == worst[0]
    assert pager(at) == f"1–20 of {misclassified:,} · page 1 of {-(-misclassified // 20)}"
    assert (at.query_params["sort"], at.query_params["page"]) == ("loss", "1")
    at.button(key="explorer.page.forward").click().run()
    assert_clean(at)
    assert picks(at) == worst[GALLERY_SIZE:40]
    assert at.query_params["page"] == "2"
    assert at.session_state[E.sample] == worst[0], "another page keeps the image in the view"


def test_score_filters_bound_a_sorted_view(store):
    at = run_app()
    at.selectbox(key=SORT).set_value("confidence").run()
    at.slider(key="explorer.confidence").set_value((0.0, 0.6)).run()
    assert_clean(at)
    expected = store.page(row_filter("all", ScoreFilter(max_prob=0.6)), sort="prob", limit=GALLERY_SIZE)
    assert picks(at) == expected["index"].to_pylist()
    assert max(expected["prob"].to_pylist()) <= 0.6
    assert pager(at).endswith(f"of {store.count(RowFilter(max_prob=0.6)):,} · page 1 of "
                              f"{-(-store.count(RowFilter(max_prob=0.6)) // 20)}")


def test_a_link_with_a_sort_and_page_opens_that_page(store):
    at = run_app({"sort": "margin", "page": "3", "filter": "class:4"})
    assert_clean(at)
    mode = SORT_MODES["margin"]
    expected = store.page(RowFilter(label=4), sort=mode.column, descending=mode.descending, offset=40, limit=20)
    assert picks(at) == expected["index"].to_pylist()
    assert at.session_state[E.sample] == picks(at)[0], "the view shows the linked page's first image"
    assert at.selectbox(key=SORT).value == "margin"
    at.selectbox(key=SORT).set_value("draw").run()
    assert_clean(at)
    assert picks(at) == store.sample(0, "class:4").tolist()
    assert "sort" not in at.query_params and "page" not in at.query_params
