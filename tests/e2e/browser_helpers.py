"""Shared by the browser tests: Chromium settings, a streamlit server on a free port, waiting for renders."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
SERVER_START_S = 180
# A cold first render loads the model and classifies the test split; on a busy 2-core machine that is slow.
RENDER_MS = 240_000
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
ALL_IMAGES_LOADED = """() => {
    const images = [...document.querySelectorAll("[data-testid='stImage'] img")];
    return images.length > 0 && images.every(img => img.complete && img.naturalWidth > 0);
}"""


def unavailable(reason: str):
    message = (f"{reason}; the browser test needs Debian's Chromium at {CHROMIUM}: `apt-get install chromium` "
               "(or `make browser-deps` as root), or point the CHROMIUM environment variable at a Chromium binary")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_server(log_path: Path, extra_args: tuple[str, ...] = (), script: str = "app.py"):
    """``streamlit run <script>`` (default app.py) on a free port, yielding its URL; always terminated, also when a
    test fails."""
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
             "--server.fileWatcherType", "none", "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", *extra_args],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + SERVER_START_S
            while True:
                if process.poll() is not None:
                    pytest.fail(f"streamlit exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                        if reply.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not answer /_stcore/health in {SERVER_START_S} s")
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_rendered(page) -> None:
    page.wait_for_selector("[data-testid='stImage'] img", timeout=RENDER_MS)
    page.wait_for_selector(IDLE, timeout=RENDER_MS)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=RENDER_MS)


def view_image(page, caption: str | re.Pattern):
    locator = page.locator("[data-testid='stImage']").filter(has_text=caption).locator("img")
    assert locator.count() == 1, f"expected one image captioned {caption!r}, found {locator.count()}"
    return locator


def header(page) -> str:
    return page.get_by_text(re.compile(r"^Test image #\d+")).first.inner_text()


def layer_shown(page) -> str:
    return page.get_by_role("combobox", name="Layer").input_value()


def assert_no_traceback(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, "the page shows a traceback"
