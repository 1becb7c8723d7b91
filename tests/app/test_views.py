"""The activation, t-SNE and analysis views through AppTest, and the dashboard helpers behind them."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import streamlit as st
import torch
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix
from streamlit.testing.v1 import AppTest

from analysis.channels import rank_channels
from analysis.disk_cache import CACHE_ENV
from dashboard import activations_view, analysis_view, tsne_view
from dashboard.state import ExplorerState as E
from dashboard.workspaces import load
from models import DEFAULT_WORKSPACE
from tests.app.helpers import APP, RUN_TIMEOUT, assert_clean, run_app, viewer_data

ACTIVATIONS, TSNE, ANALYSIS = "pages/activations.py", "pages/tsne.py", "pages/analysis.py"


@pytest.fixture(autouse=True)
def embedding_cache(tmp_path, monkeypatch):
    """Embeddings and features go to a fresh folder."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "embeddings"))
    return tmp_path / "embeddings"


def open_page(page: str, query_params: dict | None = None):
    at = run_app(query_params)
    at.switch_page(page).run()
    assert_clean(at)
    return at


def assert_explorer_shows(at, index: int) -> None:
    assert_clean(at)
    assert at.title[0].value == "Grad-CAM explorer"
    assert at.session_state[E.sample] == index
    assert at.query_params["sample"] == [str(index)] or at.query_params["sample"] == str(index)
    assert any(m.value.startswith(f"#### Test image #{index} ") for m in at.markdown)


def array(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly's typed-array form {"dtype", "bdata", "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(value)


def chart_spec(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def grid_buttons(at, prefix: str):
    return [b for b in at.button if str(b.key).startswith(prefix)]


# ------------------------------------------------------------------------------------------------ activations
def test_activation_grid_is_the_ranking_of_one_forward(engine_calls):
    at = run_app()
    shown = at.session_state[E.sample]  # the explorer's image
    at.switch_page(ACTIVATIONS).run()
    assert_clean(at)
    assert at.title[0].value == "Activation maps"
    assert at.number_input(key="activations.sample").value == shown
    loaded = load(DEFAULT_WORKSPACE)
    layer = at.selectbox(key="activations.layer").value
    assert layer == loaded.default_layer
    with torch.no_grad():
        raw = loaded.engine.activations(loaded.workspace.test_set.tensors([shown]), [layer])[layer][0]
    expected, _ = rank_channels(raw, "mean", top=16)
    assert [b.label for b in grid_buttons(at, "activations.pick.")] == [f"ch {c}" for c in expected]
    assert at.selectbox(key="activations.channel").value == expected[0]  # the strongest channel is enlarged

    calls = engine_calls["activations"]
    at.slider(key="activations.count").set_value(8).run()
    assert len(grid_buttons(at, "activations.pick.")) == min(8, raw.shape[0])
    other = next(name for name in loaded.layers if name != layer)
    at.selectbox(key="activations.layer").set_value(other).run()
    assert_clean(at)
    at.segmented_control(key="activations.statistic").set_value("max").run()
    assert_clean(at)
    assert engine_calls["activations"] == calls, "a layer, count or statistic change ran the model again"
    grid_buttons(at, "activations.pick.")[3].click().run()
    assert at.selectbox(key="activations.channel").value == int(grid_buttons(at, "activations.pick.")[3].label[3:])


def test_activations_opened_directly_start_on_the_first_test_image():
    at = AppTest.from_file(str(APP.parent / ACTIVATIONS), default_timeout=RUN_TIMEOUT).run()
    assert_clean(at)
    assert at.number_input(key="activations.sample").value == 0


def test_activations_start_on_the_explorer_sample_and_link_back():
    at = run_app()
    picks = [b for b in at.button if str(b.key).startswith("explorer.pick.")]
    chosen = int(picks[5].key.rsplit(".", 1)[1])
    picks[5].click().run()
    at.switch_page(ACTIVATIONS).run()
    assert_clean(at)
    assert at.number_input(key="activations.sample").value == chosen
    at.number_input(key="activations.sample").set_value(chosen + 1).run()
    layer = at.selectbox(key="activations.layer").options[1].split(" · ")[0]
    at.selectbox(key="activations.layer").set_value(layer).run()
    at.button(key="activations.open").click().run()
    assert_explorer_shows(at, chosen + 1)
    assert viewer_data(at)["view"]["layer"] == layer


# ------------------------------------------------------------------------------------------------ t-SNE
def test_tsne_computes_on_request_then_opens_from_disk_and_links_to_the_explorer(engine_calls, embedding_cache,
                                                                                without_stores):
    at = open_page(TSNE, {"ws": "digits"})
    assert not at.get("plotly_chart"), "the t-SNE must wait for the Compute button when nothing is cached"
    assert engine_calls["features"] == 0
    at.number_input(key="tsne.max_points").set_value(300).run()
    at.button(key="tsne.compute").click().run()
    assert_clean(at)
    assert at.get("plotly_chart")
    figure = chart_spec(at)
    assert sum(len(array(trace["x"])) for trace in figure["data"]) == 300
    assert engine_calls["features"] >= 1
    assert any(p.name.startswith("features-") for p in embedding_cache.iterdir())
    assert any(p.name.startswith("tsne-") for p in embedding_cache.iterdir())

    # A restarted app: empty memory caches, the disk cache draws the chart without a button or a forward.
    st.cache_data.clear()
    calls = engine_calls["features"]
    again = open_page(TSNE, {"ws": "digits"})
    again.number_input(key="tsne.max_points").set_value(300).run()
    assert_clean(again)
    assert again.get("plotly_chart") and not [b for b in again.button if b.key == "tsne.compute"]
    assert engine_calls["features"] == calls
    assert any("from the disk cache" in c.value for c in again.caption)

    index = int(array(figure["data"][0]["customdata"]).ravel()[2])
    again.number_input(key="tsne.pick").set_value(index).run()
    again.button(key="tsne.open").click().run()
    assert_explorer_shows(again, index)
    assert again.selectbox(key="ws").value == "digits"


# ------------------------------------------------------------------------------------------------ analysis
def test_analysis_matrix_is_sklearns_and_cells_open_in_the_explorer(engine_calls):
    at = run_app({"ws": "digits"})
    first_shown = at.session_state[E.sample]
    before = len(engine_calls.explain_batches)
    at.switch_page(ANALYSIS).run()
    assert_clean(at)
    loaded = load("digits")
    test_set = loaded.workspace.test_set
    with torch.no_grad():
        predicted = loaded.workspace.model(test_set.tensors(range(len(test_set)))).argmax(1).numpy()
    expected = sklearn_confusion_matrix(test_set.labels, predicted, labels=range(len(loaded.class_names)))
    heatmap = chart_spec(at)["data"][0]
    assert np.array_equal(array(heatmap["text"]), expected)
    assert heatmap["x"] == heatmap["y"] == loaded.class_names

    # One batched Grad-CAM call per grid (correct and misclassified), each with several images.
    grids = [len(grid_buttons(at, "analysis.ok.")), len(grid_buttons(at, "analysis.wrong."))]
    assert engine_calls.explain_batches[before:] == [n for n in grids if n], "not one batched call per grid"
    assert max(grids) > 1
    true_class, pred_class = 3, 3
    at.selectbox(key="analysis.true").set_value(true_class).run()
    at.selectbox(key="analysis.pred").set_value(pred_class).run()
    cell = grid_buttons(at, "analysis.cell.")
    assert len(cell) == min(analysis_view.CELL_LIMIT, int(expected[true_class, pred_class]))
    button = next(b for b in cell[2:] if int(b.label[1:]) != first_shown)  # an image the explorer has not shown
    index = int(button.label[1:])
    assert test_set.labels[index] == true_class and predicted[index] == pred_class
    calls = engine_calls["explain"]
    button.click().run()
    assert_explorer_shows(at, index)
    # The explorer explained the opened image: one engine call, for that one image.
    assert engine_calls["explain"] == calls + 1 and engine_calls.explain_batches[-1] == 1


def test_correct_and_misclassified_grids_follow_the_class_and_layer(engine_calls):
    at = open_page(ANALYSIS)
    loaded = load(DEFAULT_WORKSPACE)
    preds = tsne_view.split_features(loaded, np.arange(len(loaded.workspace.test_set)))
    chosen = at.selectbox(key="analysis.class").value
    wrong = grid_buttons(at, "analysis.wrong.")
    ok = grid_buttons(at, "analysis.ok.")
    assert 0 < len(ok) <= analysis_view.GRID_LIMIT and 0 < len(wrong) <= analysis_view.GRID_LIMIT
    for button in ok:
        i = int(button.label[1:])
        assert preds.labels[i] == chosen and preds.predicted[i] == chosen
    for button in wrong:
        i = int(button.label[1:])
        assert preds.labels[i] == chosen and preds.predicted[i] != chosen
    calls = engine_calls["explain"]
    at.selectbox(key="analysis.layer").set_value(loaded.layers[0]).run()
    assert_clean(at)
    assert engine_calls["explain"] == calls + 2  # the two grids, each one batched call
    wrong = grid_buttons(at, "analysis.wrong.")
    index = int(wrong[0].label[1:])
    wrong[0].click().run()
    assert_explorer_shows(at, index)
    assert viewer_data(at)["view"]["layer"] == loaded.layers[0]


# ------------------------------------------------------------------------------------------------ helpers
def test_split_features_are_penultimate_deterministic_and_cached(embedding_cache, engine_calls):
    loaded = load("digits")
    indices = tsne_view.subset_indices(len(loaded.workspace.test_set), 300)
    assert np.array_equal(indices, tsne_view.subset_indices(len(loaded.workspace.test_set), 300))
    assert len(np.unique(indices)) == 300 and np.all(np.diff(indices) > 0)
    first = tsne_view.split_features(loaded, indices)
    with torch.no_grad():
        direct = loaded.workspace.features(loaded.workspace.test_set.tensors([int(i) for i in indices[:5]]))
    assert first.features.shape == (300, direct.shape[1])
    np.testing.assert_allclose(first.features[:5], direct, rtol=1e-5, atol=1e-5)
    assert tsne_view.cached_features(loaded, indices).source == "disk"
    for path in embedding_cache.glob("features-*.npz"):
        path.unlink()
    second = tsne_view.split_features(loaded, indices)
    assert second.source == "computed"
    np.testing.assert_array_equal(first.features, second.features)
    assert np.all((second.confidence > 0) & (second.confidence <= 1))


def test_peek_never_computes_and_sees_what_embedding_stored():
    loaded = load("digits")
    features = tsne_view.split_features(loaded, tsne_view.subset_indices(len(loaded.workspace.test_set), 60))
    assert tsne_view.peek_embedding(loaded, features, 10) is None
    computed = tsne_view.embedding(loaded, features, 10)
    stored = tsne_view.peek_embedding(loaded, features, 10)
    assert stored is not None and stored.source == "disk"
    np.testing.assert_array_equal(stored.xy, computed.xy)
    assert tsne_view.peek_embedding(loaded, features, 15) is None


def test_display_maps_share_one_scale():
    maps = np.array([[[0.0, 2.0]], [[-1.0, 1.0]]], dtype=np.float32)
    np.testing.assert_allclose(activations_view.display_maps(maps), [[[0.0, 1.0]], [[0.0, 0.5]]])
    assert not activations_view.display_maps(np.zeros((2, 1, 1))).any()


def test_chart_events_read_back_the_clicked_sample_and_cell():
    assert tsne_view.selected_index({"selection": {"points": [{"customdata": [42]}]}}) == 42
    assert tsne_view.selected_index({"selection": {"points": []}}) is None
    assert analysis_view.selected_cell({"selection": {"points": [{"x": "b", "y": "c"}]}}, ["a", "b", "c"]) == (2, 1)
    xy = np.array([[0, 0], [1, 1], [2, 2]], dtype=np.float32)
    figure = tsne_view.scatter_figure(xy, np.array([7, 8, 9]), np.array([0, 1, 1]), np.array([0, 0, 1]),
                                      np.array([0.9, 0.6, 0.8]), ["a", "b"], "outcome")
    wrong = next(t for t in figure.data if t.name == "misclassified")
    assert [int(c[0]) for c in wrong.customdata] == [8] and list(wrong.marker.symbol) == ["x"]
