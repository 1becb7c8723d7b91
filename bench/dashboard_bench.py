"""Server-side latency of the explorer, measured with Streamlit's AppTest (no browser, no network).

- cold: caches cleared, the first render of the explorer on the default workspace (model load, test-split
  predictions, one explanation) — what a user waits for after `make run`, minus Python's imports;
- a viewer report of a new layer / opacity: the browser-side CAM viewer draws these itself at once; its report
  (debounced) reruns the view fragment to bring the URL, downloads and layer strip along — off the picture's path,
  but it is server time each report costs;
- gallery click: a new image, which reruns the view and gallery fragments only (one explanation each time).

A report in a browser reruns the view fragment alone; AppTest reruns the whole script, so the table gives the whole
page script and, beside it, the time spent in the view fragment (what a browser's rerun costs on the server). A
report is simulated by setting the session state it sets (``explorer_view.apply_viewer_view``). A gallery click is
a keyed fragment rerun in AppTest too.
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

    def report(**view):  # what the viewer's report sets, then the rerun it causes
        for field, value in view.items():
            at.session_state[getattr(E, field)] = value
        return clean(at.run())

    from dashboard.cam_viewer import unpack

    viewer = next(e for e in at.get("bidi_component") if e.proto.component_name == "gradcam_cam_viewer")
    options = [name for name, *_ in unpack(viewer.proto.bytes)[0]["payload"]["layers"]]
    # every layer's map is already in the cached all-layer result: visit each once, then time a round trip
    layer_times, layer_scripts, layer_views = [], [], []
    for i in range(repeats + 1):
        option = options[(len(options) - 2 - i) % len(options)]
        elapsed = _timed(lambda option=option: report(layer=option))
        if i:  # the first rerun after the cold one also pays for Streamlit's own first-rerun work
            layer_times.append(elapsed)
            layer_scripts.append(clock.last)
            layer_views.append(fragment.last)

    opacity_times, opacity_scripts, opacity_views = [], [], []
    for i in range(repeats):
        value = round(0.2 + 0.1 * (i % 7), 2)
        opacity_times.append(_timed(lambda value=value: report(opacity=value)))
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
        f"| rerun after the viewer reports a new layer (warm cache, {row['layers']} layers) | "
        f"{row['layer_view_s'] * 1000:.0f} ms | {row['layer_script_s'] * 1000:.0f} ms | {row['layer_s'] * 1000:.0f} ms "
        f"| < 150 ms: {goal(row['layer_script_s'] < 0.150)} |",
        f"| rerun after the viewer reports a new opacity | {row['opacity_view_s'] * 1000:.0f} ms | "
        f"{row['opacity_script_s'] * 1000:.0f} ms | {row['opacity_s'] * 1000:.0f} ms | "
        f"< 60 ms: {goal(row['opacity_script_s'] < 0.060)} |",
        f"| a gallery click (view + gallery fragments, one new explanation) | | "
        f"{row['gallery_script_s'] * 1000:.0f} ms | {row['gallery_s'] * 1000:.0f} ms | — |",
        "",
        "The page script is timed inside Streamlit's script thread (for a gallery click: the two fragments' run); "
        "the whole rerun adds AppTest's own parsing of the page's element tree. The picture of a layer or opacity "
        "change is drawn in the browser (bench/browser_bench.py); these reruns follow the viewer's debounced "
        "report, rerun only the view fragment in a browser (first column), and resend no picture. The cold render "
        "uses the test-split logits shipped with the checkpoint.",
    ])


if __name__ == "__main__":
    print(run())
