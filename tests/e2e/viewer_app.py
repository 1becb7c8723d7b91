"""A small page around the CAM viewer with synthetic pictures, for tests/e2e/test_cam_viewer.py and for
``python -m bench.browser_bench --app tests/e2e/viewer_app.py`` (the component's latency without a model).

The image and maps are made from seeds, so a test can compute what the viewer must draw: layer ``flat`` is one
value everywhere (FLAT_INDEX / 255), ``smooth`` a float map off the 1/255 grid (as a real one is), the others are
random multiples of 1/255 (exact as uint8). The view the viewer reports is written to the URL and shown as JSON
under "Reported view".
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict

import numpy as np
import streamlit as st

from dashboard.cam_viewer import REPORT_DEBOUNCE_MS, ViewerState, cam_viewer
from gradcam_core import COLORMAPS

IMAGE_SIZE = 64
LAYER_SHAPES = {"stem": (16, 16), "block1": (8, 8), "block2": (4, 4), "flat": (4, 4), "head": (2, 3),
                "smooth": (7, 7)}
FLAT_INDEX = 153
METHODS = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "layercam": "LayerCAM"}
TARGETS = ["circle", "square", "triangle"]
SAMPLES = 4
KEY = "viewer"


def seed_of(*parts) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def synthetic_image(sample: int) -> np.ndarray:
    rng = np.random.default_rng(seed_of("image", sample))
    return rng.integers(0, 256, size=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)


def synthetic_maps(sample: int, method: str, target: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed_of("maps", sample, method, target))
    maps = {name: rng.integers(0, 256, size=shape).astype(np.float32) / 255 for name, shape in LAYER_SHAPES.items()}
    maps["flat"] = np.full(LAYER_SHAPES["flat"], FLAT_INDEX / 255, dtype=np.float32)
    y, x = np.mgrid[:7, :7] / 6.0
    maps["smooth"] = np.exp(-((y - rng.random()) ** 2 + (x - rng.random()) ** 2) * 3).astype(np.float32)
    return maps


def remember(view: ViewerState) -> None:
    st.session_state.update(asdict(view))


def main() -> None:
    st.set_page_config(page_title="CAM viewer test page", layout="wide")
    state = st.session_state
    if "layer" not in state:  # first run of the session: a link may carry a view
        params = st.query_params
        state.update(layer=params.get("layer", "stem"), opacity=float(params.get("opacity", 0.5)),
                     colormap=params.get("colormap", "jet"), method=params.get("method", "gradcam"), sample=0, runs=0)
    state.runs += 1

    st.title("CAM viewer test page", anchor=False)
    buttons = st.columns(SAMPLES + 1)
    for index in range(SAMPLES):
        buttons[index].button(f"#{index}", key=f"sample-{index}", on_click=state.update, kwargs={"sample": index})
    buttons[SAMPLES].button("Server picks block2", on_click=state.update, kwargs={"layer": "block2"})
    target = st.selectbox("Target class", TARGETS, key="target")

    view = cam_viewer(
        image=synthetic_image(state.sample), maps=synthetic_maps(state.sample, state.method, target),
        layer=state.layer, opacity=state.opacity, colormap=state.colormap, luts=COLORMAPS, sample=state.sample,
        method=state.method, methods=METHODS, target=target, key=KEY, on_change=remember,
        report_delay_ms=int(st.query_params.get("report_delay_ms", REPORT_DEBOUNCE_MS)),
    )
    st.query_params.update({"layer": view.layer, "opacity": str(view.opacity), "colormap": view.colormap,
                            "method": view.method})
    st.markdown("**Reported view**")
    st.code(json.dumps(asdict(view)), language="json")
    st.caption(f"runs: {state.runs}")


if __name__ == "__main__":  # streamlit runs the page as __main__; the tests import its picture makers
    main()
