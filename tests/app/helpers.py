"""Helpers for the AppTest tests: run the app, find the view's images."""

from __future__ import annotations

import hashlib
from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard.cam_viewer import unpack

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


def viewer_data(at: AppTest) -> dict:
    """The data the explorer's CAM viewer got in the last run (its picture is drawn in the browser): the header,
    with its binary parts as ``blobs`` (image_png, maps, luts)."""
    viewers = [e for e in at.get("bidi_component") if e.proto.component_name == "gradcam_cam_viewer"]
    assert len(viewers) == 1, f"expected one CAM viewer, found {len(viewers)}"
    header, blobs = unpack(viewers[0].proto.bytes)
    return {**header, "blobs": blobs}


def main_images(at: AppTest) -> dict[str, str]:
    """What the viewer draws as the original, heatmap and overlay pictures, as strings that are equal exactly when
    the pictures are (the viewer draws them in the browser: AppTest sees its data, not pixels). Under AppTest no
    browser reports a view, so the view in the data is the one the page set."""
    data = viewer_data(at)
    payload, view = data["payload"], data["view"]
    original = hashlib.sha256(data["blobs"]["image_png"]).hexdigest()[:16]
    heatmap = f"{payload['id']}|{view['layer']}|{view['colormap']}"
    return {"original": original, "heatmap": heatmap, "overlay": f"{heatmap}|{view['opacity']}"}


def report(at: AppTest, **view) -> AppTest:
    """What a report of the explorer's viewer does (``explorer_view.apply_viewer_view``): the session's view
    (layer, opacity, colormap, method) changes, then the view fragment reruns."""
    from dashboard.state import ExplorerState as E

    for field, value in view.items():
        at.session_state[getattr(E, field)] = value
    return at.run()


def viewer_layers(at: AppTest) -> list[str]:
    """The layers whose maps the viewer got (the ones its Layer control offers)."""
    return [entry[0] for entry in viewer_data(at)["payload"]["layers"]]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
