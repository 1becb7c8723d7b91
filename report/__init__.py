"""Findings and the self-contained HTML report (no streamlit; above ``gradcam_core`` and ``models``).

    from models import load_workspace
    from report import build_report, load_findings
    ws = load_workspace("shapes")
    html = build_report(ws, load_findings("findings.json"), title="Shapes: what the model looks at")

``report.findings`` (the records and ``findings.json``) is torch-free; ``report.compute`` checks findings against
the model and recomputes missing pictures; ``report.document`` writes the HTML. See report/README.md.
"""

from report.build import DEFAULT_TITLE, build_report, model_card
from report.compute import (
    DISPLAY_PIXELS,
    ModelSummary,
    check_finding,
    complete_findings,
    pictures_from_arrays,
    recompute_finding,
    summarise_model,
    top_classes,
    view_pictures,
)
from report.document import ModelCard, render_report
from report.findings import (
    ComparedModel,
    Finding,
    FindingError,
    Pictures,
    Sample,
    TopClass,
    findings_from_json,
    findings_to_json,
    load_findings,
    now_iso,
    pin_comparison,
    pin_view,
    save_findings,
    write_atomically,
)

__all__ = [
    "DEFAULT_TITLE",
    "DISPLAY_PIXELS",
    "ComparedModel",
    "Finding",
    "FindingError",
    "ModelCard",
    "ModelSummary",
    "Pictures",
    "Sample",
    "TopClass",
    "build_report",
    "check_finding",
    "complete_findings",
    "findings_from_json",
    "findings_to_json",
    "load_findings",
    "model_card",
    "now_iso",
    "pictures_from_arrays",
    "pin_comparison",
    "pin_view",
    "recompute_finding",
    "render_report",
    "save_findings",
    "summarise_model",
    "top_classes",
    "view_pictures",
    "write_atomically",
]
