"""The explorer in a real browser: ``streamlit run app.py`` headless, driven with Playwright and Chromium.

The picture is the CAM viewer (DESIGN.md, "The explorer's viewer"): its data-* attributes say what is drawn, its
canvases hold the pixels. Each control changes the picture (Layer, Opacity and Colormap in the browser, before any
rerun; Method and Target on the server), the URL follows, a shared link restores the whole view, the downloads are
the pictures on screen, and reruns stay in their fragments without resending the viewer's payload.

Screenshots go to artifacts/e2e/ (gitignored). Without Chromium the test skips and says how to get it; with the
environment variable CI set it fails instead, so a CI run cannot pass without having tested in a browser.
"""

from __future__ import annotations

import io
import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image

from tests.e2e.browser_helpers import (
    ALL_IMAGES_LOADED,
    IDLE,
    RENDER_MS,
    VIEWER,
    VIEWER_DRAWN,
    assert_no_traceback,
    canvas,
    layer_strip,
    pictures,
    shown,
    url_param,
    viewer_control,
    wait_for_url_params,
    wait_shown,
    wait_until_rendered,
)

pytestmark = pytest.mark.browser
VIEWPORT = {"width": 1600, "height": 1000}


def open_explorer(browser, url: str):
    """A new browser session (its own context) on ``url``, drawn."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(url)
    wait_until_rendered(page, viewer=True)
    assert_no_traceback(page)
    return page


def changed(before: dict, after: dict) -> set[str]:
    return {which for which in before if not np.array_equal(before[which], after[which])}


def drawn_before_any_rerun(page, action) -> None:
    """Run ``action`` and check that the viewer redrew before the app's script started to run (if it did)."""
    page.locator(VIEWER).evaluate("""viewer => {
        const app = document.querySelector("[data-testid='stApp']");
        window.viewerTimes = {drawn: null, rerun: null};
        const start = performance.now();
        new MutationObserver((_, o) => { window.viewerTimes.drawn ??= performance.now() - start; o.disconnect(); })
            .observe(viewer, {attributes: true, attributeFilter: ['data-layer', 'data-opacity', 'data-colormap']});
        new MutationObserver((_, o) => {
            if (app.getAttribute('data-test-script-state') === 'running') {
                window.viewerTimes.rerun ??= performance.now() - start; o.disconnect(); }
        }).observe(app, {attributes: true});
    }""")
    action()
    page.wait_for_function("window.viewerTimes.drawn !== null", timeout=5_000)
    times = page.evaluate("window.viewerTimes")
    assert times["rerun"] is None or times["rerun"] > times["drawn"], f"the picture waited for a rerun: {times}"


def download(page, label: str) -> bytes:
    with page.expect_download(timeout=RENDER_MS) as started:
        page.get_by_role("button", name=label, exact=True).click()
    return started.value.path().read_bytes()


def test_explorer_in_a_browser(browser, server, artifacts_dir):
    shots = artifacts_dir / "e2e"
    page = browser.new_context(viewport=VIEWPORT).new_page()
    started = time.monotonic()
    page.goto(server + "/")
    page.locator(VIEWER_DRAWN).wait_for(timeout=RENDER_MS)
    first_heatmap_s = time.monotonic() - started
    wait_until_rendered(page)
    first_render_s = time.monotonic() - started
    page.screenshot(path=str(shots / "explorer.png"))

    assert_no_traceback(page)
    view = shown(page)
    assert view == {"sample": url_param(page, "sample"), "layer": url_param(page, "layer"), "method": "gradcam",
                    "target": view["target"], "opacity": "0.5", "colormap": "jet"}
    verdict = page.get_by_text(re.compile(r"^True .+ · predicted ")).first.inner_text()
    assert f"predicted {view['target']} (" in verdict  # the predicted class is explained
    for role, name in (("combobox", "Layer"), ("combobox", "Method"), ("slider", "Opacity"),
                       ("combobox", "Colormap")):
        assert page.locator(VIEWER).get_by_role(role, name=name, exact=True).count() == 1, (role, name)
    for name in ("Original", "Heatmap", "Overlay"):
        picture = page.get_by_role("img", name=re.compile(f"^{name}"))
        assert picture.count() == 1 and picture.is_visible(), name
        box = picture.bounding_box()
        assert box and box["width"] > 150 and box["height"] > 150, f"{name} too small: {box}"
    chart = page.locator("[data-testid='stPlotlyChart']").filter(has_text="Top-5 predictions")
    chart.wait_for(state="visible", timeout=RENDER_MS)
    assert chart.locator(".bars path, .bar path").count() >= 5
    assert len(page.locator("[data-testid='stImage']").all()) > 20  # gallery and layer strip

    # A layer-strip click: the server sets the viewer's layer.
    names = [text.strip() for text in layer_strip(page).get_by_role("button").all_inner_texts() if text.strip()]
    assert len(names) >= 2, names
    new_layer = next(name for name in names if name != view["layer"])
    before = pictures(page)
    layer_strip(page).get_by_role("button", name=new_layer, exact=True).click()
    wait_shown(page, layer=new_layer)
    wait_for_url_params(page, layer=new_layer)
    assert changed(before, pictures(page)) == {"heatmap", "overlay"}
    assert viewer_control(page, "Layer").input_value() == new_layer
    page.screenshot(path=str(shots / "explorer-layer-changed.png"))

    # The whole page, for a person to look at.
    page.set_viewport_size({"width": 1600, "height": 2600})
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=RENDER_MS)
    page.screenshot(path=str(shots / "explorer-full.png"))
    page.context.close()
    print(f"cold server: viewer drawn after {first_heatmap_s:.1f} s, page complete after {first_render_s:.1f} s")


def test_each_control_changes_the_picture_the_url_follows_and_a_link_restores_it(browser, server, artifacts_dir):
    page = open_explorer(browser, server + "/?sample=7")
    assert shown(page)["sample"] == "7"
    layers = viewer_control(page, "Layer").evaluate("s => [...s.options].map(o => o.value)")
    before = pictures(page)

    # Layer, from the keyboard: a closed <select> steps to the option above; drawn before any rerun.
    layer = viewer_control(page, "Layer")
    assert layers.index(layer.input_value()) > 0, "the default layer is the first: nothing above it"
    expected = layers[layers.index(layer.input_value()) - 1]
    layer.focus()
    drawn_before_any_rerun(page, lambda: page.keyboard.press("ArrowUp"))
    wait_shown(page, layer=expected)
    after = pictures(page)
    assert changed(before, after) == {"heatmap", "overlay"}
    assert expected in page.get_by_role("img", name=re.compile("^Heatmap")).get_attribute("aria-label")
    assert expected in page.locator(VIEWER).get_by_role("status").inner_text()

    before = after
    drawn_before_any_rerun(page, lambda: viewer_control(page, "Opacity").press("ArrowRight"))
    wait_shown(page, opacity="0.55")
    after = pictures(page)
    assert changed(before, after) == {"overlay"}

    before = after
    drawn_before_any_rerun(page, lambda: viewer_control(page, "Colormap").select_option("viridis"))
    wait_shown(page, colormap="viridis")
    after = pictures(page)
    assert changed(before, after) == {"heatmap", "overlay"}
    wait_for_url_params(page, layer=expected, opacity="0.55", colormap="viridis")
    page.wait_for_selector(IDLE, timeout=RENDER_MS)
    primary = page.locator("[data-testid='stBaseButton-primary']")
    highlighted = layer_strip(page).get_by_role("button").and_(primary).all_inner_texts()
    assert [text.strip() for text in highlighted] == [expected]

    before = after
    viewer_control(page, "Method").select_option("layercam")  # other maps: the server computes them
    wait_shown(page, method="layercam")
    after = pictures(page)
    assert changed(before, after) == {"heatmap", "overlay"}
    wait_for_url_params(page, method="layercam")

    before, target = after, shown(page)["target"]
    page.get_by_role("combobox", name="Target class").click()
    other = page.get_by_role("option").filter(has_not_text=re.compile(rf"(: |^){re.escape(target)}$")).nth(2)
    other_index, other_class = other.inner_text().split(": ", 1)
    other.click()
    wait_shown(page, target=other_class)
    after = pictures(page)
    assert changed(before, after) == {"heatmap", "overlay"}
    wait_for_url_params(page, target=other_index)
    view = shown(page)
    assert view == {"sample": "7", "layer": expected, "method": "layercam", "target": other_class,
                    "opacity": "0.55", "colormap": "viridis"}

    # The downloads are the pictures on screen, and the JSON names the view.
    heatmap = np.asarray(Image.open(io.BytesIO(download(page, "heatmap.png"))).convert("RGB"))
    assert np.array_equal(heatmap, after["heatmap"])
    overlay = np.asarray(Image.open(io.BytesIO(download(page, "overlay.png"))).convert("RGB"))
    assert np.array_equal(overlay, after["overlay"])
    about = json.loads(download(page, "view.json"))
    assert (about["layer"], about["method"], about["opacity"], about["colormap"], about["target"]["label"]) == (
        expected, "layercam", 0.55, "viridis", other_class)
    assert about["sample"]["index"] == 7
    assert parse_qs(urlsplit(about["link"]).query) == parse_qs(urlsplit(page.url).query)
    page.screenshot(path=str(artifacts_dir / "e2e" / "explorer-view-changed.png"))

    # The link restores all of it in a new session.
    fresh = open_explorer(browser, page.url)
    assert shown(fresh) == view
    assert fresh.get_by_role("combobox", name="Target class").input_value().endswith(other_class)
    for which, pixels in pictures(fresh).items():
        assert np.array_equal(pixels, after[which]), which
    assert fresh.url == page.url
    fresh.context.close()
    page.context.close()


def frames_recorder(page) -> list[bytes]:
    received: list[bytes] = []
    page.on("websocket", lambda socket: socket.on(
        "framereceived", lambda frame: received.append(frame if isinstance(frame, bytes) else frame.encode())))
    return received


SIDEBAR = b"Test accuracy"  # the sidebar's metric: sent again only when the whole app reruns
GALLERY = b"explorer.pick."  # the gallery's buttons
PAYLOAD = b'"image_png"'  # the viewer's picture data


def test_reruns_stay_in_their_fragments_and_reports_resend_no_picture(browser, server):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    received = frames_recorder(page)
    page.goto(server + "/")
    wait_until_rendered(page, viewer=True)
    assert any(SIDEBAR in frame for frame in received) and any(PAYLOAD in frame for frame in received)

    received.clear()  # a report of the viewer: the view fragment reruns, the picture is not sent again
    viewer_control(page, "Colormap").select_option("magma")
    wait_for_url_params(page, colormap="magma")
    page.wait_for_selector(IDLE, timeout=RENDER_MS)
    assert received, "the report reran nothing"
    assert not any(PAYLOAD in frame for frame in received), "a report resent the viewer's payload"
    assert not any(SIDEBAR in frame or GALLERY in frame for frame in received)
    report_bytes = sum(map(len, received))

    received.clear()  # a new method: new maps for the viewer, still the view fragment alone
    viewer_control(page, "Method").select_option("gradcampp")
    wait_shown(page, method="gradcampp")
    page.wait_for_selector(IDLE, timeout=RENDER_MS)
    assert any(PAYLOAD in frame for frame in received)
    assert not any(SIDEBAR in frame or GALLERY in frame for frame in received)

    received.clear()  # a gallery click: the view and the gallery, not the sidebar
    button = page.get_by_role("button", name=re.compile(r"^#\d+$")).nth(3)
    index = button.inner_text().strip()[1:]
    button.click()
    wait_shown(page, sample=index, method="gradcampp", colormap="magma")
    page.wait_for_selector(IDLE, timeout=RENDER_MS)
    assert any(GALLERY in frame for frame in received) and any(PAYLOAD in frame for frame in received)
    assert not any(SIDEBAR in frame for frame in received)
    assert url_param(page, "sample") == index
    assert canvas(page, "original").shape[0] > 150
    page.context.close()
    print(f"a report's rerun received {report_bytes} bytes")


def test_a_visit_to_another_page_keeps_the_view_even_an_unreported_change(browser, server):
    page = open_explorer(browser, server + "/")
    viewer_control(page, "Opacity").press("ArrowLeft")
    wait_shown(page, opacity="0.45")
    wait_for_url_params(page, opacity="0.45")
    viewer_control(page, "Colormap").select_option("cividis")  # and leave before the report goes (debounce)
    page.get_by_role("link", name="Activation maps").click()
    page.get_by_role("heading", name="Activation maps").wait_for(timeout=RENDER_MS)
    page.get_by_role("link", name="Grad-CAM explorer").click()
    page.locator(VIEWER_DRAWN).wait_for(timeout=RENDER_MS)
    wait_shown(page, opacity="0.45", colormap="cividis")
    wait_for_url_params(page, opacity="0.45", colormap="cividis")  # the remounted viewer told the server
    page.wait_for_selector(IDLE, timeout=RENDER_MS)
    assert_no_traceback(page)
    page.context.close()
