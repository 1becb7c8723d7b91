"""Server-side latency of the explorer, measured with Streamlit's AppTest (no browser, no network).

- cold: caches cleared, the first render of the explorer on the default workspace (model load, test-split
  predictions, one explanation) — what a user waits for after `make run`, minus Python's imports;
- layer change with a warm cache: a rerun after picking another layer (no engine call);
- opacity change: a rerun after moving the slider (re-blend only).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app.py"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(repeats: int = 7) -> dict:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard.explorer import WIDGET_KEYS

    def clean(at):
        problems = [e.value for e in at.exception] + [e.value for e in at.error]
        if problems:
            raise RuntimeError(f"the explorer failed while benchmarking: {problems[:2]}")
        return at

    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(APP), default_timeout=600)
    cold = _timed(lambda: clean(at.run()))

    picker = at.selectbox(key=WIDGET_KEYS["layer"])
    options = [label.split(" · ")[0] for label in picker.options]  # labels read "name · C×H×W"
    # every layer's map is already in the cached all-layer result: visit each once, then time a round trip
    layer_times = []
    for i in range(repeats + 1):
        option = options[(len(options) - 2 - i) % len(options)]
        elapsed = _timed(lambda option=option: clean(at.selectbox(key=WIDGET_KEYS["layer"]).select(option).run()))
        if i:  # the first rerun after the cold one also pays for Streamlit's own first-rerun work
            layer_times.append(elapsed)

    opacity_times = []
    for i in range(repeats):
        value = round(0.2 + 0.1 * (i % 7), 2)
        opacity_times.append(_timed(lambda value=value: clean(
            at.slider(key=WIDGET_KEYS["opacity"]).set_value(value).run())))
    return {"cold_s": cold, "layer_s": statistics.median(layer_times),
            "opacity_s": statistics.median(opacity_times), "layers": len(options)}


def run(quick: bool = False) -> str:
    row = measure(repeats=2 if quick else 9)

    def goal(ok: bool) -> str:
        return "met" if ok else "**missed**"

    return "\n".join([
        "### Dashboard latency, server side (AppTest, default workspace)",
        "",
        "| interaction | median time | goal |",
        "|---|---:|---|",
        f"| cold first render of the explorer (caches cleared) | {row['cold_s'] * 1000:.0f} ms | "
        f"< 5 s: {goal(row['cold_s'] < 5)} |",
        f"| rerun after changing the layer (warm cache, {row['layers']} layers) | {row['layer_s'] * 1000:.0f} ms | "
        f"< 150 ms: {goal(row['layer_s'] < 0.150)} |",
        f"| rerun after changing the opacity | {row['opacity_s'] * 1000:.0f} ms | "
        f"< 60 ms: {goal(row['opacity_s'] < 0.060)} |",
    ])


if __name__ == "__main__":
    print(run())
