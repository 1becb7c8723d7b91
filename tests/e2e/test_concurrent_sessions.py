"""Two people on one server at once: two browser contexts (separate sessions, cookies and URLs) change the layer
at the same moment, and each keeps its own view: its layer in the picker, in the URL and in the overlay."""

from __future__ import annotations

import re

import pytest

from tests.e2e.browser_helpers import (
    RENDER_MS,
    assert_no_traceback,
    header,
    layer_shown,
    view_image,
    wait_until_rendered,
)

pytestmark = pytest.mark.browser
OVERLAY = re.compile(r"^opacity \d")


def _strip(page):
    return page.locator("[data-testid='stExpander']").filter(has_text="Layer strip")


def _layer_param(page) -> str:
    return re.search(r"[?&]layer=([^&]+)", page.url).group(1)


def test_two_sessions_change_layers_at_the_same_time(browser, server, artifacts_dir):
    contexts = [browser.new_context(viewport={"width": 1600, "height": 1000}) for _ in range(2)]
    try:
        pages = [context.new_page() for context in contexts]
        for page in pages:  # both load at once: the second does not wait for the first's cold start
            page.goto(server + "/")
        for page in pages:
            wait_until_rendered(page)
            assert_no_traceback(page)
        start_layer = _layer_param(pages[0])
        names = [t.strip() for t in _strip(pages[0]).get_by_role("button").all_inner_texts() if t.strip()]
        wanted = [name for name in names if name != start_layer][:2]
        assert len(wanted) == 2, names
        shown = [header(page) for page in pages]

        for page, layer in zip(pages, wanted, strict=True):  # click both before either has re-rendered
            _strip(page).get_by_role("button", name=layer, exact=True).click(no_wait_after=True)
        for page, layer in zip(pages, wanted, strict=True):
            page.wait_for_url(re.compile(rf"[?&]layer={re.escape(layer)}(&|$)"), timeout=RENDER_MS)
            wait_until_rendered(page)

        overlays = []
        for index, (page, layer) in enumerate(zip(pages, wanted, strict=True)):
            page.screenshot(path=str(artifacts_dir / "e2e" / f"concurrent-session-{index}.png"))
            assert_no_traceback(page)
            assert layer_shown(page).startswith(f"{layer} · "), (index, layer_shown(page))
            assert _layer_param(page) == layer
            assert header(page) == shown[index]  # same image as before: only the layer changed
            view_image(page, re.compile(rf"^Grad-CAM · {re.escape(layer)} \("))
            overlays.append(view_image(page, OVERLAY).get_attribute("src"))
        assert overlays[0] != overlays[1], "both sessions show the same overlay for different layers"
        # Neither session was moved by the other's change.
        assert layer_shown(pages[0]).startswith(f"{wanted[0]} · ")
    finally:
        for context in contexts:
            context.close()
