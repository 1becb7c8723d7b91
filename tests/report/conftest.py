"""The bundled shapes workspaces, opened once, and three findings on them completed once (CPU, about a second)."""

from __future__ import annotations

import pytest

from gradcam_core import CamEngine
from models import load_workspace
from report import ComparedModel, Finding, Sample, complete_findings

NASTY_NOTE = "Looks at the marker </div><script>alert('note')</script><img src=x onerror=alert(2)> & \"quotes\""


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread_per_module):
    """Single images through a small net: on a busy 2-core machine two intra-op threads made each call slower."""


@pytest.fixture(scope="session")
def shapes():
    return load_workspace("shapes")


@pytest.fixture(scope="session")
def shortcut():
    return load_workspace("shapes-shortcut")


@pytest.fixture(scope="session")
def shapes_engine(shapes):
    return CamEngine(shapes.model, device="cpu")


def hand_written(shapes_name: str = "shapes") -> list[Finding]:
    """Three views as a person or CI would write them: no pictures, no top-5."""
    return [
        Finding(workspace=shapes_name, sample=Sample(index=42), layer="head.0", note=NASTY_NOTE),
        Finding(workspace=shapes_name, sample=Sample(index=7), layer="layer2.1.conv2", method="gradcampp",
                target_mode="true", opacity=0.7, colormap="viridis"),
        Finding(workspace=shapes_name, kind="compare", sample=Sample(index=5), layer="head.0",
                compare=ComparedModel(workspace="shapes-shortcut", layer="head.0")),
    ]


@pytest.fixture(scope="session")
def pinned(shapes, shortcut, shapes_engine) -> list[Finding]:
    """``hand_written()`` completed with pictures and top-5 (as if pinned in the dashboard)."""
    opened = {"shapes-shortcut": shortcut}
    return complete_findings(hand_written(), shapes, engine=shapes_engine, load_workspace=opened.__getitem__)
