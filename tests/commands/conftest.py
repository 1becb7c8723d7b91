"""Command-line tests: ad-hoc workspace files go to a temporary cache folder, never the user's."""

import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADCAM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
