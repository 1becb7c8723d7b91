"""``gradcam``: parse the subcommand, import only its module (torch and streamlit load lazily), run it."""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module under cli/, one-line help). A new subcommand is one module and one line here.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("cli.serve", "start the dashboard"),
    "explain": ("cli.explain", "explain one image file: original, heatmap and overlay PNGs plus result.json"),
    "precompute": ("cli.precompute", "classify and summarise a whole test set into a Parquet store"),
    "report": ("cli.report", "build a self-contained HTML report from pinned findings"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradcam",
        description="Grad-CAM dashboard for PyTorch image classifiers: serve it, explain one image, precompute a "
                    "dataset store, or build a report.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)  # light at import time: heavy imports live in run()
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue  # a subcommand not built into this checkout
        sub = commands.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return int(args._module.run(args) or 0)
