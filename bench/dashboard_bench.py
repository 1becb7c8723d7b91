"""Server-side latency of the explorer, measured with Streamlit's AppTest (no browser, no network).

- cold: caches cleared, the first render of the explorer on the default workspace (model load, test-split
  predictions, one explanation) — what a user waits for after `make run`, minus Python's imports;
- layer change with a warm cache: a rerun after picking another layer (no engine call);
- opacity change: a rerun after moving the slider (re-blend only);
- gallery click: a new image, which reruns the view and gallery fragments only (one explanation each time).

A layer or opacity change in a browser reruns the view fragment alone; AppTest reruns the whole script for a
widget change, so the table gives the whole page script and, beside it, the time spent in the view fragment
(what a browser's rerun costs on the server). A gallery click is a keyed fragment rerun in AppTest too.
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


class _FragmentClock:
    """Times every call of the explorer's view fragment (the page imports it by name on every run)."""

    def __init__(self):
        from dashboard import explorer_view

        self.module, self.original, self.last = explorer_view, explorer_view.view_fragment, 0.0
        clock = self

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return clock.original(*args, **kwargs)
            finally:
                clock.last = time.perf_counter() - start

        explorer_view.view_fragment = timed

    def close(self):
        self.module.view_fragment = self.original


class _ScriptClock:
    """Times the page script itself inside AppTest's script thread (``ScriptRunner._run_script``), so AppTest's
    own work — parsing the element tree of a large page took ~57 ms per rerun — is not counted as ours."""

    def __init__(self):
        from streamlit.runtime.scriptrunner import script_runner

        self.runner_cls = script_runner.ScriptRunner
        self.original = self.runner_cls._run_script
        self.last = 0.0
        clock = self

        def timed(runner, rerun_data):
            start = time.perf_counter()
            try:
                return clock.original(runner, rerun_data)
            finally:
                clock.last = time.perf_counter() - start

        self.runner_cls._run_script = timed

    def close(self):
        self.runner_cls._run_script = self.original


def measure(repeats: int = 7) -> dict:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard.state import ExplorerState

    clock, fragment = _ScriptClock(), _FragmentClock()
    try:
        return _measure(st, AppTest, ExplorerState, clock, fragment, repeats)
    finally:
        clock.close()
        fragment.close()


def _measure(st, AppTest, E, clock, fragment, repeats: int) -> dict:

    def clean(at):
        problems = [e.value for e in at.exception] + [e.value for e in at.error]
        if problems:
            raise RuntimeError(f"the explorer failed while benchmarking: {problems[:2]}")
        return at

    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(APP), default_timeout=600)
    cold = _timed(lambda: clean(at.run()))

    picker = at.selectbox(key=E.layer)
    options = [label.split(" · ")[0] for label in picker.options]  # labels read "name · C×H×W"
    # every layer's map is already in the cached all-layer result: visit each once, then time a round trip
    layer_times, layer_scripts, layer_views = [], [], []
    for i in range(repeats + 1):
        option = options[(len(options) - 2 - i) % len(options)]
        elapsed = _timed(lambda option=option: clean(at.selectbox(key=E.layer).select(option).run()))
        if i:  # the first rerun after the cold one also pays for Streamlit's own first-rerun work
            layer_times.append(elapsed)
            layer_scripts.append(clock.last)
            layer_views.append(fragment.last)

    opacity_times, opacity_scripts, opacity_views = [], [], []
    for i in range(repeats):
        value = round(0.2 + 0.1 * (i % 7), 2)
        opacity_times.append(_timed(lambda value=value: clean(
            at.slider(key=E.opacity).set_value(value).run())))
        opacity_scripts.append(clock.last)
        opacity_views.append(fragment.last)

    gallery_times, gallery_scripts = [], []
    for i in range(repeats):
        buttons = [b for b in at.button if str(b.key).startswith("explorer.pick.")]
        button = buttons[(i + 1) % len(buttons)]
        gallery_times.append(_timed(lambda button=button: clean(button.click().run())))
        gallery_scripts.append(clock.last)
    median = statistics.median
    return {"cold_s": cold, "layer_s": median(layer_times), "layer_script_s": median(layer_scripts),
            "layer_view_s": median(layer_views), "opacity_s": median(opacity_times),
            "opacity_script_s": median(opacity_scripts), "opacity_view_s": median(opacity_views),
            "gallery_s": median(gallery_times), "gallery_script_s": median(gallery_scripts), "layers": len(options)}


def run(quick: bool = False) -> str:
    row = measure(repeats=2 if quick else 9)

    def goal(ok: bool) -> str:
        return "met" if ok else "**missed**"

    return "\n".join([
        "### Dashboard latency, server side (AppTest, default workspace)",
        "",
        "| interaction | view fragment (a browser's rerun) | page script | whole AppTest rerun | goal (page script) |",
        "|---|---:|---:|---:|---|",
        f"| cold first render of the explorer (caches cleared) | | | {row['cold_s'] * 1000:.0f} ms | "
        f"< 5 s: {goal(row['cold_s'] < 5)} |",
        f"| rerun after changing the layer (warm cache, {row['layers']} layers) | "
        f"{row['layer_view_s'] * 1000:.0f} ms | {row['layer_script_s'] * 1000:.0f} ms | {row['layer_s'] * 1000:.0f} ms "
        f"| < 150 ms: {goal(row['layer_script_s'] < 0.150)} |",
        f"| rerun after changing the opacity | {row['opacity_view_s'] * 1000:.0f} ms | "
        f"{row['opacity_script_s'] * 1000:.0f} ms | {row['opacity_s'] * 1000:.0f} ms | "
        f"< 60 ms: {goal(row['opacity_script_s'] < 0.060)} |",
        f"| a gallery click (view + gallery fragments, one new explanation) | | "
        f"{row['gallery_script_s'] * 1000:.0f} ms | {row['gallery_s'] * 1000:.0f} ms | — |",
        "",
        "The page script is timed inside Streamlit's script thread (for a gallery click: the two fragments' run); "
        "the whole rerun adds AppTest's own parsing of the page's element tree. A layer or opacity change in a "
        "browser reruns only the view fragment, timed on its own in the first column. The cold render uses the "
        "test-split logits shipped with the checkpoint.",
    ])


if __name__ == "__main__":
    print(run())
