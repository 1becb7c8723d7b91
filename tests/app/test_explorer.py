"""The explorer page through Streamlit's AppTest: what a user sees and what it costs.

Layer, opacity, colormap and method are the browser-side viewer's controls, which AppTest cannot use: a test sets
the session state a report of the viewer sets (``apply_viewer_view``), or a link, and reads what the viewer is sent
(``viewer_data``). tests/e2e drives the viewer itself in a browser.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard.gallery import GALLERY_SIZE
from dashboard.shell import LINK_ICON
from dashboard.state import ExplorerState as E
from gradcam_core import CAM_METHODS, denormalise, list_conv_layers
from models import DEFAULT_WORKSPACE, load_workspace
from tests.app.helpers import (
    APP,
    RUN_TIMEOUT,
    assert_clean,
    image_by_caption,
    main_images,
    report,
    run_app,
    viewer_data,
)


@pytest.fixture(scope="module")
def shapes():
    return load_workspace(DEFAULT_WORKSPACE)


def gallery_buttons(at):
    return [b for b in at.button if str(b.key).startswith("explorer.pick.")]


def strip_buttons(at):
    return [b for b in at.button if str(b.key).startswith("explorer.strip.")]


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def shown_view(at: AppTest) -> dict:
    """The view the viewer is told to show: layer, opacity, colormap, method."""
    view = viewer_data(at)["view"]
    return {field: view[field] for field in ("layer", "opacity", "colormap", "method")}


def test_first_render_shows_one_explained_image_and_the_gallery(engine_calls, shapes):
    at = run_app()
    assert_clean(at)
    assert at.title[0].value == "Grad-CAM explorer"
    views = main_images(at)
    assert len(set(views.values())) == 3
    assert at.get("plotly_chart"), "the top-5 chart is missing"
    assert len(gallery_buttons(at)) == GALLERY_SIZE
    assert [b.label for b in at.download_button] == ["overlay.png", "heatmap.png", "map.npy", "view.json"]
    # Only the selected image is explained (its predicted class, plus the true class when misclassified) —
    # never the 20 gallery images — and each call is a single image. The prediction comes from the same pass.
    sample = at.session_state[E.sample]
    misclassified = int(np.argmax(shapes.test_logits[sample])) != int(shapes.test_set.labels[sample])
    assert engine_calls["explain"] == 1 + misclassified and engine_calls["predict"] == 0
    assert engine_calls.explain_batches == [1] * engine_calls["explain"]
    assert engine_calls["explain_classes"] == engine_calls["explain_topk"] == 0
    assert at.query_params["ws"] == DEFAULT_WORKSPACE
    assert at.query_params["layer"] == shapes.default_layer
    data = viewer_data(at)
    assert data["sample"] == str(sample) and data["method"] == "gradcam"
    assert data["target"] == shapes.class_names[int(np.argmax(shapes.test_logits[sample]))]  # the predicted class
    assert shown_view(at) == {"layer": shapes.default_layer, "opacity": 0.5, "colormap": "jet", "method": "gradcam"}


def test_every_page_renders():
    at = run_app()
    pages = sorted((APP.parent / "pages").glob("*.py"))
    assert pages
    for page in pages:  # switch_page refuses a file st.navigation did not register: no page is forgotten
        at.switch_page(str(page.relative_to(APP.parent))).run()
        assert_clean(at)
        assert at.title, f"{page.name} drew no title"
        assert at.selectbox(key="ws").value == DEFAULT_WORKSPACE, f"{page.name} lost the sidebar"


def test_a_page_run_without_app_py_draws_the_shell_itself():
    # What Streamlit does for the first request of a fresh server to /explorer (see dashboard.shell.current).
    at = AppTest.from_file(str(APP.parent / "pages" / "explorer.py"), default_timeout=RUN_TIMEOUT).run()
    assert_clean(at)
    assert at.selectbox(key="ws").value == DEFAULT_WORKSPACE
    main_images(at)
    # and again on the next run: the sidebar must not vanish after the first interaction
    report(at, opacity=0.8)
    assert_clean(at)
    assert at.selectbox(key="ws").value == DEFAULT_WORKSPACE
    main_images(at)


def test_the_viewer_offers_exactly_the_conv_layers_with_shapes(shapes):
    at = run_app()
    layers = list_conv_layers(shapes.model)
    offered = viewer_data(at)["payload"]["layers"]  # [name, label, h, w, offset]
    assert [name for name, *_ in offered] == layers
    assert all(label.startswith(f"{name} · ") and "×" in label for name, label, *_ in offered)
    assert shown_view(at)["layer"] == shapes.default_layer
    assert [b.key for b in strip_buttons(at)] == [f"explorer.strip.{name}" for name in layers]


def test_a_view_change_follows_in_url_downloads_and_strip_and_calls_no_engine(engine_calls, shapes):
    at = run_app()
    before_calls = dict(engine_calls)
    first = main_images(at)
    payload = viewer_data(at)["payload"]["id"]
    view_json = at.download_button[3].proto.url  # a content-addressed media URL

    layer = list_conv_layers(shapes.model)[2]
    report(at, layer=layer, opacity=0.85, colormap="viridis")
    assert_clean(at)
    assert viewer_data(at)["payload"]["id"] == payload  # the same maps: the browser redraws, nothing is resent
    after = main_images(at)
    assert after["heatmap"] != first["heatmap"] and after["overlay"] != first["overlay"]
    assert {k: at.query_params[k] for k in ("layer", "opacity", "colormap")} == {
        "layer": layer, "opacity": "0.85", "colormap": "viridis"}
    assert [b.key for b in strip_buttons(at) if b.proto.type == "primary"] == [f"explorer.strip.{layer}"]
    assert at.download_button[3].label == "view.json" and at.download_button[3].proto.url != view_json
    assert at.session_state[E.saved_view].view.layer == layer  # what view.json and other pages are given

    report(at, method="layercam")  # another gradient method: from the same cached pass
    assert_clean(at)
    data = viewer_data(at)
    assert data["method"] == "layercam" and data["payload"]["id"] != payload
    assert at.query_params["method"] == "layercam"
    assert dict(engine_calls) == before_calls, "a view change recomputed something"


def test_eigen_cam_is_computed_on_demand_once_per_image_and_claims_no_target(engine_calls, shapes):
    at = run_app()
    explains = engine_calls["explain"]
    report(at, method="eigencam")  # the viewer reports a new method at once
    assert_clean(at)
    assert engine_calls["explain"] == explains + 1
    # It does not use a target class, so the picker is off and the viewer names none.
    assert at.selectbox(key=E.target).disabled
    data = viewer_data(at)
    assert data["method"] == "eigencam" and data["method_title"] == "Eigen-CAM" and data["target"] is None

    report(at, method="gradcam")
    at.selectbox(key=E.target).set_value(1).run()  # another class for the gradient methods...
    assert viewer_data(at)["target"] == shapes.class_names[1]
    calls = engine_calls["explain"]
    report(at, method="eigencam")
    assert_clean(at)
    assert engine_calls["explain"] == calls  # ...and Eigen-CAM is reused: it was computed once for this image


def test_layer_strip_selects_a_layer(engine_calls, shapes):
    at = run_app()
    calls = dict(engine_calls)
    first_layer = list_conv_layers(shapes.model)[0]
    revision = viewer_data(at)["view"]["revision"]
    at.button(key=f"explorer.strip.{first_layer}").click().run()
    assert_clean(at)
    view = viewer_data(at)["view"]
    # The server sets the viewer's layer: a new revision that names the field, so the browser takes it.
    assert view["layer"] == first_layer and view["revision"] == revision + 1 and view["fields"] == ["layer"]
    assert at.session_state[E.layer] == first_layer
    assert at.query_params["layer"] == first_layer
    assert at.button(key=f"explorer.strip.{first_layer}").proto.type == "primary"
    assert dict(engine_calls) == calls


def test_query_parameters_reproduce_the_view(shapes):
    at = run_app()
    at.number_input(key=E.seed).set_value(7).run()
    picked = gallery_buttons(at)[3]
    picked.click().run()
    layer = list_conv_layers(shapes.model)[4]
    at.selectbox(key=E.target).set_value(2)
    report(at, layer=layer, method="gradcampp", opacity=0.3, colormap="inferno")
    assert_clean(at)
    link = dict(at.query_params)
    sample = int(picked.key.rsplit(".", 1)[1])
    assert link == {"ws": DEFAULT_WORKSPACE, "seed": "7", "filter": "all", "sample": str(sample), "layer": layer,
                    "method": "gradcampp", "target": "2", "opacity": "0.3", "colormap": "inferno"}
    view = main_images(at)
    header = at.markdown[0].value if at.markdown else ""

    fresh = run_app(link)  # a new browser session opening the shared link
    assert_clean(fresh)
    assert not [w.value for w in fresh.warning if w.icon == LINK_ICON]
    assert fresh.session_state[E.sample] == sample
    assert fresh.number_input(key=E.seed).value == 7
    assert fresh.selectbox(key=E.target).value == 2
    assert shown_view(fresh) == {"layer": layer, "opacity": 0.3, "colormap": "inferno", "method": "gradcampp"}
    assert viewer_data(fresh)["sample"] == str(sample)
    assert main_images(fresh) == view
    assert (fresh.markdown[0].value if fresh.markdown else "") == header
    assert dict(fresh.query_params) == link


def test_bad_query_parameters_fall_back_to_defaults_with_warnings(shapes):
    at = run_app({"ws": "no-such-workspace", "seed": "-3", "filter": "class:99", "sample": "99999999",
                  "layer": "layer9.conv", "method": "magic", "target": "zebra", "opacity": "2",
                  "colormap": "rainbow"})
    assert_clean(at)
    warnings = " ".join(w.value for w in at.warning if w.icon == LINK_ICON)
    for word in ("no-such-workspace", "seed", "filter", "sample", "layer9.conv", "magic", "zebra", "opacity",
                 "rainbow"):
        assert word in warnings, f"no warning mentions {word!r}: {warnings}"
    assert shown_view(at) == {"layer": shapes.default_layer, "opacity": 0.5, "colormap": "jet", "method": "gradcam"}
    assert at.query_params["ws"] == DEFAULT_WORKSPACE
    main_images(at)


def test_an_uploaded_image_is_explained_and_a_bad_file_is_refused(engine_calls, shapes):
    at = run_app()
    explains = engine_calls["explain"]
    picture = np.asarray(shapes.test_set.image(0).resize((100, 80)))  # any size: the workspace transform resizes
    at.file_uploader(key=E.uploader).set_value(("mine.png", png(picture), "image/png")).run()
    assert_clean(at)
    assert any("Uploaded image · mine.png" in m.value for m in at.markdown)
    assert engine_calls["explain"] == explains + 1
    assert at.query_params["sample"].startswith("upload:")
    assert "true" not in at.selectbox(key=E.target).options
    data = viewer_data(at)
    assert data["sample"] == at.query_params["sample"] and data["sample_label"] == "uploaded image mine.png"
    as_the_model_sees_it = denormalise(shapes.transform(Image.fromarray(picture)), shapes.mean, shapes.std)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data["blobs"]["image_png"]))),
                          as_the_model_sees_it)
    main_images(at)

    at.file_uploader(key=E.uploader).set_value(("notes.png", b"this is not an image", "image/png")).run()
    assert not at.exception
    assert any("Could not use notes.png" in e.value for e in at.error)
    assert any(m.value.startswith("#### Test image #") for m in at.markdown)  # back on a test image
    main_images(at)


def test_misclassified_image_shows_predicted_and_true_class_maps(engine_calls):
    at = run_app()
    at.selectbox(key=E.filter).set_value("misclassified").run()
    assert_clean(at)
    if not gallery_buttons(at):
        pytest.skip("the default model makes no mistake on its test split")
    assert any(m.value.startswith("##### Why **") for m in at.markdown)
    image_by_caption(at, "heatmap · predicted:")
    image_by_caption(at, "heatmap · true:")
    # Switching the target to the true class reuses the comparison's cached maps.
    calls = dict(engine_calls)
    at.selectbox(key=E.target).set_value("true").run()
    assert_clean(at)
    assert dict(engine_calls) == calls

    at.selectbox(key=E.filter).set_value("correct").run()
    assert_clean(at)
    assert not any(m.value.startswith("##### Why **") for m in at.markdown)


def test_shuffle_draws_a_new_seeded_gallery():
    at = run_app()
    before = [b.key for b in gallery_buttons(at)]
    shuffle = next(b for b in at.button if b.label == "Shuffle")
    shuffle.click().run()
    assert_clean(at)
    seed = at.number_input(key=E.seed).value
    assert at.query_params["seed"] == str(seed)
    after = [b.key for b in gallery_buttons(at)]
    assert len(after) == GALLERY_SIZE
    assert after != before or seed == 0


def test_switching_workspace_resets_the_view_and_shows_the_shortcut_warning():
    at = run_app()
    at.selectbox(key="ws").set_value("shapes-shortcut").run()
    assert_clean(at)
    shortcut = load_workspace("shapes-shortcut")
    assert at.query_params["ws"] == "shapes-shortcut"
    assert any(shortcut.description[:40] in w.value for w in at.warning)
    data = viewer_data(at)
    assert data["view"]["layer"] == shortcut.default_layer and data["method_title"] == CAM_METHODS["gradcam"].title
