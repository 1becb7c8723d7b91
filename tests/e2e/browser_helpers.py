"""Shared by the browser tests: Chromium settings, a streamlit server on a free port, waiting for renders, and
reading the explorer's CAM viewer (its data-* attributes and canvases: DESIGN.md, "The explorer's viewer")."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.server import ServerError, streamlit_run

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
SERVER_START_S = 180
# A cold first render loads the model and classifies the test split; on a busy 2-core machine that is slow.
RENDER_MS = 240_000
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
ALL_IMAGES_LOADED = """() => {
    const images = [...document.querySelectorAll("[data-testid='stImage'] img")];
    return images.length > 0 && images.every(img => img.complete && img.naturalWidth > 0);
}"""


def unavailable(reason: str):
    message = (f"{reason}; the browser test needs Debian's Chromium at {CHROMIUM}: `apt-get install chromium` "
               "(or `make browser-deps` as root), or point the CHROMIUM environment variable at a Chromium binary")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium_browser():
    """One headless Chromium for a test module (skipped here, failed in CI, when Playwright or Chromium is missing)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is not installed (pip install -e '.[dev]')")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        unavailable("Chromium was not found")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def server_cache_dir(folder: Path):
    """``GRADCAM_CACHE_DIR`` points at ``folder`` (a server started meanwhile inherits it), then as before."""
    previous = os.environ.get("GRADCAM_CACHE_DIR")
    os.environ["GRADCAM_CACHE_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("GRADCAM_CACHE_DIR", None)
        else:
            os.environ["GRADCAM_CACHE_DIR"] = previous


@contextmanager
def streamlit_server(log_path: Path, extra_args: tuple[str, ...] = (), script: str = "app.py"):
    """``streamlit run <script>`` (default app.py) on a free port, yielding its URL; always terminated, also when a
    test fails."""
    try:
        with streamlit_run(script, REPO, log_path, extra_args, start_s=SERVER_START_S) as server:
            yield server.url
    except ServerError as error:
        pytest.fail(str(error))


VIEWER = '[data-testid="cam-viewer"]'
VIEWER_DRAWN = f"{VIEWER}[data-layer]"
REPORTED_MS = 15_000  # a viewer report (debounced 250 ms) and the fragment rerun it causes
CHANGE_MS = 60_000  # a change that needs the server (a new method's maps) on a busy machine


def wait_until_rendered(page, viewer: bool = False) -> None:
    """The explorer (or another page) has drawn: its images loaded, no script running, the viewer drawn when
    ``viewer`` (the explorer: its element can mount after the script has rested) or when it is already there."""
    page.wait_for_selector("[data-testid='stImage'] img", timeout=RENDER_MS)
    page.wait_for_selector(IDLE, timeout=RENDER_MS)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=RENDER_MS)
    if viewer or page.locator(VIEWER).count():
        page.locator(VIEWER_DRAWN).wait_for(timeout=RENDER_MS)


def shown(page) -> dict[str, str]:
    """What the explorer's viewer shows: its data-* attributes (set after drawing), without data-testid."""
    return page.locator(VIEWER).evaluate(
        "e => Object.fromEntries([...e.attributes].filter(a => a.name.startsWith('data-') && a.name !== 'data-testid')"
        ".map(a => [a.name.slice(5), a.value]))")


def wait_shown(page, timeout: int = CHANGE_MS, **expected: str) -> None:
    """Wait until the viewer shows these data-* values (``opacity="0.55"``)."""
    selector = VIEWER + "".join(f'[data-{name}="{value}"]' for name, value in expected.items())
    page.locator(selector).wait_for(timeout=timeout)


def canvas(page, which: str) -> np.ndarray:
    """(H, W, 3) pixels of the viewer's original / heatmap / overlay canvas."""
    url = page.locator(f"{VIEWER} canvas.picture-{which}").evaluate("c => c.toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def pictures(page) -> dict[str, np.ndarray]:
    return {which: canvas(page, which) for which in ("original", "heatmap", "overlay")}


def viewer_control(page, name: str):
    """The viewer's Layer / Method / Colormap select (combobox) or Opacity range (slider)."""
    return page.locator(VIEWER).get_by_role("slider" if name == "Opacity" else "combobox", name=name, exact=True)


def url_param(page, name: str) -> str | None:
    match = re.search(rf"[?&]{name}=([^&]*)", page.url)
    return None if match is None else urllib.parse.unquote_plus(match.group(1))


def wait_for_url_params(page, timeout: int = REPORTED_MS, **expected: str) -> None:
    """Wait until the URL holds these query parameters (the view fragment writes them after a report)."""
    page.wait_for_function(
        """expected => { const params = new URLSearchParams(location.search);
                         return Object.entries(expected).every(([k, v]) => params.get(k) === v); }""",
        arg=expected, timeout=timeout)


def header(page) -> str:
    return page.get_by_text(re.compile(r"^Test image #\d+")).first.inner_text()


def layer_strip(page):
    return page.locator("[data-testid='stExpander']").filter(has_text="Layer strip")


def assert_no_traceback(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, "the page shows a traceback"
