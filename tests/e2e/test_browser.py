"""The dashboard in a real browser: ``streamlit run app.py`` headless, driven with Playwright and Chromium.

Screenshots go to artifacts/e2e/ (gitignored). Without Chromium the test skips and says how to get it; with the
environment variable CI set it fails instead, so a CI run cannot pass without having tested in a browser.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.browser_helpers import (
    ALL_IMAGES_LOADED,
    RENDER_MS,
    assert_no_traceback,
    header,
    layer_shown,
    view_image,
    wait_until_rendered,
)

pytestmark = pytest.mark.browser


def test_explorer_in_a_browser(browser, server, artifacts_dir):
    shots = artifacts_dir / "e2e"
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    started = time.monotonic()
    page.goto(server + "/")
    page.locator("[data-testid='stImage']").filter(has_text=re.compile(r"^opacity \d")).locator("img").wait_for(
        state="visible", timeout=RENDER_MS)
    first_heatmap_s = time.monotonic() - started
    wait_until_rendered(page)
    first_render_s = time.monotonic() - started
    page.screenshot(path=str(shots / "explorer.png"))

    assert_no_traceback(page)
    original = view_image(page, "as the model sees it")
    heatmap = view_image(page, re.compile(r"^Grad-CAM · \S+ \(\d+×\d+\)"))
    overlay = view_image(page, re.compile(r"^opacity \d"))
    for image in (original, heatmap, overlay):
        assert image.is_visible()
        box = image.bounding_box()
        assert box and box["width"] > 150 and box["height"] > 150, f"image too small: {box}"
    chart = page.locator("[data-testid='stPlotlyChart']").filter(has_text="Top-5 predictions")
    chart.wait_for(state="visible", timeout=RENDER_MS)
    assert chart.locator(".bars path, .bar path").count() >= 5
    assert len(page.locator("[data-testid='stImage']").all()) > 20  # gallery, views and layer strip

    url = page.url
    current_layer = re.search(r"[?&]layer=([^&]+)", url).group(1)
    strip = page.locator("[data-testid='stExpander']").filter(has_text="Layer strip")
    names = [text.strip() for text in strip.get_by_role("button").all_inner_texts() if text.strip()]
    assert len(names) >= 2, names
    new_layer = next(name for name in names if name != current_layer)
    old_src = overlay.get_attribute("src")
    old_bytes = page.request.get(server + old_src if old_src.startswith("/") else old_src).body()

    strip.get_by_role("button", name=new_layer, exact=True).click()
    page.wait_for_url(re.compile(rf"[?&]layer={re.escape(new_layer)}(&|$)"), timeout=RENDER_MS)
    wait_until_rendered(page)
    overlay = view_image(page, re.compile(r"^opacity \d"))
    new_src = overlay.get_attribute("src")
    assert new_src != old_src
    assert page.request.get(server + new_src if new_src.startswith("/") else new_src).body() != old_bytes
    assert layer_shown(page).startswith(f"{new_layer} · ")
    page.screenshot(path=str(shots / "explorer-layer-changed.png"))
    shown = header(page)

    link = page.url
    fresh = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()  # no shared session
    fresh.goto(link)
    wait_until_rendered(fresh)
    fresh.screenshot(path=str(shots / "shared-link.png"))
    assert_no_traceback(fresh)
    assert header(fresh) == shown
    assert layer_shown(fresh).startswith(f"{new_layer} · ")
    assert view_image(fresh, re.compile(r"^opacity \d")).get_attribute("src") == new_src  # same picture
    assert fresh.url == link

    # The whole page, for a person to look at.
    page.set_viewport_size({"width": 1600, "height": 2600})
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=RENDER_MS)
    page.screenshot(path=str(shots / "explorer-full.png"))
    print(f"cold server: overlay shown after {first_heatmap_s:.1f} s, page complete after {first_render_s:.1f} s")
