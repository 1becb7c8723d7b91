"""``gradcam report``: the self-contained HTML report of pinned findings, rebuilt from a findings.json (e.g. in CI).

Light at import: the report package, torch and the model load in ``run``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXAMPLES = """examples:
  gradcam report --workspace shapes --findings findings.json --out report.html
  gradcam report --workspace my_workspace.toml --findings pinned.json --out out/report.html --title "Review"

findings.json is a JSON list of findings: the dashboard's "Report" page saves one, a view.json downloaded from the
explorer is one finding, and a hand-written one needs only the view, e.g.
  [{"workspace": "shapes", "sample": {"index": 42}, "layer": "head.0", "method": "gradcam",
    "target": {"mode": "pred"}, "note": "looks at the shape"}]
Findings without pictures are recomputed with the model (see report/README.md)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--workspace", required=True,
                        help="bundled workspace name (e.g. shapes) or a workspace .toml file")
    parser.add_argument("--findings", required=True, type=Path,
                        help="findings.json: a JSON list of findings (saved by the dashboard or written by hand)")
    parser.add_argument("--out", required=True, type=Path,
                        help="the HTML file to write (its folder is created; written whole or not at all)")
    parser.add_argument("--title", default=None, help='report title (default: "Grad-CAM report: <workspace title>")')
    parser.add_argument("--device", default=None,
                        help="cuda, mps or cpu, for findings recomputed with the model (default: the best available)")


def _fail(message: str) -> int:
    print(f"gradcam report: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from models import WorkspaceError, load_workspace
    from report import FindingError, build_report, load_findings, write_atomically

    started = time.perf_counter()
    if args.out.is_dir():
        return _fail(f"--out {str(args.out)!r} is a folder; give the path of the HTML file to write, e.g. "
                     f"{str(args.out / 'report.html')!r}")
    try:
        findings = load_findings(args.findings)  # before the model loads: a typo fails in a blink
        workspace = load_workspace(args.workspace)
    except (FindingError, WorkspaceError) as error:
        return _fail(str(error))
    try:
        html = build_report(workspace, findings, args.title, workspace_key=args.workspace, device=args.device)
    except (FindingError, WorkspaceError) as error:  # a finding that does not fit the model
        return _fail(f"{args.findings}: {error}")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(args.out, html)
    except OSError as error:
        return _fail(f"could not write {str(args.out)!r}: {error.strerror or error}; check the folder exists and is "
                     "writable")
    recomputed = sum(not finding.complete for finding in findings)
    size_kb = len(html.encode("utf-8")) / 1024
    print(f"wrote {args.out}: {len(findings)} finding(s), {recomputed} recomputed with {workspace.model_id}, "
          f"{size_kb:,.0f} KB, in {time.perf_counter() - started:.1f} s")
    return 0
