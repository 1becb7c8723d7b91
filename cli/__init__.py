"""The ``gradcam`` command: one entry point above ``models`` (``gradcam_core`` knows nothing of it).

    gradcam serve [--workspace FILE|NAME] [--port N]
    gradcam explain IMAGE --workspace FILE|NAME [--layer L] [--method M] [--target T] --out DIR
    gradcam precompute --workspace FILE|NAME --out STORE [--engine local|ray]
    gradcam report --workspace W --findings findings.json --out report.html

Each subcommand is one module of this package exposing ``add_arguments(parser)`` and ``run(args) -> int``;
``cli.main.SUBCOMMANDS`` lists them. ``python -m cli`` is the same command.
"""
