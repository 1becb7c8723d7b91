"""The explorer's trust parts through AppTest: Score-CAM computed for the shown layer only (and kept), and the
deletion/insertion panel computed when opened, once per view, next to a random map."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from dashboard import faithfulness_view
from dashboard.scorecam_view import PER_LAYER_NOTE
from dashboard.state import ExplorerState as E
from dashboard.state import FaithfulnessState as F
from gradcam_core import CamEngine, list_conv_layers
from models import DEFAULT_WORKSPACE, load_workspace
from tests.app.helpers import assert_clean, report, run_app, viewer_data, viewer_layers


@pytest.fixture
def explained_layers(monkeypatch):
    """(layers, methods) of every ``CamEngine.explain`` call: which layers were computed, for which methods."""
    calls = []
    original = CamEngine.explain

    def recording(self, images, layers=None, *args, **kwargs):
        methods = kwargs.get("methods", args[1] if len(args) > 1 else ("gradcam",))
        calls.append((None if layers is None else list(layers), [getattr(m, "name", m) for m in methods]))
        return original(self, images, layers, *args, **kwargs)

    monkeypatch.setattr(CamEngine, "explain", recording)
    return calls


def strip_notes(at) -> int:
    return sum(caption.value == PER_LAYER_NOTE for caption in at.caption)


def test_scorecam_is_computed_for_the_shown_layer_only_and_kept(explained_layers):
    shapes = load_workspace(DEFAULT_WORKSPACE)
    at = run_app()
    layers = list_conv_layers(shapes.model)
    explained_layers.clear()
    report(at, method="scorecam")
    assert_clean(at)
    assert explained_layers == [([shapes.default_layer], ["scorecam"])]
    assert viewer_data(at)["method"] == "scorecam" and viewer_layers(at) == [shapes.default_layer]
    assert strip_notes(at) == len(layers) - 1, "every other layer of the strip says how to get its map"
    assert any("pick another layer in the layer strip" in caption.value for caption in at.caption)
    first = layers[0]
    report(at, layer=first)
    assert explained_layers[1:] == [([first], ["scorecam"])]
    assert viewer_layers(at) == [first]
    report(at, layer=shapes.default_layer)
    report(at, opacity=0.8)
    assert len(explained_layers) == 2, "a layer computed before is kept, and opacity recomputes nothing"
    assert_clean(at)
    assert not at.selectbox(key=E.target).disabled, "Score-CAM explains a class: the target can be chosen"


@pytest.fixture
def curve_computations(monkeypatch):
    calls = []
    original = faithfulness_view.compute_explorer_curves

    def counting(engine, tensor, cam, target, progress=None, steps=faithfulness_view.EXPLORER_STEPS):
        calls.append((cam.shape, int(target)))
        return original(engine, tensor, cam, target, progress, steps)

    monkeypatch.setattr(faithfulness_view, "compute_explorer_curves", counting)
    return calls


def panel_text(at) -> str:
    found = [e for e in at.expander if e.label.startswith("How faithful is this map?")]
    assert len(found) == 1, [e.label for e in at.expander]
    return " ".join(m.value for m in found[0].markdown)


def plotted(values) -> np.ndarray:
    """A trace's values as plotly's JSON holds them: a list, or a base64 typed array."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def curves_chart(at) -> dict:
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    found = [spec for spec in charts if "Deletion: most important pixels removed first" in json.dumps(spec)]
    assert len(found) == 1, len(charts)
    return found[0]


def test_the_faithfulness_panel_computes_when_opened_once_per_view_next_to_a_random_map(curve_computations):
    at = run_app()
    assert curve_computations == [], "the first heatmap never waits for the curves"
    assert not at.metric or all("AUC" not in m.label for m in at.metric)
    at.session_state[F.explorer_panel] = True  # the user opens the expander
    at.run()
    assert_clean(at)
    assert len(curve_computations) == 1
    aucs = {m.label: m for m in at.metric if "AUC" in m.label}
    assert set(aucs) == {"Deletion AUC (lower is better)", "Insertion AUC (higher is better)"}
    assert all("vs random map (" in m.delta for m in aucs.values())
    spec = curves_chart(at)
    names = [trace["name"] for trace in spec["data"]]
    assert names == ["this map", "random map", "this map", "random map"]
    deletion, random_deletion = plotted(spec["data"][0]["y"]), plotted(spec["data"][1]["y"])
    assert deletion[-1] < deletion[0], "deleting every pixel lowers the class's probability"
    assert not np.allclose(deletion, random_deletion), "the baseline is another map, not the shown one"
    fractions = plotted(spec["data"][1]["x"])
    shown = aucs["Deletion AUC (lower is better)"]
    assert shown.value == f"{np.trapezoid(deletion, fractions):.3f}"
    assert f"random map ({np.trapezoid(random_deletion, fractions):.3f})" in shown.delta

    report(at, opacity=0.9)
    at.session_state[F.explorer_panel] = False
    at.run()
    at.session_state[F.explorer_panel] = True
    at.run()
    assert len(curve_computations) == 1, "the same view's curves are kept: opacity, closing and reopening are free"
    assert f"**Grad-CAM** at `{at.session_state[E.layer]}`" in panel_text(at)
    report(at, method="hirescam")
    assert len(curve_computations) == 2, "another method: its own curves, the panel staying open"
    assert "**HiResCAM** at" in panel_text(at)
    assert_clean(at)


def test_the_random_baseline_is_seeded_and_scored_by_the_same_function():
    first, second = faithfulness_view.random_map((8, 8)), faithfulness_view.random_map((8, 8))
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32 and first.min() >= 0 and first.max() < 1
