"""``gradcam serve``: start the dashboard (``streamlit run`` on the app that ships with this package).

    gradcam serve                                        # the bundled default workspace
    gradcam serve --workspace my.toml --port 8502
    gradcam serve --model nets.py:XRayClassifier --checkpoint xray.pt --data images/
    gradcam serve --timm convnext_atto --checkpoint c.pt --data images/   (or --hf FOLDER, --arch resnet50)

Works from any folder: the app is found beside this package (a source checkout's app.py, or the copy a wheel
installs as ``gradcam_app/``), and its ``.streamlit/config.toml`` is passed to Streamlit as flags, because
Streamlit itself only reads that file from the current folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path

from cli.adhoc import add_model_arguments, workspace_from_arguments

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", help="bundled workspace name (default: shapes) or a workspace .toml file")
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    parser.add_argument("--address", default=None, help="address to listen on (default: Streamlit's, all)")
    add_model_arguments(parser)
    parser.add_argument("--print-command", action="store_true", help="print the streamlit command and exit")


def app_dir() -> Path:
    """The folder holding app.py, pages/ and .streamlit/: the source checkout, else the wheel's copy."""
    for folder in (PACKAGE_ROOT, PACKAGE_ROOT / "gradcam_app"):
        if (folder / "app.py").is_file() and (folder / "pages").is_dir():
            return folder
    raise SystemExit(f"error: the dashboard app (app.py and pages/) was not found beside {PACKAGE_ROOT}; "
                     "reinstall the package")


def config_flags(folder: Path) -> list[str]:
    """``.streamlit/config.toml`` of the app as ``--section.key value`` flags."""
    path = folder / ".streamlit" / "config.toml"
    if not path.is_file():
        return []
    flags = []
    for section, values in tomllib.loads(path.read_text(encoding="utf-8")).items():
        for key, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags += [f"--{section}.{key}", text]
    return flags


def streamlit_command(args: argparse.Namespace, workspace: str) -> list[str]:
    folder = app_dir()
    command = [sys.executable, "-m", "streamlit", "run", str(folder / "app.py"), *config_flags(folder),
               "--server.port", str(args.port)]
    if args.address:
        command += ["--server.address", args.address]
    return [*command, "--", "--workspace", workspace]


def run(args: argparse.Namespace) -> int:
    workspace = workspace_from_arguments(args)
    command = streamlit_command(args, workspace)
    if args.print_command:
        print(" ".join(command))
        return 0
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130
