"""Hostile and unusual files through the explorer page: every one gets an explanation or an error message in the
page, never a traceback, and the session keeps working afterwards.

Uploads run on the small digits workspace (fast); the decoder's own behaviour per image kind is asserted in
tests/core/test_images.py, here it is what the user sees. Broken workspace files come from
tests/models/test_hardening.py and go through ``streamlit run app.py -- --workspace bad.toml``.
"""

from __future__ import annotations

import io
import shutil
import sys

import numpy as np
import pytest
from PIL import Image
from streamlit import config

from dashboard.state import ExplorerState as E
from models import DEFAULT_WORKSPACE
from tests.app.helpers import assert_clean, main_images, run_app, viewer_data
from tests.image_files import bomb_png
from tests.models.test_hardening import BROKEN_WORKSPACES, add_bad_images, make_workspace, write_template

WORKSPACE = {"ws": "digits"}


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _photo(width: int, height: int) -> Image.Image:
    """A smooth colour picture (compresses well, unlike noise)."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return Image.fromarray(np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8))


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to show upright
    return _save(_photo(60, 40), "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [_photo(40, 40).convert("P"), Image.new("P", (40, 40), 3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _truncated_jpeg() -> bytes:
    whole = _save(Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 80, 3), np.uint8)), "JPEG")
    return whole[: len(whole) // 2]


def _sixteen_bit() -> bytes:
    ramp = np.linspace(0, 65535, 48 * 48).reshape(48, 48).astype(np.uint16)
    return _save(Image.fromarray(ramp), "PNG")


def _rgba() -> bytes:
    pixels = np.zeros((40, 40, 4), np.uint8)
    pixels[10:30, 10:30] = (0, 0, 0, 255)
    return _save(Image.fromarray(pixels, "RGBA"), "PNG")


#: name -> (file name, bytes factory, None for "explained" or a substring of the error message)
UPLOADS = {
    "empty": ("empty.png", lambda: b"", "is empty (0 bytes)"),
    "random-bytes": ("noise.png", lambda: np.random.default_rng(0).bytes(3000), "not an image format we can read"),
    "truncated-jpeg": ("cut.jpg", _truncated_jpeg, "truncated or corrupt"),
    "decompression-bomb": ("bomb.png", lambda: bomb_png(30000, 30000), "the 64 MP limit"),
    "very-large-photo": ("big.jpg", lambda: _save(_photo(6000, 4000), "JPEG", quality=70), None),
    "one-pixel": ("dot.png", lambda: _save(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), None),
    "grayscale": ("gray.png", lambda: _save(_photo(40, 30).convert("L"), "PNG"), None),
    "16-bit-grayscale": ("deep.png", _sixteen_bit, None),
    "rgba": ("alpha.png", _rgba, None),
    "palette": ("palette.png", lambda: _save(_photo(40, 30).convert("P"), "PNG"), None),
    "cmyk-jpeg": ("cmyk.jpg", lambda: _save(_photo(40, 30).convert("CMYK"), "JPEG"), None),
    "exif-rotated-jpeg": ("rotated.jpg", _exif_rotated, None),
    "animated-gif": ("anim.gif", _animated_gif, None),
}


def _assert_explained(at) -> None:
    assert_clean(at)
    views = main_images(at)
    assert len(set(views.values())) == 3
    assert at.get("plotly_chart"), "the top-5 chart is missing"


def _assert_still_usable(at) -> None:
    """A normal interaction after the file: pick a gallery image, then change the layer."""
    picks = [b for b in at.button if str(b.key).startswith("explorer.pick.")]
    picks[-1].click().run()
    _assert_explained(at)
    assert any(m.value.startswith("#### Test image #") for m in at.markdown)
    layers = [name for name, *_ in viewer_data(at)["payload"]["layers"]]  # the viewer's Layer control
    other = next(name for name in layers if name != at.session_state[E.layer])
    at.session_state[E.layer] = other  # what the viewer's report of a new layer sets
    at.run()
    _assert_explained(at)
    assert at.query_params["layer"] == other


@pytest.mark.parametrize("case", list(UPLOADS))
def test_an_upload_is_explained_or_refused_with_a_message(case):
    file_name, make, error = UPLOADS[case]
    at = run_app(WORKSPACE)
    at.file_uploader(key=E.uploader).set_value((file_name, make(), "application/octet-stream")).run()
    if error is None:
        _assert_explained(at)
        assert any(f"Uploaded image · {file_name}" in m.value for m in at.markdown)
    else:
        assert not at.exception, [e.value for e in at.exception]
        messages = [e.value for e in at.error]
        assert any(f"Could not use {file_name}" in m and error in m for m in messages), messages
        main_images(at)  # the view falls back to a test image
    _assert_still_usable(at)


def test_an_upload_over_the_size_limit_is_refused_with_the_limit(monkeypatch):
    """AppTest does not enforce server.maxUploadSize (the browser client does); the page's own check does."""
    original = config.get_option("server.maxUploadSize")
    config.set_option("server.maxUploadSize", 1)
    try:
        at = run_app(WORKSPACE)
        noise = np.random.default_rng(0).integers(0, 256, (700, 800, 3), np.uint8)  # ~1.7 MB as PNG
        data = _save(Image.fromarray(noise), "PNG")
        assert len(data) > 1024 * 1024
        at.file_uploader(key=E.uploader).set_value(("huge.png", data, "image/png")).run()
        assert not at.exception
        assert any("Could not use huge.png" in e.value and "over the 1 MB limit" in e.value for e in at.error), [
            e.value for e in at.error]
        _assert_still_usable(at)
    finally:
        config.set_option("server.maxUploadSize", original)


# ------------------------------------------------------------------------------------ workspace files
@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return write_template(tmp_path_factory.mktemp("app-hardening-template"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("case", list(BROKEN_WORKSPACES))
def test_a_broken_workspace_file_is_an_error_in_the_page(monkeypatch, template, tmp_path, case):
    path = make_workspace(template, tmp_path, case)
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(path)])
    at = run_app()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and "could not be loaded" in at.error[0].value, [e.value for e in at.error]
    assert not (tmp_path / "pwned.txt").exists(), "unpickling ran code from the checkpoint"
    import re

    assert re.search(BROKEN_WORKSPACES[case][1], at.error[0].value), at.error[0].value
    picker = at.selectbox(key="ws")
    assert DEFAULT_WORKSPACE in picker.options and "digits" in picker.options
    picker.set_value("digits").run()
    _assert_explained(at)


def _unreadable_note(at) -> str:
    notes = [w.value for w in at.warning if "could not be read and are left out" in w.value]
    assert len(notes) == 1, [w.value for w in at.warning]
    return notes[0]


def test_an_image_folder_with_bad_files_explains_the_good_ones_and_lists_the_bad(monkeypatch, template, tmp_path):
    """The folder is only listed when it opens; bad files are met when the page classifies the set (no store):
    they are left out of the predictions, listed with the reason, and the first image shown is a good one."""
    path = make_workspace(template, tmp_path)
    bad = add_bad_images(tmp_path / "images")
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(path)])
    at = run_app()
    _assert_explained(at)
    note = _unreadable_note(at)
    assert all(name in note and why in note.split(name, 1)[1].split("\n")[0] for name, why in bad.items()), note
    picks = [b for b in at.button if str(b.key).startswith("explorer.pick.")]
    assert len(picks) == 6 and not any(b.disabled for b in picks)  # the good files: the whole split
    assert any("The model gets" in c.value and " of 6 test images" in c.value for c in at.caption)
    picks[-1].click().run()
    _assert_explained(at)


@pytest.fixture(scope="module")
def folder_store(template, tmp_path_factory):
    """The folder with bad files and its store, written by ``gradcam precompute`` (which skips and lists them)."""
    from store.precompute import precompute  # (`from store import precompute` is the module once it was imported)

    folder = tmp_path_factory.mktemp("app-hardening-store")
    path = make_workspace(template, folder)
    bad = add_bad_images(folder / "images")
    precompute(path, folder / "workspace.store", workers=0)
    return folder, bad


def test_a_stores_skipped_files_are_listed_and_a_file_broken_later_is_a_placeholder(monkeypatch, folder_store,
                                                                                      tmp_path):
    """With a store, nothing is read up front: the store's skipped files are listed from its manifest, and a file
    that broke after the store was written is met when its thumbnail is drawn: a placeholder tile, no traceback."""
    shutil.copytree(folder_store[0], tmp_path, dirs_exist_ok=True)
    broken = tmp_path / "images" / "cat" / "1.png"
    broken.write_bytes(broken.read_bytes()[:40])
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(tmp_path / "workspace.toml")])
    at = run_app()
    assert_clean(at)
    note = _unreadable_note(at)
    assert all(name in note for name in [*folder_store[1], "cat/1.png"]), note
    placeholders = [image for image in at.image if any("unreadable" in c for c in image.captions)]
    assert len(placeholders) == 1
    picks = {b.label: b for b in at.button if str(b.key).startswith("explorer.pick.")}
    assert len(picks) == 6 and sum(b.disabled for b in picks.values()) == 1  # the store's 6 rows, one now broken
    good = next(b for b in picks.values() if not b.disabled)
    good.click().run()
    _assert_explained(at)


# ------------------------------------------------------------------------------------ server settings
def test_server_config_has_xsrf_an_upload_limit_and_headless():
    import tomllib

    from tests.app.helpers import APP

    server = tomllib.loads((APP.parent / ".streamlit" / "config.toml").read_text())["server"]
    assert server["enableXsrfProtection"] is True
    assert server["headless"] is True
    assert isinstance(server["maxUploadSize"], int) and 1 <= server["maxUploadSize"] <= 50
    assert server.get("enableCORS", True) is True  # the default; the README says to keep it
    assert server["fileWatcherType"] == "none"


def test_decode_image_refuses_bytes_over_the_upload_limit():
    from dashboard.samples import UploadError, decode_image

    limit_mb = int(config.get_option("server.maxUploadSize"))
    too_big = b"\x89PNG\r\n\x1a\n" + bytes(limit_mb * 1024 * 1024)
    with pytest.raises(UploadError, match=rf"'huge.png' is {len(too_big) / 2**20:.1f} MB, over the "
                                          rf"{limit_mb} MB limit; resize or compress it"):
        decode_image(too_big, "huge.png")
