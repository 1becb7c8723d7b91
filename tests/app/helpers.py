"""Helpers for the AppTest tests: run the app, find the view's images."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "app.py"
# A cold run loads a model and classifies its whole test split; on a busy 2-core machine that can take a while.
RUN_TIMEOUT = 240


def run_app(query_params: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    if query_params:
        at.query_params.update(query_params)
    return at.run()


def image_by_caption(at: AppTest, needle: str):
    """The one st.image whose caption contains ``needle``."""
    found = [image for image in at.image if any(needle in caption for caption in image.captions)]
    assert len(found) == 1, f"expected one image captioned with {needle!r}, got {[i.captions for i in at.image]}"
    return found[0]


def main_images(at: AppTest) -> dict[str, str]:
    """URLs of the view's original, heatmap and overlay images (media URLs are content hashes, so equal URLs
    mean equal pictures)."""
    images = list(at.image)
    first = images.index(image_by_caption(at, "as the model sees it"))
    original, heatmap, overlay = images[first:first + 3]
    assert overlay.captions[0].startswith("opacity "), overlay.captions
    return {"original": original.value[0], "heatmap": heatmap.value[0], "overlay": overlay.value[0]}


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
