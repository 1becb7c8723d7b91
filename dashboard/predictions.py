"""The predicted class of every test image, cached once per model: the gallery's ✓/✗ marks, the analysis page's
confusion matrix and the one test accuracy every page shows (the sidebar included) come from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from analysis.forward import forward_image_set
from dashboard.workspaces import LoadedWorkspace


@dataclass
class TestPredictions:
    """The predicted class of every test image. Only the argmax is kept: ``st.cache_data`` hands every rerun a
    copy, and (N, num_classes) logits of a 50 000-image, 1000-class split would be 200 MB per rerun."""

    predicted: np.ndarray  # (N,) int64
    labels: np.ndarray  # (N,) int64

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.labels) else float("nan")


@st.cache_data(show_spinner=False, max_entries=8)
def test_predictions(model_id: str, workspace_key: str, _loaded: LoadedWorkspace) -> TestPredictions:
    """Predicted class of every test image: from the logits shipped with a bundled checkpoint, else batched
    no-grad forwards under the model's lock."""
    test_set = _loaded.workspace.test_set
    labels = np.asarray(test_set.labels, dtype=np.int64)
    shipped = getattr(_loaded.workspace, "test_logits", None)
    if shipped is not None:
        return TestPredictions(predicted=np.asarray(shipped).argmax(axis=1).astype(np.int64), labels=labels)
    return TestPredictions(predicted=forward_image_set(_loaded.engine, test_set).predicted, labels=labels)


def classify_test_split(loaded: LoadedWorkspace) -> TestPredictions:
    """``test_predictions`` with a spinner that says what is happening (the first time it runs the model)."""
    with st.spinner(f"Classifying the {len(loaded.workspace.test_set)} test images (once per model)…", show_time=True):
        return test_predictions(loaded.model_id, loaded.key, loaded)


def accuracy_help(loaded: LoadedWorkspace, predictions: TestPredictions) -> str:
    """What the test accuracy is, and the accuracy recorded with the model when it differs (a stale record)."""
    text = (f"Share of the {len(predictions.labels)} test images the model classifies correctly, computed here "
            "from its predictions")
    recorded = loaded.workspace.test_accuracy
    if recorded is not None and abs(recorded - predictions.accuracy) >= 5e-4:
        text += f"; the workspace records {recorded:.1%}, measured elsewhere or on another copy of the data"
    return text
