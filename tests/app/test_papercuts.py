"""Things a new user met in a demo (issue 15, item 5) and side effects of issue 14 item 5, through AppTest: each
test shows what the user sees."""

from __future__ import annotations

import io
import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import analysis_view
from dashboard import predictions as predictions_module
from dashboard.state import ExplorerState as E
from dashboard.workspaces import uses_shortcut
from models import DEFAULT_WORKSPACE, load_workspace
from tests.app.helpers import assert_clean, run_app, viewer_data

TSNE, ANALYSIS, ACTIVATIONS = "pages/tsne.py", "pages/analysis.py", "pages/activations.py"


def metric(at: AppTest, label: str, sidebar: bool = False):
    found = [m for m in (at.sidebar.metric if sidebar else at.main.metric) if m.label == label]
    assert len(found) == 1, [m.label for m in at.metric]
    return found[0]


@pytest.fixture
def pets(monkeypatch, pets_workspace):
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(pets_workspace)])
    return pets_workspace


# ------------------------------------------------------------------------------------------------ accuracy
def test_sidebar_explorer_and_analysis_show_one_test_accuracy_when_none_is_recorded(pets):
    assert load_workspace(pets).test_accuracy is None
    at = run_app()
    assert_clean(at)
    shown = metric(at, "Test accuracy", sidebar=True).value
    assert re.fullmatch(r"\d+\.\d%", shown), shown  # computed, not "n/a"
    assert any(f"({shown})" in c.value for c in at.caption if c.value.startswith("The model gets"))
    at.switch_page(ANALYSIS).run()
    assert_clean(at)
    assert metric(at, "Test accuracy").value == metric(at, "Test accuracy", sidebar=True).value == shown


def test_a_bundled_workspace_shows_the_same_accuracy_in_the_sidebar_and_on_the_page():
    at = run_app()
    at.switch_page(ANALYSIS).run()
    assert metric(at, "Test accuracy").value == metric(at, "Test accuracy", sidebar=True).value


def test_a_recorded_accuracy_that_disagrees_is_named_in_the_help():
    predictions = predictions_module.TestPredictions(predicted=np.array([0, 1, 1, 0]), labels=np.array([0, 1, 0, 0]))
    loaded = SimpleNamespace(workspace=SimpleNamespace(test_accuracy=0.95))
    assert "records 95.0%" in predictions_module.accuracy_help(loaded, predictions)
    loaded.workspace.test_accuracy = 0.75
    assert "records" not in predictions_module.accuracy_help(loaded, predictions)


# ------------------------------------------------------------------------------------------------ t-SNE
def test_perplexity_slider_stops_at_what_the_image_count_allows(without_stores):
    at = run_app({"ws": "digits"})
    at.switch_page(TSNE).run()
    assert at.slider(key="tsne.perplexity").value == 30
    at.number_input(key="tsne.max_points").set_value(50).run()
    assert_clean(at)
    slider = at.slider(key="tsne.perplexity")
    assert (slider.max, slider.value) == (16, 16)  # (50 - 1) // 3
    assert any("At most 16 for 50 images" in c.value for c in at.caption)


def test_too_few_images_for_a_choice_say_the_perplexity_used(pets, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADCAM_CACHE_DIR", str(tmp_path / "cache"))
    at = run_app()
    at.switch_page(TSNE).run()
    assert not at.slider  # 9 images: (9 - 1) / 3 = 2.7, nothing to choose
    assert any(m.value == "Perplexity **2**" for m in at.markdown)
    at.button(key="tsne.compute").click().run()
    assert_clean(at)
    assert any("· perplexity 2 ·" in c.value for c in at.caption), [c.value for c in at.caption]


# ------------------------------------------------------------------------------------------------ explorer
def test_an_all_zero_map_says_the_layer_gives_no_positive_evidence():
    # Deterministic: the shipped shapes model's Grad-CAM of test image 0 for class 1 at layer1.1.conv1 is zero.
    at = run_app({"ws": DEFAULT_WORKSPACE, "sample": "0", "target": "1", "layer": "layer1.1.conv1"})
    assert_clean(at)
    class_name = load_workspace(DEFAULT_WORKSPACE).class_names[1]
    notes = [i.value for i in at.info if "no positive evidence" in i.value]
    assert notes == [f"At `layer1.1.conv1`, this layer gives no positive evidence for the class **{class_name}**: "
                     "the map is zero everywhere, so the heatmap is one colour. Try a deeper layer or another method."]
    at.session_state[E.layer] = "head.0"  # the viewer reports the default layer: a map with evidence, no note
    at.run()
    assert not [i for i in at.info if "no positive evidence" in i.value]


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_activation_page_shows_the_explorers_upload(engine_calls):
    at = run_app()
    picture = np.asarray(load_workspace(DEFAULT_WORKSPACE).test_set.image(3).resize((90, 70)))
    at.file_uploader(key=E.uploader).set_value(("mine.png", png(picture), "image/png")).run()
    assert any("Uploaded image · mine.png" in m.value for m in at.markdown)
    before = engine_calls["activations"]
    at.switch_page(ACTIVATIONS).run()
    assert_clean(at)
    assert at.segmented_control(key="activations.source").value == "upload"
    assert any(m.value.startswith("#### Uploaded image · mine.png · predicted") for m in at.markdown)
    assert engine_calls["activations"] == before + 1
    assert not [n for n in at.number_input if n.key == "activations.sample"]  # no test index for an upload
    at.segmented_control(key="activations.source").set_value("test").run()
    assert_clean(at)
    assert any(m.value.startswith("#### Test image #") for m in at.markdown)


# ------------------------------------------------------------------------------------------------ side effects
def test_the_analysis_grids_use_the_explorers_opacity_and_colormap(monkeypatch):
    used = []
    original = analysis_view.overlay_pictures
    monkeypatch.setattr(analysis_view, "overlay_pictures",
                        lambda pixels, cams, opacity, colormap: used.append((opacity, colormap)) or
                        original(pixels, cams, opacity, colormap))
    at = run_app()
    at.session_state[E.opacity] = 0.85  # as the viewer's report sets them
    at.session_state[E.colormap] = "viridis"
    at.run()
    at.switch_page(ANALYSIS).run()
    assert_clean(at)
    assert used and set(used) == {(0.85, "viridis")}
    assert any("opacity 0.85 and colormap viridis" in c.value for c in at.caption)


def test_the_shortcut_warning_comes_from_metadata_not_from_the_name():
    assert not uses_shortcut(SimpleNamespace(name="shortcut-demo", description="A shortcut? no.", notes={}))
    assert uses_shortcut(SimpleNamespace(name="x", description="", notes={"shortcut": True}))
    assert uses_shortcut(SimpleNamespace(name="x", description="", notes={"warning": "trained on a marker"}))
    assert not uses_shortcut(SimpleNamespace(name="x", notes={"shortcut": True}, shortcut=False))  # the record wins
    assert uses_shortcut(load_workspace("shapes-shortcut")) and not uses_shortcut(load_workspace("shapes"))


def test_a_workspace_named_shortcut_without_the_metadata_gets_no_warning(monkeypatch, pets_workspace):
    text = pets_workspace.read_text().replace('name = "pets"', 'name = "shortcut-pets"\n'
                                              'description = "Pets, checked for a shortcut"')
    pets_workspace.write_text(text)
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(pets_workspace)])
    at = run_app()
    assert_clean(at)
    assert not [w for w in at.warning if "shortcut" in w.value]
    assert any("Pets, checked for a shortcut" in i.value for i in at.sidebar.info)
    assert viewer_data(at)["method_title"] == "Grad-CAM"
