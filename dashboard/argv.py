"""Command-line arguments given after ``--``: ``streamlit run app.py -- --workspace path/to/workspace.toml``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def workspace_from_argv(argv: Sequence[str] | None = None) -> str | None:
    """The ``--workspace`` value, or None.

    Unknown arguments are ignored (and abbreviations refused) so that a test runner's own argv, which is what
    ``sys.argv`` holds under AppTest, is never mistaken for ours.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--workspace", default=None)
    args, _unknown = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    value = (args.workspace or "").strip()
    return value or None
