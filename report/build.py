"""``build_report``: findings of one workspace -> one self-contained HTML file (a str)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from gradcam_core import CamEngine
from report.compute import (
    DISPLAY_PIXELS,
    ModelSummary,
    class_free_methods,
    complete_findings,
    method_titles,
    summarise_model,
)
from report.document import ModelCard, render_report
from report.findings import Finding

DEFAULT_TITLE = "Grad-CAM report"


def model_card(workspace: Any, summary: ModelSummary) -> ModelCard:
    notes = dict(workspace.notes or {})
    source = workspace.source + (f" · {notes['model']}" if notes.get("model") else "")
    return ModelCard(
        workspace=workspace.name, title=workspace.title, description=workspace.description,
        model_id=workspace.model_id, source=source, class_names=tuple(workspace.class_names),
        test_images=len(workspace.test_set), recorded_accuracy=summary.recorded_accuracy,
        confusion=summary.confusion, predictions_from=summary.predictions_from,
        checkpoint_date=str(notes.get("date", "")), warning=str(workspace.warning or notes.get("untrained") or ""),
    )


def build_report(workspace: Any, findings: Sequence[Finding], title: str | None = None, *,
                 workspace_key: str | None = None, predicted: np.ndarray | None = None,
                 engine: CamEngine | None = None, load_workspace: Callable[[str], Any] | None = None,
                 device: str | None = None, created: str | None = None,
                 display_pixels: int = DISPLAY_PIXELS) -> str:
    """The HTML report of ``findings`` on ``workspace`` (a ``models.Workspace``).

    Every finding is checked against the workspace's model (``report.FindingError`` names the finding and the
    field); those without pictures or top-5 are recomputed with the engine (``engine``, or a new ``CamEngine`` on
    ``device``). ``workspace_key`` is the name or path the workspace was opened with (a finding may name it so).
    ``predicted``: one predicted class per test image when the caller has them (the dashboard's cached
    predictions), else the shipped test logits or one pass over the test set give the confusion matrix.
    ``title`` defaults to "Grad-CAM report: <workspace title>"; ``created``: the date shown (default: now).
    """
    completed = complete_findings(findings, workspace, workspace_key=workspace_key, engine=engine,
                                  load_workspace=load_workspace, device=device, display_pixels=display_pixels)
    summary = summarise_model(workspace, predicted=predicted, engine=engine, device=device)
    created = created or datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
    title = title or f"{DEFAULT_TITLE}: {workspace.title}"
    return render_report(title, model_card(workspace, summary), completed, created,
                         method_titles(), class_free_methods())
