"""The package as a user gets it: one dependency list, and a wheel whose `gradcam serve` finds its own app."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from bench.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_requirements_txt_mirrors_the_pyproject_dependencies():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert listed == declared


def test_every_package_the_wheel_ships_exists_and_extras_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package in project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
        assert (ROOT / package / "__init__.py").is_file(), package
    assert {"timm", "hf", "ray", "dev"} <= set(project["project"]["optional-dependencies"])
    assert project["project"]["scripts"]["gradcam"] == "cli.main:main"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)], cwd=ROOT,
                   check=True, capture_output=True, timeout=300)
    return next(out.glob("gradcam_dashboard-*.whl"))


@pytest.mark.slow
def test_a_wheel_installs_into_a_fresh_virtualenv_and_serves_the_dashboard(wheel, tmp_path):
    """The wheel goes into a new virtualenv (its dependencies borrowed from this one through a .pth file, to
    avoid reinstalling torch); `gradcam serve`, started from an unrelated folder, runs the wheel's own copy of
    the app: Streamlit's script health check runs app.py and its first page without an error."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["STREAMLIT_SERVER_SCRIPT_HEALTH_CHECK_ENABLED"] = "true"
    command = subprocess.run([venv / "bin" / "gradcam", "serve", "--print-command"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, check=True, timeout=120).stdout
    assert re.search(rf"{re.escape(site)}/gradcam_app/app\.py", command), command
    port = free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([venv / "bin" / "gradcam", "serve", "--port", str(port), "--address", "127.0.0.1"],
                              cwd=elsewhere, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert _get(f"http://127.0.0.1:{port}/_stcore/health", deadline_s=120) == "ok"
        assert _get(f"http://127.0.0.1:{port}/_stcore/script-health-check", deadline_s=240) == "ok"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _get(url: str, deadline_s: float) -> str:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=deadline_s) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
