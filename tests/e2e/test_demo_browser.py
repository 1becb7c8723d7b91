"""The stakeholder demo in a real browser: the compare page tells the shortcut story, three findings are pinned
(compare page + explorer), the Report page downloads the HTML report, and the downloaded file opens in a Chromium
with the network cut, makes no request and shows every picture. Screenshots: artifacts/e2e/demo-*.png."""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.browser_helpers import (
    RENDER_MS,
    assert_no_traceback,
    server_cache_dir,
    streamlit_server,
    wait_until_rendered,
)

pytestmark = pytest.mark.browser
VIEWPORT = {"width": 1600, "height": 1000}
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
IMAGES_LOADED = """() => {
    const images = [...document.images];
    return images.length > 0 && images.every(img => img.complete && img.naturalWidth > 0);
}"""


@pytest.fixture(scope="module")
def report_cache(tmp_path_factory):
    """A fresh folder for the server's reports (through the environment, which the server inherits)."""
    with server_cache_dir(tmp_path_factory.mktemp("reports")) as folder:
        yield folder


@pytest.fixture(scope="module")
def server(report_cache, artifacts_dir):
    with streamlit_server(artifacts_dir / "e2e" / "test_demo_browser.server.log") as url:
        yield url


def go_to(page, title: str) -> None:
    """Click a page in the sidebar's navigation and wait for its title."""
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=RENDER_MS)
    page.wait_for_selector(IDLE, timeout=RENDER_MS)


def pin(page, note: str, count: int) -> None:
    """Type a note, press "Add to report", and wait for the toast that counts the findings."""
    box = page.get_by_label("Note for the report")
    box.fill(note)
    box.press("Enter")
    page.wait_for_selector(IDLE, timeout=RENDER_MS)
    page.get_by_role("button", name="Add to report", exact=True).click()
    toast = page.locator("[data-testid='stToast']").filter(
        has_text=f"Added to the report: {count} finding{'s' if count > 1 else ''} of shapes-shortcut")
    toast.wait_for(timeout=RENDER_MS)
    page.wait_for_selector(IDLE, timeout=RENDER_MS)


def test_show_the_story_pin_three_findings_and_open_the_report_offline(browser, server, artifacts_dir, tmp_path):
    shots = artifacts_dir / "e2e"
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    page.goto(server + "/?ws=shapes-shortcut")
    wait_until_rendered(page)

    started = time.monotonic()
    go_to(page, "Compare models")
    story = page.get_by_text(re.compile(r"shapes-shortcut puts \d+× more of its attention on the marker than shapes"))
    story.wait_for(timeout=RENDER_MS)
    print(f"compare page with the sample's story {time.monotonic() - started:.1f} s")
    page.wait_for_function(IMAGES_LOADED, timeout=RENDER_MS)
    assert_no_traceback(page)
    page.screenshot(path=str(shots / "demo-compare.png"), full_page=True)
    pin(page, "The same heart: shapes looks at it, shapes-shortcut at the marker", 1)

    go_to(page, "Grad-CAM explorer")
    wait_until_rendered(page)
    pin(page, "The shortcut model's map sits on the marker", 2)
    page.get_by_role("button", name=re.compile(r"^#\d+$")).nth(1).click()  # another gallery image
    page.wait_for_url(re.compile(r"[?&]sample=\d+"), timeout=RENDER_MS)
    page.wait_for_selector(IDLE, timeout=RENDER_MS)
    pin(page, "", 3)
    assert re.search(r"[?&]report=[\w-]{16,}", page.url), page.url  # the report travels with the page

    go_to(page, "Report")
    page.wait_for_function(IMAGES_LOADED, timeout=RENDER_MS)
    assert page.get_by_text(re.compile(r"^3 findings of shapes-shortcut")).count() == 1
    page.screenshot(path=str(shots / "demo-report.png"), full_page=True)
    started = time.monotonic()
    with page.expect_download(timeout=RENDER_MS) as download:
        page.get_by_role("button", name="Download report (HTML)", exact=True).click()
    saved = tmp_path / "report.html"
    download.value.save_as(saved)
    print(f"report download {time.monotonic() - started:.1f} s, {saved.stat().st_size / 1e6:.2f} MB")
    assert_no_traceback(page)

    offline = browser.new_context(offline=True, viewport=VIEWPORT)
    requests = []
    offline.on("request", lambda request: requests.append(request.url))
    reader = offline.new_page()
    reader.goto(saved.as_uri())
    reader.wait_for_function(IMAGES_LOADED, timeout=30_000)
    reader.screenshot(path=str(shots / "demo-report-offline.png"), full_page=True)
    other = [url for url in requests if url != saved.as_uri() and not url.startswith("data:")]
    assert not other, other
    images = reader.evaluate("() => [...document.images].map(img => [img.src.slice(0, 22), img.naturalWidth])")
    assert len(images) >= 3 * 3 + 3, images  # two views and a comparison of two models
    assert all(src.startswith("data:image/png;base64") and width > 0 for src, width in images), images
    assert reader.get_by_text("shapes looks at it, shapes-shortcut at the marker", exact=False).count() >= 1
    offline.close()
