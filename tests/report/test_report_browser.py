"""The report in Chromium, opened from disk as a recipient would: no request leaves the file, every picture
decodes, and printing starts each finding on a new page."""

from __future__ import annotations

import re

import pytest

from report import build_report
from tests.e2e.browser_helpers import chromium_browser

pytestmark = pytest.mark.browser

IMAGES = """() => [...document.images].map(img => ({complete: img.complete, width: img.naturalWidth}))"""
RESOURCES = """() => performance.getEntriesByType("resource").map(entry => entry.name)"""
BREAKS = """() => [...document.querySelectorAll("section.finding")].map(s => getComputedStyle(s).breakBefore)"""


@pytest.fixture(scope="module")
def chromium():
    with chromium_browser() as browser:
        yield browser


def test_the_report_opens_offline_with_every_picture(chromium, tmp_path, shapes, shapes_engine, pinned):
    path = tmp_path / "report.html"
    path.write_text(build_report(shapes, pinned, engine=shapes_engine), encoding="utf-8")
    context = chromium.new_context(offline=True)  # like a laptop on a plane: a request would fail, not hang
    page = context.new_page()
    requests, complaints = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: complaints.append(message.text) if message.type in ("error", "warning")
            else None)
    try:
        page.goto(path.as_uri(), wait_until="load")
        images = page.evaluate(IMAGES)
        resources = page.evaluate(RESOURCES)
        page.emulate_media(media="print")
        breaks = page.evaluate(BREAKS)
        pdf = page.pdf(format="A4", print_background=True)
    finally:
        context.close()

    assert [url for url in requests if url != path.as_uri() and not url.startswith("data:")] == []
    assert resources == [] and complaints == []  # nothing fetched, nothing refused by the page's policy
    assert len(images) == 12 and all(image["complete"] and image["width"] > 0 for image in images), images
    assert breaks == ["page"] * 3
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages >= 1 + 3, pages  # the model card, then each finding from the top of a page
