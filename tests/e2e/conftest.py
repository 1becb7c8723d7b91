"""Fixtures of the browser tests: one Chromium and one streamlit server per test module."""

from __future__ import annotations

import pytest

from tests.e2e.browser_helpers import chromium_browser, streamlit_server


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def server(artifacts_dir, request):
    """``streamlit run app.py`` on a free port for this test module (log: artifacts/e2e/<module>.server.log)."""
    with streamlit_server(artifacts_dir / "e2e" / f"{request.module.__name__.rsplit('.', 1)[-1]}.server.log") as url:
        yield url
