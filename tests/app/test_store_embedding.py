"""The embedding page on the shipped store: the precomputed map at once (WebGL), a selection keyed by image index
listed as a gallery, each image opening in the explorer."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.store_state import EmbeddingState as S
from dashboard.tsne_view import scatter_figure, selected_index, selected_indices
from models import DEFAULT_WORKSPACE, load_workspace
from store import open_store
from tests.app.helpers import assert_clean, run_app
from tests.app.test_store_pages import picks
from tests.app.test_views import array, assert_explorer_shows, chart_spec

TSNE = "pages/tsne.py"


@pytest.fixture(scope="module")
def store():
    return open_store(load_workspace(DEFAULT_WORKSPACE).store)


def test_the_map_opens_from_the_store_without_computing(engine_calls, store):
    at = run_app()
    at.switch_page(TSNE).run()
    assert_clean(at)
    assert not [b for b in at.button if b.key == "tsne.compute"], "a stored map needs no Compute button"
    assert engine_calls["features"] == 0
    spec = chart_spec(at)
    assert {trace["type"] for trace in spec["data"]} == {"scattergl"}
    shown = np.concatenate([array(trace["customdata"])[:, 0] for trace in spec["data"]]).astype(np.int64)
    xs = np.concatenate([array(trace["x"]) for trace in spec["data"]])
    points = store.map_points()
    assert sorted(shown.tolist()) == points["index"].to_pylist() == list(range(store.num_rows))
    by_index = dict(zip(points["index"].to_pylist(), points["map_x"].to_pylist(), strict=True))
    np.testing.assert_allclose(xs, [by_index[i] for i in shown.tolist()], rtol=1e-6)  # each x is its image's
    assert any("computed once by `gradcam precompute`" in c.value for c in at.caption)


def test_a_selection_is_read_by_the_image_index_in_customdata():
    event = {"selection": {"points": [
        {"curve_number": 3, "point_index": 0, "customdata": [1507, 0.9]},
        {"curve_number": 0, "point_index": 0, "customdata": {"0": 12, "1": 0.5}},  # as a browser sends a row of
        # the figure's typed-array customdata
        {"curve_number": 3, "point_index": 1, "customdata": [1507, 0.9]},  # the same image twice (box + click)
        {"curve_number": 1, "point_index": 7},  # a point without customdata (a highlight ring): ignored
    ]}}
    assert selected_indices(event) == [1507, 12]
    assert selected_index(event) == 1507
    assert selected_indices(None) == [] and selected_indices({"selection": {"points": []}}) == []
    figure = scatter_figure(np.zeros((4, 2)), np.array([40, 41, 42, 43]), np.array([0, 1, 1, 0]),
                            np.array([0, 1, 0, 0]), np.array([0.9, 0.8, 0.7, 0.6]), ["a", "b"], "true")
    keyed = {int(c[0]) for trace in figure.data for c in trace.customdata}
    assert keyed == {40, 41, 42, 43}  # every point names its image, whatever trace it is drawn in


def test_the_selected_images_are_listed_misclassified_first_and_open_in_the_explorer(store):
    wrong = store.worst_mistakes(3)["index"].to_pylist()
    right = [i for i in range(10) if i not in wrong][:4]
    at = run_app()
    at.switch_page(TSNE).run()
    at.session_state[S.selection] = tuple(right + wrong)
    at.run()
    assert_clean(at)
    listed = picks(at, "embedding.pick.")
    assert listed[:3] == wrong and sorted(listed[3:]) == sorted(right)  # misclassified first, by loss
    assert any(m.value.startswith("**7 selected images** · 3 misclassified") for m in at.markdown)
    next(b for b in at.button if b.key == f"embedding.pick.{wrong[1]}").click().run()
    assert_explorer_shows(at, wrong[1])
