"""Fixtures of the browser tests: one Chromium and one streamlit server per test module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.browser_helpers import CHROMIUM, CHROMIUM_ARGS, streamlit_server, unavailable


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


@pytest.fixture(scope="module")
def server(artifacts_dir, request):
    """``streamlit run app.py`` on a free port for this test module (log: artifacts/e2e/<module>.server.log)."""
    with streamlit_server(artifacts_dir / "e2e" / f"{request.module.__name__.rsplit('.', 1)[-1]}.server.log") as url:
        yield url
