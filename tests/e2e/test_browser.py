"""The dashboard in a real browser: ``streamlit run app.py`` headless, driven with Playwright and Chromium.

Screenshots go to artifacts/e2e/ (gitignored). Without Chromium the test skips and says how to get it; with the
environment variable CI set it fails instead, so a CI run cannot pass without having tested in a browser.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

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


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is not installed (pip install -r requirements-dev.txt)")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        unavailable("Chromium was not found")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(artifacts_dir):
    """``streamlit run app.py`` on a free port; always terminated, also when the test fails."""
    port = free_port()
    log_path = artifacts_dir / "e2e" / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.fileWatcherType", "none", "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + SERVER_START_S
            while True:
                if process.poll() is not None:
                    pytest.fail(f"streamlit exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                        if reply.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not answer /_stcore/health in {SERVER_START_S} s")
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_rendered(page) -> None:
    page.wait_for_selector("[data-testid='stImage'] img", timeout=RENDER_MS)
    page.wait_for_selector(IDLE, timeout=RENDER_MS)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=RENDER_MS)


def view_image(page, caption: str | re.Pattern):
    locator = page.locator("[data-testid='stImage']").filter(has_text=caption).locator("img")
    assert locator.count() == 1, f"expected one image captioned {caption!r}, found {locator.count()}"
    return locator


def header(page) -> str:
    return page.get_by_text(re.compile(r"^Test image #\d+")).first.inner_text()


def layer_shown(page) -> str:
    return page.get_by_role("combobox", name="Layer").input_value()


def assert_no_traceback(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, "the page shows a traceback"


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
