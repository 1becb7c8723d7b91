"""The CAM viewer component: its view bookkeeping and payload (plain tests), then in a real browser on a small page
with synthetic pictures (tests/e2e/viewer_app.py).

In the browser, each control changes the picture (canvas pixels compared before and after) and the element's data-*
attributes, without a rerun for layer, opacity and colormap; the colours are the LUT's; the view reaches Python
(debounced); new data from the server keeps the user's view unless the server sets one; two sessions stay apart.
The explorer-level checks (URL, shared link) come with the viewer's integration into the explorer.
"""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from dashboard.cam_viewer import (
    FIELDS,
    apply_report,
    cam_viewer,
    encode_luts,
    encode_payload,
    published_view,
    quantise,
    settle_view,
    unpack,
    viewer_message,
)
from dashboard.cam_viewer.pictures import heatmap_picture, viewer_pictures
from dashboard.figures import display_factor
from gradcam_core import COLORMAPS, colorize, overlay, upsample
from tests.e2e.browser_helpers import assert_no_traceback, streamlit_server
from tests.e2e.viewer_app import FLAT_INDEX, IMAGE_SIZE, synthetic_image, synthetic_maps

VIEWER = '[data-testid="cam-viewer"]'
WAIT_MS = 60_000
SCALE = display_factor(IMAGE_SIZE, IMAGE_SIZE)


@pytest.fixture(scope="module")
def server(artifacts_dir):
    log = artifacts_dir / "e2e" / "test_cam_viewer.server.log"
    with streamlit_server(log, script="tests/e2e/viewer_app.py") as url:
        yield url


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    open_viewer(page, server)
    yield page
    context.close()


# ------------------------------------------------------------------------------------------------ no browser
CHOICES = {"layer": ["a", "b", "c"], "colormap": ["jet", "gray"], "method": ["gradcam", "layercam"]}
START = {"layer": "a", "opacity": 0.5, "colormap": "jet", "method": "gradcam"}


def test_the_server_overrides_only_what_the_page_itself_changed():
    first = settle_view(None, START, CHOICES)
    assert first["view"] == START and first["revision"] == 1 and first["fields"] == list(FIELDS)
    reported = {"layer": "b", "opacity": 0.7, "colormap": "gray", "method": "gradcam"}
    first["view"] = apply_report(first, {**reported, "report": "x:1"})
    stale = settle_view(first, START, CHOICES)  # the page has not stored the report yet: no override
    assert stale["view"] == reported and stale["revision"] == 1
    echoed = settle_view(stale, reported, CHOICES)  # the page passes the reported view back: none either
    assert echoed["view"] == reported and echoed["revision"] == 1
    clicked = settle_view(echoed, {**reported, "layer": "c"}, CHOICES)  # the page picks a layer itself
    assert clicked["view"] == {**reported, "layer": "c"}
    assert clicked["revision"] == 2 and clicked["fields"] == ["layer"]
    # The maps of another model: the view's layer is gone, so the page's (unchanged) layer is shown.
    other = settle_view(clicked, {**reported, "layer": "c"}, {**CHOICES, "layer": ["c", "d"]})
    assert other["revision"] == 2
    other["view"] = apply_report({**other, "choices": CHOICES}, {"layer": "a"})
    gone = settle_view(other, {**reported, "layer": "c"}, {**CHOICES, "layer": ["c", "d"]})
    assert gone["view"]["layer"] == "c" and gone["revision"] == 3 and gone["fields"] == ["layer"]


def test_the_browser_is_sent_the_last_override_not_the_reports():
    """Reports must leave the element's data as it was, so that Streamlit resends a reference, not the payload."""
    first = settle_view(None, START, CHOICES)
    sent = published_view(first)
    assert sent == {**START, "revision": 1, "fields": list(FIELDS), "slot": first["id"]}
    reported = {"layer": "b", "opacity": 0.7, "colormap": "gray", "method": "gradcam"}
    first["view"] = apply_report(first, reported)
    echoed = settle_view(settle_view(first, START, CHOICES), reported, CHOICES)
    assert echoed["view"] == reported and published_view(echoed) == sent
    clicked = settle_view(echoed, {**reported, "layer": "c"}, CHOICES)
    assert published_view(clicked) == {**reported, "layer": "c", "revision": 2, "fields": ["layer"],
                                       "slot": first["id"]}
    assert settle_view(None, START, CHOICES)["id"] != first["id"]  # another session, another slot


def test_a_report_outside_the_choices_is_ignored():
    slot = settle_view(None, START, CHOICES)
    nonsense = {"layer": "zzz", "opacity": 3, "colormap": "gray", "method": "scorecam"}
    assert apply_report(slot, nonsense) == {**START, "colormap": "gray"}
    assert apply_report(slot, {"opacity": True}) == START
    assert apply_report(slot, None) == START


def test_the_payload_carries_the_image_and_each_maps_lut_indices():
    image = synthetic_image(1)
    maps = synthetic_maps(1, "gradcam", "circle")
    header, blobs = unpack(viewer_message({"sample": "1"}, encode_payload(image, maps, 4), encode_luts(COLORMAPS)))
    payload = header["payload"]
    assert header["sample"] == "1" and header["colormaps"]["names"] == list(COLORMAPS)
    luts = np.frombuffer(blobs["luts"], dtype=np.uint8).reshape(len(COLORMAPS), 256, 3)
    assert all(np.array_equal(lut, COLORMAPS[name]) for name, lut in zip(COLORMAPS, luts, strict=True))
    png = np.asarray(Image.open(io.BytesIO(blobs["image_png"])))
    assert np.array_equal(png, image)
    buffer = np.frombuffer(blobs["maps"], dtype=np.uint8)
    assert [layer[0] for layer in payload["layers"]] == list(maps)
    for name, label, h, w, offset in payload["layers"]:
        assert label == f"{name} · {h}×{w}"
        assert np.array_equal(buffer[offset:offset + h * w].reshape(h, w), quantise(maps[name]))
    assert buffer.size == sum(m.size for m in maps.values())
    assert encode_payload(image.copy(), dict(maps), 4)["id"] == payload["id"]
    assert encode_payload(image, {**maps, "flat": maps["flat"] * 0.5}, 4)["id"] != payload["id"]


def test_bad_input_is_named_with_what_to_do():
    good = {"image": synthetic_image(0), "maps": synthetic_maps(0, "gradcam", "circle"), "layer": "stem",
            "opacity": 0.5, "colormap": "jet", "luts": COLORMAPS, "sample": 0, "method": "gradcam", "key": "v"}
    for change, message in (({"layer": "stme"}, "layer 'stme' .* did you mean 'stem'"),
                            ({"colormap": "jett"}, "colormap 'jett' .* did you mean 'jet'"),
                            ({"opacity": 1.5}, "opacity must be in \\[0, 1\\], got 1.5"),
                            ({"image": synthetic_image(0).astype(np.float32)}, "uint8 RGB, got float32"),
                            ({"maps": {"stem": np.zeros((2, 2, 2))}}, "layer 'stem' must be \\(h, w\\)"),
                            ({"luts": {"jet": COLORMAPS["jet"][:128]}}, "'jet' must be a \\(256, 3\\) uint8")):
        with pytest.raises(ValueError, match=message):
            cam_viewer(**{**good, **change})


def test_the_viewer_mounts_under_apptest_and_returns_the_view_the_page_sets():
    """The explorer's AppTest tests run the page without a browser: the component must mount there too."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file("viewer_app.py", default_timeout=60).run()  # resolved beside this file
    assert not app.exception
    assert json.loads(app.code[0].value) == {"layer": "stem", "opacity": 0.5, "colormap": "jet", "method": "gradcam"}
    app.session_state["layer"] = "block2"  # what a layer-strip click does
    app.run()
    assert not app.exception
    assert json.loads(app.code[0].value)["layer"] == "block2"


# ------------------------------------------------------------------------------------------------ browser
def open_viewer(page, server: str, query: str = "") -> None:
    page.goto(server + "/" + query)
    page.locator(f"{VIEWER}[data-layer]").wait_for(timeout=WAIT_MS)
    assert_no_traceback(page)


def shown(page) -> dict[str, str]:
    """The viewer's data-* attributes: what is on screen."""
    return page.locator(VIEWER).evaluate(
        "e => Object.fromEntries([...e.attributes].filter(a => a.name.startsWith('data-') && a.name !== 'data-testid')"
        ".map(a => [a.name.slice(5), a.value]))")


def wait_shown(page, **expected) -> None:
    selector = VIEWER + "".join(f'[data-{name}="{value}"]' for name, value in expected.items())
    page.locator(selector).wait_for(timeout=WAIT_MS)


def canvas(page, which: str) -> np.ndarray:
    """(H, W, 4) pixels of the viewer's original / heatmap / overlay canvas."""
    url = page.locator(f"{VIEWER} canvas.picture-{which}").evaluate("c => c.toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"))


def pictures(page) -> dict[str, np.ndarray]:
    return {which: canvas(page, which) for which in ("original", "heatmap", "overlay")}


def changed(before: dict, after: dict) -> set[str]:
    return {which for which in before if not np.array_equal(before[which], after[which])}


def wait_reported(page, **expected) -> dict:
    """Wait until the page's "Reported view" JSON (what Python got back) has these values; returns it."""
    page.wait_for_function(
        """expected => {
            const code = document.querySelector("[data-testid='stCode'] code");
            if (!code) return false;
            const view = JSON.parse(code.innerText);
            return Object.entries(expected).every(([k, v]) => view[k] === v);
        }""", arg=expected, timeout=WAIT_MS)
    return json.loads(page.locator("[data-testid='stCode'] code").inner_text())


def change_and_time(page, action: str) -> dict:
    """Run ``action`` (JS, given the viewer element) in the page; report when the attributes changed and when the
    app's script started running, if it did, within a second (in ms since the action)."""
    return page.locator(VIEWER).evaluate(
        """(viewer, action) => new Promise(resolve => {
            const app = document.querySelector("[data-testid='stApp']");
            const before = viewer.outerHTML.match(/data-[a-z]+="[^"]*"/g).join();
            const times = {drawn: null, rerun: null};
            const start = performance.now();
            const observers = [
                new MutationObserver(() => {
                    const now = viewer.outerHTML.match(/data-[a-z]+="[^"]*"/g).join();
                    if (times.drawn === null && now !== before) times.drawn = performance.now() - start;
                }),
                new MutationObserver(() => {
                    if (times.rerun === null && app.getAttribute('data-test-script-state') === 'running')
                        times.rerun = performance.now() - start;
                }),
            ];
            observers[0].observe(viewer, {attributes: true});
            observers[1].observe(app, {attributes: true});
            new Function('viewer', action)(viewer);
            setTimeout(() => { observers.forEach(o => o.disconnect()); resolve(times); }, 1000);
        })""", action)


@pytest.mark.browser
def test_each_control_redraws_in_the_browser_and_reports_to_python(page):
    assert shown(page) == {"sample": "0", "layer": "stem", "method": "gradcam", "target": "circle",
                           "opacity": "0.5", "colormap": "jet"}
    for role, name in (("combobox", "Layer"), ("combobox", "Method"), ("slider", "Opacity"),
                       ("combobox", "Colormap")):
        assert page.get_by_role(role, name=name, exact=True).count() == 1, (role, name)
    before = pictures(page)

    set_layer = ("const s = viewer.querySelector('select[name=layer]'); s.value = 'block1';"
                 "s.dispatchEvent(new Event('change'));")
    times = change_and_time(page, set_layer)
    assert times["drawn"] is not None, "the layer change drew nothing within a second"
    assert times["rerun"] is None or times["rerun"] > times["drawn"], f"the picture waited for a rerun: {times}"
    assert shown(page)["layer"] == "block1"
    after = pictures(page)
    assert changed(before, after) == {"heatmap", "overlay"}

    before = after
    page.get_by_role("slider", name="Opacity").press("ArrowRight")
    wait_shown(page, opacity="0.55")
    after = pictures(page)
    assert changed(before, after) == {"overlay"}

    before = after
    page.get_by_role("combobox", name="Colormap").select_option("viridis")
    wait_shown(page, colormap="viridis")
    after = pictures(page)
    assert changed(before, after) == {"heatmap", "overlay"}

    before = after
    page.get_by_role("combobox", name="Method").select_option("gradcampp")  # other maps: the server computes them
    wait_shown(page, method="gradcampp")
    after = pictures(page)
    assert changed(before, after) == {"heatmap", "overlay"}
    assert shown(page) == {"sample": "0", "layer": "block1", "method": "gradcampp", "target": "circle",
                           "opacity": "0.55", "colormap": "viridis"}

    assert wait_reported(page, layer="block1", opacity=0.55, colormap="viridis", method="gradcampp")
    assert page.evaluate("location.search") == "?layer=block1&opacity=0.55&colormap=viridis&method=gradcampp"


@pytest.mark.browser
def test_colours_are_the_lut_and_the_maps_upsample_as_render_does(page):
    image = np.repeat(np.repeat(synthetic_image(0), SCALE, axis=0), SCALE, axis=1)
    page.get_by_role("combobox", name="Layer").select_option("flat")
    page.get_by_role("combobox", name="Colormap").select_option("inferno")
    wait_shown(page, layer="flat", colormap="inferno")
    heat = canvas(page, "heatmap")
    assert heat.shape == (*image.shape[:2], 4)
    assert (heat[..., :3] == COLORMAPS["inferno"][FLAT_INDEX]).all(), "a flat map is not its LUT colour"
    assert np.array_equal(canvas(page, "original")[..., :3], image)
    expected = overlay(image, heat[..., :3], 0.5)  # the blend itself, exactly as render.overlay
    assert np.array_equal(canvas(page, "overlay")[..., :3], expected)

    # The gray LUT is the identity, so the heatmap's red channel is the LUT index the viewer computed.
    assert np.array_equal(COLORMAPS["gray"][:, 0], np.arange(256))
    page.get_by_role("combobox", name="Layer").select_option("block1")
    page.get_by_role("combobox", name="Colormap").select_option("gray")
    wait_shown(page, layer="block1", colormap="gray")
    indices = canvas(page, "heatmap")[..., 0].astype(int)
    cam = synthetic_maps(0, "gradcam", "circle")["block1"]
    reference = colorize(upsample(cam, image.shape[:2]), "gray")[..., 0].astype(int)
    difference = np.abs(indices - reference)
    assert difference.max() <= 1 and (difference == 0).mean() > 0.99, (difference.max(), (difference == 0).mean())
    # The server's copy of the viewer's arithmetic (the explorer's downloads) gives the same pixels, exactly.
    assert np.array_equal(canvas(page, "heatmap")[..., :3], heatmap_picture(cam, COLORMAPS["gray"], *image.shape[:2]))

    # A float map off the 1/255 grid, 7x7 upsampled to the display size (a ratio that is no integer).
    page.get_by_role("combobox", name="Layer").select_option("smooth")
    page.get_by_role("combobox", name="Colormap").select_option("viridis")
    page.get_by_role("slider", name="Opacity").press("ArrowRight")
    wait_shown(page, layer="smooth", colormap="viridis", opacity="0.55")
    cam = synthetic_maps(0, "gradcam", "circle")["smooth"]
    heat, blended = viewer_pictures(synthetic_image(0), cam, COLORMAPS["viridis"], 0.55, SCALE)
    assert np.array_equal(canvas(page, "heatmap")[..., :3], heat)
    assert np.array_equal(canvas(page, "overlay")[..., :3], blended)


@pytest.mark.browser
@pytest.mark.slow
def test_new_data_keeps_the_users_view_unless_the_server_sets_one(browser, server):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    open_viewer(page, server, "?report_delay_ms=3000")  # the server hears of the next changes 3 s late
    before = pictures(page)
    page.get_by_role("combobox", name="Layer").select_option("head")
    page.get_by_role("combobox", name="Colormap").select_option("inferno")
    page.get_by_role("button", name="#2", exact=True).click()  # new data whose view is still stem / jet
    wait_shown(page, sample="2")
    assert {k: shown(page)[k] for k in ("layer", "opacity", "colormap")} == {
        "layer": "head", "opacity": "0.5", "colormap": "inferno"}
    assert changed(before, pictures(page)) == {"original", "heatmap", "overlay"}
    assert json.loads(page.locator("[data-testid='stCode'] code").inner_text())["layer"] == "stem"  # not told yet
    wait_reported(page, layer="head", colormap="inferno")

    page.get_by_role("combobox", name="Target class").click()
    page.get_by_role("option", name="triangle").click()
    wait_shown(page, target="triangle", layer="head", colormap="inferno")

    page.get_by_role("button", name="Server picks block2").click()
    wait_shown(page, layer="block2", colormap="inferno", sample="2")
    assert page.get_by_role("combobox", name="Layer").input_value() == "block2"
    wait_reported(page, layer="block2", colormap="inferno")
    page.context.close()


@pytest.mark.browser
def test_keyboard_and_screen_reader(page):
    layer = page.get_by_role("combobox", name="Layer")
    layer.focus()
    layer.press("ArrowDown")  # a closed <select> steps to the next option
    wait_shown(page, layer="block1")
    page.keyboard.press("Tab")
    assert page.get_by_role("combobox", name="Method").evaluate("e => e.matches(':focus')")
    page.keyboard.press("Tab")
    slider = page.get_by_role("slider", name="Opacity")
    assert slider.evaluate("e => e.matches(':focus')")
    page.keyboard.press("End")
    wait_shown(page, opacity="1")
    assert np.array_equal(canvas(page, "overlay"), canvas(page, "heatmap"))  # opacity 1 shows the heatmap
    page.keyboard.press("Home")
    wait_shown(page, opacity="0")
    assert np.array_equal(canvas(page, "overlay"), canvas(page, "original"))
    for name in ("Original", "Heatmap", "Overlay"):
        picture = page.get_by_role("img", name=re.compile(f"^{name}"))
        assert picture.count() == 1, name
    assert "block1" in page.get_by_role("img", name=re.compile("^Heatmap")).get_attribute("aria-label")
    assert "block1" in page.get_by_role("status").inner_text()


@pytest.mark.browser
@pytest.mark.slow
def test_dragging_opacity_repaints_continuously_and_reports_once(browser, server):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    sent = []  # messages from the browser to the server: each report of the view is one
    page.on("websocket", lambda socket: socket.on("framesent", lambda frame: sent.append(frame)))
    open_viewer(page, server)
    wait_reported(page, opacity=0.5)
    page.wait_for_timeout(500)
    sent.clear()
    page.locator(VIEWER).evaluate("""viewer => {
        window.opacitiesDrawn = [];
        new MutationObserver(() => window.opacitiesDrawn.push(viewer.dataset.opacity))
            .observe(viewer, {attributes: true, attributeFilter: ['data-opacity']});
    }""")
    box = page.get_by_role("slider", name="Opacity").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + 2, y, steps=12)
    page.mouse.up()
    wait_shown(page, opacity="0")
    drawn = page.evaluate("window.opacitiesDrawn")
    assert len(set(drawn)) >= 6, f"the drag repainted only at {drawn}"
    wait_reported(page, opacity=0.0)
    page.wait_for_timeout(500)  # a second report, if there were one, would have gone by now
    assert len(sent) == 1, f"{len(sent)} messages to the server for one drag over {len(set(drawn))} opacities"
    page.context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_two_sessions_stay_independent(browser, server):
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    try:
        first, second = (context.new_page() for context in contexts)
        open_viewer(first, server)
        open_viewer(second, server, "?layer=head&colormap=gray")  # a link's view, in this session only
        wait_shown(second, layer="head", colormap="gray")
        first.get_by_role("combobox", name="Layer").select_option("block2")
        second.get_by_role("combobox", name="Colormap").select_option("viridis")
        wait_reported(first, layer="block2", colormap="jet")
        wait_reported(second, layer="head", colormap="viridis")
        first.reload()
        first.locator(f"{VIEWER}[data-layer]").wait_for(timeout=WAIT_MS)
        assert shown(first)["layer"] == "block2" and shown(first)["colormap"] == "jet"
        assert shown(second)["layer"] == "head" and shown(second)["colormap"] == "viridis"
    finally:
        for context in contexts:
            context.close()
