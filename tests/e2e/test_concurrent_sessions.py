"""Two people on one server at once: two browser contexts (separate sessions, cookies and URLs) change the view at
the same moment — one in its viewer, the other with a layer-strip click, which the server answers — then rerun
again, and each keeps its own view: in its viewer's data-* attributes, its pixels, its URL, and after a reload of
the other."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.browser_helpers import (
    IDLE,
    RENDER_MS,
    assert_no_traceback,
    header,
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


def test_two_sessions_change_their_views_at_the_same_time(browser, server, artifacts_dir):
    contexts = [browser.new_context(viewport={"width": 1600, "height": 1000}) for _ in range(2)]
    try:
        pages = [context.new_page() for context in contexts]
        for page in pages:  # both load at once: the second does not wait for the first's cold start
            page.goto(server + "/")
        for page in pages:
            wait_until_rendered(page, viewer=True)
            assert_no_traceback(page)
        start = shown(pages[0])
        names = [t.strip() for t in layer_strip(pages[0]).get_by_role("button").all_inner_texts() if t.strip()]
        wanted = [name for name in names if name != start["layer"]][:2]
        assert len(wanted) == 2, names
        headers = [header(page) for page in pages]

        # At once: the first picks a layer and a colormap in its viewer, the second clicks the strip.
        first, second = pages
        viewer_control(first, "Layer").select_option(wanted[0])
        viewer_control(first, "Colormap").select_option("gray")
        layer_strip(second).get_by_role("button", name=wanted[1], exact=True).click(no_wait_after=True)
        wait_shown(first, layer=wanted[0], colormap="gray")
        wait_shown(second, layer=wanted[1], colormap="jet")
        wait_for_url_params(first, layer=wanted[0], colormap="gray")
        wait_for_url_params(second, layer=wanted[1], colormap="jet")

        # Each reruns again (a report, a strip click): neither picks up the other's view.
        viewer_control(second, "Opacity").press("ArrowRight")
        layer_strip(first).get_by_role("button", name=wanted[0], exact=True).click(no_wait_after=True)
        wait_for_url_params(second, opacity="0.55")
        wait_shown(second, opacity="0.55")

        drawn = []
        for index, (page, layer) in enumerate(zip(pages, wanted, strict=True)):
            page.wait_for_selector(IDLE, timeout=RENDER_MS)
            page.screenshot(path=str(artifacts_dir / "e2e" / f"concurrent-session-{index}.png"))
            assert_no_traceback(page)
            assert shown(page)["layer"] == url_param(page, "layer") == layer
            assert header(page) == headers[index]  # same image as before: only the view changed
            drawn.append(pictures(page))
        assert not np.array_equal(drawn[0]["heatmap"], drawn[1]["heatmap"])

        # A reload of the first (a new session) does not move the second's view.
        first.reload()
        wait_until_rendered(first)
        assert shown(first)["layer"] == wanted[0] and shown(first)["colormap"] == "gray"  # from its URL
        assert shown(second)["layer"] == wanted[1] and shown(second)["colormap"] == "jet"
        assert shown(second)["opacity"] == "0.55"
        assert np.array_equal(pictures(second)["heatmap"], drawn[1]["heatmap"])
    finally:
        for context in contexts:
            context.close()
