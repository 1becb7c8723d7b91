"""The activation, t-SNE and analysis views in a real browser: each renders without a traceback, the embedding
page draws the shipped store's map at once. Screenshots: artifacts/e2e/view-*.png (gitignored)."""

from __future__ import annotations

import time

import pytest

from models import load_workspace
from tests.e2e.browser_helpers import (
    ALL_IMAGES_LOADED,
    RENDER_MS,
    assert_no_traceback,
    server_cache_dir,
    streamlit_server,
    wait_until_rendered,
)

pytestmark = pytest.mark.browser
VIEWPORT = {"width": 1600, "height": 1000}


@pytest.fixture(scope="module")
def embedding_cache(tmp_path_factory):
    """A fresh folder for the server's t-SNE cache (through the environment, which the server inherits)."""
    with server_cache_dir(tmp_path_factory.mktemp("embeddings")) as folder:
        yield folder


@pytest.fixture(scope="module")
def server(embedding_cache, artifacts_dir):
    """The shared server fixture, started after GRADCAM_CACHE_DIR points at ``embedding_cache``."""
    with streamlit_server(artifacts_dir / "e2e" / "test_views_browser.server.log") as url:
        yield url


@pytest.fixture(scope="module", autouse=True)
def app_opened_once(browser, server):
    """Open the app's root first, as a user does: until app.py has run once, Streamlit serves a page URL in its
    old multipage mode (see dashboard.shell.current), and the sidebar's navigation would show file names."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(server + "/")
    wait_until_rendered(page)
    page.close()


def visit(browser, url: str):
    page = browser.new_page(viewport=VIEWPORT)
    started = time.monotonic()
    page.goto(url)
    wait_until_rendered(page)
    return page, time.monotonic() - started


def test_activation_maps_page(browser, server, artifacts_dir):
    page, seconds = visit(browser, server + "/activations")
    assert_no_traceback(page)
    assert page.get_by_role("heading", name="Activation maps").is_visible()
    assert page.get_by_role("button", name="ch ", exact=False).count() >= 8
    page.screenshot(path=str(artifacts_dir / "e2e" / "view-activations.png"), full_page=True)
    page.get_by_role("button", name="ch ", exact=False).last.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "e2e" / "view-activations-grid.png"))
    print(f"activations first render {seconds:.1f} s")


def test_analysis_page(browser, server, artifacts_dir):
    page, seconds = visit(browser, server + "/analysis")
    assert_no_traceback(page)
    assert page.locator("[data-testid='stPlotlyChart']").first.is_visible()
    assert page.get_by_role("button", name="#", exact=False).count() >= 4
    page.screenshot(path=str(artifacts_dir / "e2e" / "view-analysis.png"), full_page=True)
    page.get_by_text("Correct vs misclassified", exact=False).first.scroll_into_view_if_needed()
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=RENDER_MS)
    page.screenshot(path=str(artifacts_dir / "e2e" / "view-analysis-grids.png"))
    print(f"analysis first render {seconds:.1f} s")


def test_the_embedding_page_draws_the_stores_map_at_once(browser, server, artifacts_dir):
    """digits ships a store: every test image is drawn with WebGL on opening, nothing to compute (the subset
    t-SNE computed on request without a store is AppTest's: tests/app/test_views.py)."""
    page = browser.new_page(viewport=VIEWPORT)
    started = time.monotonic()
    page.goto(server + "/tsne?ws=digits")
    count = """() => Math.max(0, ...[...document.querySelectorAll('.js-plotly-plot')].map(plot =>
        (plot._fullData || []).filter(trace => trace.type === 'scattergl')
                              .reduce((n, trace) => n + (trace.x ? trace.x.length : 0), 0)))"""
    page.wait_for_function(f"({count})() > 0", timeout=RENDER_MS)
    print(f"embedding page of digits drawn from its store {time.monotonic() - started:.1f} s")
    assert_no_traceback(page)
    points = page.evaluate(count)
    assert points == len(load_workspace("digits").test_set)
    assert page.get_by_role("button", name="Compute the t-SNE", exact=False).count() == 0
    page.locator("[data-testid='stPlotlyChart']").first.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "e2e" / "view-tsne.png"))
