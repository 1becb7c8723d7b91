"""Browser latency of the dashboard: from an input to the new picture on screen, in headless Chromium (Playwright).

    python -m bench.browser_bench                     # app.py: p50/p95 of each interaction, cold start, payloads
    python -m bench.browser_bench --baseline main     # and the app as it is at a git ref, side by side, same run
    python -m bench.browser_bench --quick             # each interaction once: a smoke run, no timing asserted
    python -m bench.browser_bench --app tests/e2e/viewer_app.py    # another page, e.g. the viewer on synthetic data
    python -m bench.browser_bench --torchcam-demo PATH/torch-cam/demo/app.py   # also torch-cam's Streamlit demo
                                                      # (or TORCHCAM_DEMO=PATH; skipped when not given)
    python -m bench.browser_bench --out FILE          # also write the markdown to FILE

How a time is taken. A probe injected into every page records the time of the first input event (pointerdown,
keydown, input, change) after it is armed, and the moment the picture changed: for the CAM viewer component
(``[data-testid="cam-viewer"]``) when its data-* attributes change (it sets them after drawing); for the explorer
before the viewer when the overlay ``<img>`` (caption "opacity …") has a new src and has loaded; for torch-cam's
demo when the image under "Overlay" has. Both times are the page's own clock, so Playwright's round trips do not
count. The browser shows the change at its next frame (≤ 17 ms later). Cold first heatmap: from spawning
``streamlit run`` to the first picture, with the browser already open. Between two repetitions the page is let
come to rest (no script running), so each interaction is measured alone. Opacity drag: the pointer moves the
slider in small steps every 40 ms for about a second; the pictures drawn meanwhile are counted.

Before and after in one run (``--baseline REF``): the app at REF is exported with ``git archive`` into a temporary
folder and served from there by the same Python; cold starts of the two alternate, so a change in the machine's
load hits both alike.

torch-cam's demo loads pretrained torchvision weights, which needs the network. Offline, the bench points
TORCH_HOME at a temporary folder holding randomly initialised resnet18 weights under the file name torchvision
expects (torch.hub loads a file that is already there and only checks hashes on download), so the demo runs
unchanged; its timings do not depend on the weights' values. The demo has no opacity control (fixed 0.5) and no
gallery, and recomputes only when "Compute CAM" is clicked: its times run from that click.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.server import ServerError, streamlit_run

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
VIEWPORT = {"width": 1600, "height": 1000}
WAIT_MS = 30_000  # one interaction
COLD_WAIT_MS = 240_000  # a cold start on a busy 2-core machine
SERVER_START_S = 180
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
VIEWER = '[data-testid="cam-viewer"]'
INTERACTIONS = ("layer switch", "opacity step", "method change", "target change", "gallery click")
COLD = "cold first heatmap"
DRAG = "opacity drag"
DRAG_STEPS, DRAG_STEP_MS = 24, 40  # over 0.8 of the slider: ~16 opacity values in ~1 s

PROBE_JS = r"""
(() => {
  const VIEWER = '[data-testid="cam-viewer"]';
  const INPUTS = ['pointerdown', 'mousedown', 'keydown', 'input', 'change'];
  const viewer = () => document.querySelector(VIEWER) ?? [...document.querySelectorAll(
      "[data-testid='stBidiComponentIsolated']")].map(e => e.shadowRoot?.querySelector(VIEWER)).find(Boolean) ?? null;
  const overlayImage = () => {
    const images = [...document.querySelectorAll("[data-testid='stImage']")];
    const captioned = images.find(e => /^opacity \d/.test(e.textContent.trim()));
    if (captioned) return captioned.querySelector('img');
    const column = [...document.querySelectorAll("[data-testid='stColumn']")].find(c =>
        [...c.querySelectorAll('h1, h2, h3, h4, h5, h6, strong')].some(h => h.textContent.trim() === 'Overlay'));
    return column?.querySelector("[data-testid='stImage'] img") ?? null;
  };
  // What is on screen, or null while there is no complete picture.
  const signature = () => {
    const element = viewer();
    if (element) {
      if (!element.hasAttribute('data-layer')) return null;
      return [...element.attributes].filter(a => a.name.startsWith('data-')).map(a => `${a.name}=${a.value}`).join('&');
    }
    const image = overlayImage();
    return image && image.complete && image.naturalWidth > 0 ? image.src : null;
  };
  const probe = {armed: false, before: null, input: null, change: null, observers: [], roots: new Set()};
  const onInput = event => {
    if (probe.armed && probe.input === null) probe.input = event.timeStamp || performance.now();
  };
  const check = () => {
    if (!probe.armed || probe.change !== null) return;
    const now = signature();
    if (now !== null && now !== probe.before) {
      probe.change = performance.now();
      probe.after = now;
      probe.stop();
    }
  };
  const watch = root => {
    if (probe.roots.has(root)) return;
    probe.roots.add(root);
    const observer = new MutationObserver(check);
    observer.observe(root, {attributes: true, childList: true, subtree: true});
    probe.observers.push(observer);
    for (const type of INPUTS) root.addEventListener(type, onInput, true);
  };
  const poll = () => {  // catches a viewer whose shadow root appeared after arming (cold start)
    if (!probe.armed || probe.change !== null) return;
    const element = viewer();
    if (element) watch(element.getRootNode());
    check();
    requestAnimationFrame(poll);
  };
  probe.stop = () => {
    probe.armed = false;
    probe.observers.forEach(o => o.disconnect());
    probe.observers = [];
    probe.roots = new Set();
  };
  probe.arm = (fromNothing = false) => {
    probe.stop();
    Object.assign(probe, {before: fromNothing ? null : signature(), input: null, change: null, after: null,
                          armed: true});
    watch(document);
    for (const type of INPUTS) window.addEventListener(type, onInput, true);
    document.addEventListener('load', check, true);
    requestAnimationFrame(poll);
    return probe.before;
  };
  probe.finished = () => probe.change !== null;
  probe.result = () => ({input: probe.input, change: probe.change, origin: performance.timeOrigin,
                         before: probe.before, after: probe.after});
  probe.hasViewer = () => viewer() !== null;
  // Every new picture while recording (a drag): the times its signature changed.
  probe.record = () => {
    const changes = [];
    let last = signature();
    const note = () => {
      const now = signature();
      if (now !== null && now !== last) { changes.push(performance.now()); last = now; }
    };
    const roots = [document, viewer()?.getRootNode()].filter(Boolean);
    const observers = roots.map(root => {
      const observer = new MutationObserver(note);
      observer.observe(root, {attributes: true, childList: true, subtree: true});
      return observer;
    });
    document.addEventListener('load', note, true);
    probe.stopRecording = () => {
      observers.forEach(o => o.disconnect());
      document.removeEventListener('load', note, true);
      return changes;
    };
  };
  window.__bench = probe;
  if (document.readyState !== 'loading') probe.arm(true);
  else document.addEventListener('DOMContentLoaded', () => probe.arm(true));
})();
"""


class BenchError(RuntimeError):
    pass


@dataclass
class Series:
    """Latencies of one interaction in milliseconds, or why it was not measured."""

    samples: list[float] = field(default_factory=list)
    note: str = ""

    def percentile(self, q: float) -> float:
        ordered = sorted(self.samples)
        position = (len(ordered) - 1) * q
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    def cell(self, q: float, unit: str = "ms") -> str:
        if not self.samples:
            return "n/a"
        value = self.percentile(q)
        if unit == "s":
            return f"{value / 1000:.2f} s"
        return f"{value:.0f} {unit}" if unit != "ms" else f"{value:.0f} ms"


# ------------------------------------------------------------------------------------------------ server
@contextmanager
def streamlit_server(script: Path, cwd: Path, log_path: Path, env: dict | None = None):
    """``streamlit run script`` on a free port; yields (url, epoch seconds at spawn). Always terminated."""
    try:
        with streamlit_run(script, cwd, log_path, env=env, start_s=SERVER_START_S) as server:
            yield server.url, server.spawned
    except ServerError as error:
        raise BenchError(str(error)) from None


# ------------------------------------------------------------------------------------------------ probe
def new_page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(PROBE_JS)
    return context.new_page()


def settle(page, pause_ms: int = 400, timeout_ms: int = WAIT_MS) -> None:
    """Let the page come to rest: no script running, also after a viewer's debounced report."""
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.wait_for_timeout(pause_ms)
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def timed(page, prepare: Callable[[], None] | None, act: Callable[[], None]) -> float:
    """Milliseconds from the input ``act`` makes to the new picture (``prepare`` runs before arming)."""
    if prepare is not None:
        prepare()
    page.evaluate("window.__bench.arm()")
    act()
    try:
        page.wait_for_function("window.__bench.finished()", timeout=WAIT_MS, polling=50)
    except Exception as err:
        shown = page.locator("[data-testid='stException'], [data-testid='stAlertContentError']").all_inner_texts()
        raise BenchError(f"no new picture within {WAIT_MS / 1000:.0f} s"
                         + (f"; the page says: {' | '.join(shown)[:300]}" if shown else "")) from err
    result = page.evaluate("window.__bench.result()")
    if result["input"] is None:
        raise BenchError("the probe saw no input event; the action did not reach the page")
    settle(page)
    return result["change"] - result["input"]


def first_picture(page, url: str, spawned: float, before_picture: Callable[[], None] | None = None) -> float:
    """Milliseconds from the server's spawn to the first picture on ``url``."""
    page.goto(url, timeout=COLD_WAIT_MS)
    if before_picture is not None:
        before_picture()
    page.wait_for_function("window.__bench.finished()", timeout=COLD_WAIT_MS, polling=50)
    result = page.evaluate("window.__bench.result()")
    return result["origin"] + result["change"] - spawned * 1000


# ------------------------------------------------------------------------------------------------ our app
class DashboardDriver:
    """One repetition of each interaction on the explorer, with its CAM viewer when it has one (else today's
    Streamlit widgets). Each repetition picks another value than the one shown."""

    def __init__(self, page):
        self.page = page
        self.rep = 0
        self.has_viewer = page.evaluate("window.__bench.hasViewer()")

    def _combobox_option(self, name: str, same: Callable[[str, str], bool] = str.__eq__) -> tuple[Callable, Callable]:
        """(open the Streamlit selectbox, click the first option after the one shown that is not ``same``)."""
        box = self.page.get_by_role("combobox", name=name, exact=True)
        chosen = {}

        def prepare():
            current = box.input_value()
            box.click()
            options = self.page.get_by_role("option")
            options.first.wait_for(timeout=WAIT_MS)
            texts = options.all_inner_texts()
            start = texts.index(current) if current in texts else 0
            order = [(start + step) % len(texts) for step in range(1, len(texts))]
            index = next((i for i in order if not same(texts[i], current)), None)
            if index is None:
                raise BenchError(f"the {name} selectbox offers nothing but {current!r}")
            chosen["option"] = options.nth(index)

        return prepare, lambda: chosen["option"].click()

    def _viewer_select(self, name: str):
        select = self.page.locator(VIEWER).get_by_role("combobox", name=name, exact=True)
        values = select.evaluate("s => [...s.options].map(o => o.value)")
        current = select.input_value()
        following = values[(values.index(current) + 1) % len(values)] if current in values else values[0]
        return None, lambda: select.select_option(following)

    def layer_switch(self) -> float:
        return timed(self.page, *(self._viewer_select("Layer") if self.has_viewer
                                  else self._combobox_option("Layer")))

    def opacity_step(self) -> float:
        if self.has_viewer:
            slider = self.page.locator(VIEWER).get_by_role("slider", name="Opacity")
        else:
            slider = self.page.locator("[data-testid='stSlider']").filter(has_text="Opacity").get_by_role("slider")
        key = "ArrowLeft" if self.rep % 2 else "ArrowRight"
        return timed(self.page, slider.focus, lambda: self.page.keyboard.press(key))

    def method_change(self) -> float:
        if self.has_viewer:
            select = self.page.locator(VIEWER).get_by_role("combobox", name="Method", exact=True)
            values = select.evaluate("s => [...s.options].map(o => o.value)")[:2]
            following = values[1] if select.input_value() == values[0] else values[0]
            return timed(self.page, None, lambda: select.select_option(following))
        radios = self.page.locator("[data-testid='stButtonGroup']").get_by_role("radio")
        first, second = radios.nth(0), radios.nth(1)
        target = second if first.get_attribute("aria-checked") == "true" else first
        return timed(self.page, None, target.click)

    def target_change(self) -> float:
        # "Predicted: cat", "True class: cat" and "3: cat" show the same map: change the class itself.
        def same_class(a: str, b: str) -> bool:
            return a.split(": ", 1)[-1] == b.split(": ", 1)[-1]

        return timed(self.page, *self._combobox_option("Target class", same_class))

    def gallery_click(self) -> float:
        import re

        buttons = self.page.get_by_role("button", name=re.compile(r"^#\d+$"))
        count = buttons.count()
        if count < 2:
            raise BenchError(f"the page has {count} gallery buttons named #<index>; two are needed")
        button = buttons.nth(1 + self.rep % (count - 1))
        return timed(self.page, None, button.click)

    def run(self, name: str) -> float:
        method = getattr(self, name.replace(" ", "_"))
        value = method()
        self.rep += 1
        return value

    def opacity_drag(self) -> tuple[int, float]:
        """(pictures drawn, longest pause in ms) while the pointer drags the opacity slider for ~1 s."""
        if self.has_viewer:
            track = self.page.locator(VIEWER).get_by_role("slider", name="Opacity")
        else:
            track = self.page.locator("[data-testid='stSlider']").filter(has_text="Opacity").get_by_role(
                "group", name="Opacity").locator(":scope > div").first  # react-aria's track
        track.scroll_into_view_if_needed()
        box = track.bounding_box()
        y = box["y"] + box["height"] / 2
        ends = (box["x"] + box["width"] * 0.1, box["x"] + box["width"] * 0.9)  # opacity ~0.1 and ~0.9
        start_x, end_x = ends if self.rep % 2 == 0 else ends[::-1]  # alternate the direction
        self.rep += 1
        self.page.mouse.move(start_x, y)
        self.page.evaluate("window.__bench.record()")
        started = self.page.evaluate("performance.now()")
        self.page.mouse.down()
        for step in range(1, DRAG_STEPS + 1):
            self.page.mouse.move(start_x + (end_x - start_x) * step / DRAG_STEPS, y)
            self.page.wait_for_timeout(DRAG_STEP_MS)
        released = self.page.evaluate("performance.now()")
        self.page.mouse.up()
        self.page.wait_for_timeout(500)
        settle(self.page)
        changes = self.page.evaluate("window.__bench.stopRecording()")
        marks = [started, *(t for t in changes if t <= released), released]
        return len(changes), max(b - a for a, b in itertools.pairwise(marks))


@dataclass
class App:
    """A Streamlit script to measure and the folder it runs from."""

    label: str
    script: Path
    cwd: Path = REPO


def export_ref(ref: str, folder: Path) -> App:
    """The app as it is at git ``ref``, exported into ``folder`` (``git archive``: tracked files only)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref], capture_output=True,
                             check=False)
    if archive.returncode != 0:
        raise BenchError(f"git archive {ref!r} failed: {archive.stderr.decode().strip()}; give a branch, tag or "
                         "commit of this repository")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return App(f"before ({ref})", folder / "app.py", folder)


def measure_dashboards(browser, apps: list[App], reps: int, cold_reps: int, log_dir: Path
                       ) -> dict[str, dict[str, Series]]:
    """Each app's cold starts (alternating between the apps, each on a fresh server), then its interactions on
    the last server."""
    results = {app.label: {COLD: Series()} for app in apps}
    for index in range(cold_reps):
        for number, app in enumerate(apps):
            log = log_dir / f"cold-{number}-{index}.log"
            with streamlit_server(app.script, app.cwd, log) as (url, spawned):
                page = new_page(browser)
                results[app.label][COLD].samples.append(first_picture(page, url + "/", spawned))
                if index == cold_reps - 1:  # the last cold server stays for the interactions
                    settle(page, 1000, COLD_WAIT_MS)  # the gallery reads the predictions after the first picture
                    results[app.label].update(measure_interactions(page, reps))
                page.context.close()
    return results


def measure_interactions(page, reps: int) -> dict[str, Series]:
    driver = DashboardDriver(page)
    results = {}
    for name in INTERACTIONS:
        series = Series(note="viewer" if driver.has_viewer else "st widgets")
        try:
            driver.run(name)  # one unmeasured warm-up: caches of the value first shown
            for _ in range(reps):
                series.samples.append(driver.run(name))
        except Exception as err:  # one interaction the page lacks must not hide the others' numbers
            series.note = f"not measured: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
        results[name] = series
    drawn, pause = Series(note="pictures"), Series(note="ms")
    try:
        for _ in range(max(1, min(reps, 3))):
            count, longest = driver.opacity_drag()
            drawn.samples.append(count)
            pause.samples.append(longest)
    except Exception as err:
        drawn.note = f"not measured: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
    results[DRAG] = drawn
    results[DRAG + " pause"] = pause
    return results


# ------------------------------------------------------------------------------------------------ torch-cam
def offline_torch_home(folder: Path, arch: str = "resnet18") -> Path:
    """A TORCH_HOME whose hub cache holds randomly initialised ``arch`` weights under torchvision's file name."""
    import torch
    from torchvision.models import get_model, get_model_weights

    weights = get_model_weights(arch).DEFAULT
    checkpoints = folder / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    target = checkpoints / weights.url.rsplit("/", 1)[-1]
    if not target.exists():
        torch.save(get_model(arch, weights=None).state_dict(), target)
    return folder


def demo_image(folder: Path) -> Path:
    """A photo to upload: scikit-learn's bundled sample image (no download), else a synthetic one."""
    from PIL import Image

    path = folder / "photo.jpg"
    try:
        from sklearn.datasets import load_sample_image

        Image.fromarray(load_sample_image("china.jpg")).save(path, quality=90)
    except Exception:
        import numpy as np

        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (320, 480, 3), dtype=np.uint8)).save(path, quality=90)
    return path


class TorchCamDriver:
    """torch-cam's demo: upload an image, change one setting, click "Compute CAM"; timed from that click."""

    def __init__(self, page, image: Path):
        self.page = page
        self.image = image
        self.rep = 0

    def sidebar(self):
        return self.page.locator("[data-testid='stSidebar']")

    def upload_and_compute(self) -> None:
        self.sidebar().locator("input[type='file']").set_input_files(str(self.image))
        compute = self.sidebar().get_by_role("button", name="Compute CAM")
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('button')].some(b => b.innerText.includes('Compute CAM') "
            "&& !b.disabled)", timeout=WAIT_MS)
        compute.click()

    def compute_after(self, change: Callable[[], None]) -> float:
        def prepare():
            change()
            settle(self.page, 200)

        return timed(self.page, prepare, self.sidebar().get_by_role("button", name="Compute CAM").click)

    def pick(self, name: str, option: str) -> None:
        self.sidebar().get_by_role("combobox", name=name).click()
        self.page.get_by_role("option", name=option, exact=True).click()

    def layer_switch(self) -> float:
        def change():
            expander = self.sidebar().locator("[data-testid='stExpander']").filter(has_text="Method settings")
            field = expander.get_by_role("textbox", name="Target layers")
            if not field.is_visible():
                expander.locator("summary").click()
            field.fill("layer3" if self.rep % 2 == 0 else "layer4")
            field.press("Enter")

        return self.compute_after(change)

    def method_change(self) -> float:
        return self.compute_after(lambda: self.pick("CAM method", "GradCAMpp" if self.rep % 2 == 0 else "GradCAM"))

    def target_change(self) -> float:
        def change():
            self.sidebar().get_by_text("Choose a class").click()
            settle(self.page, 100)
            box = self.sidebar().get_by_role("combobox", name="ImageNet class")
            box.click()
            box.press("ArrowDown")
            box.press("Enter")

        return self.compute_after(change)

    def run(self, name: str) -> float:
        value = getattr(self, name.replace(" ", "_"))()
        self.rep += 1
        return value


def measure_torchcam(browser, demo: Path, reps: int, cold_reps: int, log_dir: Path) -> dict[str, Series]:
    scratch = Path(tempfile.mkdtemp(prefix="torchcam-bench-"))
    try:
        workdir = scratch / "demo"  # a copy alone in a folder: `python -m` puts the cwd first on sys.path
        workdir.mkdir()
        shutil.copy(demo, workdir / "app.py")
        env = {**os.environ, "TORCH_HOME": str(offline_torch_home(scratch / "torch")), "CUDA_VISIBLE_DEVICES": ""}
        image = demo_image(scratch)
        results: dict[str, Series] = {COLD: Series(note="spawn → upload → Compute CAM → overlay")}
        for index in range(cold_reps):
            with streamlit_server(workdir / "app.py", workdir, log_dir / f"torchcam-cold-{index}.log", env) as (
                    url, spawned):
                page = new_page(browser)
                driver = TorchCamDriver(page, image)
                results[COLD].samples.append(first_picture(page, url + "/", spawned, driver.upload_and_compute))
                if index == cold_reps - 1:
                    settle(page, 500, COLD_WAIT_MS)
                    results.update(_torchcam_interactions(driver, reps))
                page.context.close()
        return results
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _torchcam_interactions(driver: TorchCamDriver, reps: int) -> dict[str, Series]:
    driver.pick("CAM method", "GradCAM")  # the demo starts with CAM, which explains only the last layer
    settle(driver.page, 200)
    results = {"opacity step": Series(note="no opacity control (fixed 0.5)"),
               "gallery click": Series(note="no gallery (one uploaded image)")}
    for name in ("layer switch", "method change", "target change"):
        series = Series(note="from the Compute CAM click")
        try:
            driver.run(name)
            for _ in range(reps):
                series.samples.append(driver.run(name))
        except Exception as err:
            series.note = f"not measured: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
        results[name] = series
    return results


# ------------------------------------------------------------------------------------------------ payload
def payload_rows(with_resnet50: bool = True) -> list[tuple[str, dict[str, int]]]:
    """What one viewer run sends, for the bundled shapes model and for resnet50 at 224 px (random weights)."""
    import numpy as np
    import torch
    from torchvision.models import resnet50

    logging.getLogger("streamlit.runtime.caching.cache_data_api").setLevel(logging.ERROR)  # no runtime: fine here
    from dashboard.cam_viewer import payload_bytes
    from gradcam_core import COLORMAPS, layer_output_shapes, list_conv_layers
    from models import load_workspace

    rows = []
    workspace = load_workspace("shapes")
    pixels = np.asarray(workspace.test_set.image(0).convert("RGB").resize(workspace.input_size[::-1]))
    shapes = layer_output_shapes(workspace.model, workspace.input_size, list_conv_layers(workspace.model))
    rng = np.random.default_rng(0)
    maps = {name: rng.random((h, w), dtype=np.float32) for name, (_, h, w) in shapes.items()}
    rows.append((f"shapes: {len(maps)} layers, {pixels.shape[0]} px", payload_bytes(pixels, maps, COLORMAPS)))
    if not with_resnet50:
        return rows

    with torch.no_grad():
        model = resnet50(weights=None).eval()
    shapes = layer_output_shapes(model, (224, 224), list_conv_layers(model))
    scratch = Path(tempfile.mkdtemp(prefix="payload-"))
    try:
        from PIL import Image

        photo = Image.open(demo_image(scratch)).convert("RGB").resize((224, 224))
        pixels = np.asarray(photo)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    maps = {name: rng.random((h, w), dtype=np.float32) for name, (_, h, w) in shapes.items()}
    rows.append((f"resnet50: {len(maps)} layers, 224 px photo", payload_bytes(pixels, maps, COLORMAPS)))
    return rows


# ------------------------------------------------------------------------------------------------ report
def table(columns: dict[str, dict[str, Series]]) -> list[str]:
    """One row per interaction, a p50 and a p95 column per measured app (each column's label: its key)."""
    header = "| interaction |" + "".join(f" {label} p50 | p95 |" for label in columns)
    rule = "|---|" + "---:|---:|" * len(columns)
    lines = [header, rule]
    for name in (*INTERACTIONS, COLD):
        unit = "s" if name == COLD else "ms"
        counts = {len(results.get(name, Series()).samples) for results in columns.values()} - {0}
        row = f"| {name} ({'/'.join(map(str, sorted(counts))) or 0}×) |"
        for results in columns.values():
            series = results.get(name, Series(note="not measured"))
            row += f" {series.cell(0.5, unit)} | {series.cell(0.95, unit)} |"
        lines.append(row)
    row = (f"| {DRAG} (0.1 → 0.9 in {DRAG_STEPS} moves, {DRAG_STEP_MS} ms apart): pictures drawn / longest "
           "pause |")
    for results in columns.values():
        drawn, pause = results.get(DRAG, Series()), results.get(DRAG + " pause", Series())
        row += (f" {drawn.cell(0.5, 'pictures')} | {pause.cell(0.5)} |" if drawn.samples and pause.samples
                else " n/a | n/a |")
    lines.append(row)
    notes = [f"- {label}, {name}: {series.note}" for label, results in columns.items()
             for name, series in results.items() if series.note.startswith("not measured")
             or (label.startswith("torch-cam") and series.note)]
    return lines + (["", *notes] if notes else [])


def section(quick: bool = False, app: Path = REPO / "app.py", torchcam_demo: Path | None = None,
            reps: int | None = None, with_payload: bool = True, baseline: str | None = None) -> str:
    """The browser section of BENCHMARKS.md as markdown (bench/__main__ can call this)."""
    from playwright.sync_api import sync_playwright

    reps = reps if reps is not None else (1 if quick else 10)
    cold_reps = 1 if quick else 3
    log_dir = REPO / "artifacts" / "browser_bench"
    started = time.monotonic()
    loads = [os.getloadavg()[0]]
    shown_app = app.relative_to(REPO) if app.is_relative_to(REPO) else app
    scratch = Path(tempfile.mkdtemp(prefix="browser-bench-"))
    try:
        apps = [App(f"after ({shown_app})", app)]
        if baseline:
            apps.insert(0, export_ref(baseline, scratch))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                columns = measure_dashboards(browser, apps, reps, cold_reps, log_dir)
                loads.append(os.getloadavg()[0])
                if torchcam_demo is not None:
                    columns["torch-cam demo"] = measure_torchcam(browser, torchcam_demo, 1 if quick else
                                                                 max(1, reps // 2), 1 if quick else 2, log_dir)
            finally:
                browser.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    loads.append(os.getloadavg()[0])
    modes = {label: next((s.note for s in results.values() if s.note in ("viewer", "st widgets")), "?")
             for label, results in columns.items() if not label.startswith("torch-cam")}
    lines = [
        "### Browser latency: input → new picture on screen (" + "; ".join(
            f"{label}: {'CAM viewer' if mode == 'viewer' else 'Streamlit widgets'}" for label, mode in modes.items())
        + ")",
        "",
        f"Headless Chromium, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
        f"{' / '.join(f'{value:.1f}' for value in loads)} (start / after ours / end; other work on the machine "
        f"slows every row); p50/p95 over the repetitions shown; {time.monotonic() - started:.0f} s in all.",
        "",
        *table(columns),
    ]
    if torchcam_demo is None:
        lines += ["", "torch-cam's demo: not run (give --torchcam-demo PATH/demo/app.py or TORCHCAM_DEMO)."]
    if with_payload:
        lines += ["", "#### CAM viewer payload (one run's data: PNG image + uint8 maps + LUTs, as bytes)", "",
                  "| model | image PNG | maps | layer list | colormaps | total |", "|---|---:|---:|---:|---:|---:|"]
        for label, sizes in payload_rows(with_resnet50=not quick):
            lines.append(f"| {label} | {sizes['image_png'] / 1024:.1f} KB | {sizes['maps'] / 1024:.1f} KB | "
                         f"{sizes['layers'] / 1024:.1f} KB | {sizes['colormaps'] / 1024:.1f} KB | "
                         f"{sizes['total'] / 1024:.1f} KB |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.browser_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="each interaction once, one cold start (smoke run)")
    parser.add_argument("--reps", type=int, help="repetitions per interaction (default 10, torch-cam's half; "
                                                 "1 with --quick)")
    parser.add_argument("--app", type=Path, default=REPO / "app.py", help="the Streamlit script to measure")
    parser.add_argument("--torchcam-demo", type=Path, default=os.environ.get("TORCHCAM_DEMO") or None,
                        help="torch-cam's demo/app.py (from its repository); skipped when absent")
    parser.add_argument("--baseline", metavar="REF", help="also measure the app at this git ref (e.g. main), "
                                                          "side by side in the same run")
    parser.add_argument("--no-payload", action="store_true", help="skip the viewer payload sizes")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        # As the browser tests: skipped on a machine without Chromium, a failure in CI (CI set).
        print(f"browser bench skipped: Chromium not found at {CHROMIUM}; install Debian's chromium (make "
              "browser-deps) or set CHROMIUM", file=sys.stderr)
        return 2 if os.environ.get("CI") else 0
    demo = args.torchcam_demo
    if demo is not None and not demo.is_file():
        print(f"torch-cam demo {demo} is not a file: give the path of demo/app.py in a torch-cam checkout",
              file=sys.stderr)
        return 2
    text = section(args.quick, args.app.resolve(), demo, args.reps, not args.no_payload, args.baseline)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
