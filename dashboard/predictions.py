"""Where every page's predictions come from: the workspace's precomputed store, or rows classified here.

``pages_store(loaded)`` is what the gallery, the embedding page and the analysis page query:

- the workspace's store when it is usable (complete, same model; ``store_source``): nothing is decoded or
  classified at start-up, and every page reads only the rows it shows;
- else, for a test set of up to ``store_source.NO_STORE_LIMIT`` images (5,000), a ``MemoryStore`` computed once
  per model and shared by every session: from the logits shipped with a bundled checkpoint, or batched forwards
  with a progress bar ("n of N, ~m s left"); unreadable files are skipped and listed;
- else None: the set is too large to classify in the page, and the page shows the ``gradcam precompute`` command.

The one test accuracy every page shows (the sidebar included) comes from ``summary(...)``: one GROUP BY.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

import numpy as np
import streamlit as st

from dashboard import store_source
from dashboard.store_memory import MemoryStore, Progress, classify, memory_store, shipped_rows
from dashboard.store_source import StoreStatus, check_store, manifest_stamp, precompute_command
from dashboard.workspaces import LoadedWorkspace
from store import ClassSummary, Store


# ------------------------------------------------------------------------------------------ the store to query
@st.cache_resource(show_spinner=False, max_entries=8)
def _status_for(model_id: str, workspace_key: str, stamp: tuple[int, int] | None,
                _loaded: LoadedWorkspace) -> StoreStatus:
    """The store status, checked again only when the store's manifest changed since the workspace was loaded
    (a ``gradcam precompute`` finished or was restarted while the dashboard runs)."""
    if stamp == _loaded.store_status.stamp:
        return _loaded.store_status
    return check_store(_loaded.workspace, test_set=_loaded.workspace.test_set)


def store_status(loaded: LoadedWorkspace) -> StoreStatus:
    """The workspace's own precomputed store: usable, missing, or with a problem to warn about."""
    path = loaded.workspace.store
    if path is None:
        return loaded.store_status
    return _status_for(loaded.model_id, loaded.key, manifest_stamp(path), loaded)


def too_big(loaded: LoadedWorkspace) -> bool:
    """No usable store and more test images than the page classifies (it shows the precompute command)."""
    return not store_status(loaded).usable and len(loaded.workspace.test_set) > store_source.NO_STORE_LIMIT


@st.cache_resource(show_spinner=False, max_entries=8)
def _computed_slot(model_id: str, workspace_key: str) -> dict:
    """Where the rows classified here are kept, shared by every session (filled once, under its lock)."""
    return {"lock": threading.Lock()}


def _compute(loaded: LoadedWorkspace, show_progress: bool) -> MemoryStore:
    workspace = loaded.workspace
    test_set = workspace.test_set
    shipped = getattr(workspace, "test_logits", None)
    if shipped is not None and len(shipped) == len(test_set):
        store = memory_store(workspace, shipped_rows(test_set, shipped), [], "the logits shipped with the model")
    else:
        bar = st.progress(0.0, text=Progress(0, len(test_set), 0.0).text()) if show_progress else None

        def report(progress: Progress) -> None:
            if bar is not None:
                bar.progress(progress.done / max(progress.total, 1), text=progress.text())

        table, skipped = classify(loaded.engine, test_set, report)
        if bar is not None:
            bar.empty()
        store = memory_store(workspace, table, skipped, "classified here")
    store.manifest["created"] = uuid.uuid4().hex
    return store


def computed_store(loaded: LoadedWorkspace, show_progress: bool = True) -> MemoryStore:
    """The test set classified here, once per model (whatever its size: callers check ``too_big`` first)."""
    slot = _computed_slot(loaded.model_id, loaded.key)
    if "store" not in slot:
        with slot["lock"]:
            if "store" not in slot:
                slot["store"] = _compute(loaded, show_progress)
    return slot["store"]


def pages_store(loaded: LoadedWorkspace, compute: bool = True) -> Store | None:
    """The store the pages query (see the module docstring); None when the set is too large without a store,
    or when ``compute`` is False and the rows would have to be computed first."""
    status = store_status(loaded)
    if status.usable:
        return status.store
    if too_big(loaded):
        return None
    slot = _computed_slot(loaded.model_id, loaded.key)
    if not compute:
        return slot.get("store")
    return computed_store(loaded)


def store_token(store: Store) -> str:
    """Names a store's content for cache keys: its path and when it was written (a computed one: its uuid)."""
    manifest = store.manifest
    return f"{store.path}|{manifest.get('updated') or manifest.get('created')}|{store.num_rows}"


def source_label(store: Store) -> str:
    """Where the pages' predictions come from, for captions."""
    if isinstance(store, MemoryStore):
        return str(store.manifest.get("source", "classified here"))
    return f"the precomputed store `{store.path.name}`"


# ------------------------------------------------------------------------------------------ aggregates
@st.cache_data(show_spinner=False, max_entries=16)
def _summary(model_id: str, token: str, _store: Store) -> ClassSummary:
    return _store.class_summary()


def summary(loaded: LoadedWorkspace, store: Store) -> ClassSummary:
    """Confusion matrix and per-class counts from one GROUP BY (cached per store content)."""
    return _summary(loaded.model_id, store_token(store), store)


def unreadable_files(loaded: LoadedWorkspace, store: Store | None) -> list[tuple[str, str]]:
    """(path, why) of every unreadable test file known so far: met by this process (``test_set.skipped``) and
    listed by the store (skipped when it was computed), each once."""
    found: dict[str, str] = {}
    for entry in (store.skipped if store is not None else []):
        found.setdefault(str(entry.get("path")), str(entry.get("reason", "")))
    for path, why in getattr(loaded.workspace.test_set, "skipped", None) or []:
        found.setdefault(str(path), str(why))
    return list(found.items())


# ------------------------------------------------------------------------------------------ whole arrays
@dataclass
class TestPredictions:
    """The predicted class of every test image (-1: unreadable, not classified), for callers that want arrays.
    The pages query ``pages_store`` instead."""

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
    """Predicted class of every test image as arrays, from the store (two columns) or the rows classified here."""
    labels = np.asarray(_loaded.workspace.test_set.labels, dtype=np.int64)
    status = store_status(_loaded)
    store = status.store if status.usable else computed_store(_loaded, show_progress=False)
    table = store.query('SELECT "index", pred FROM store_rows')
    predicted = np.full(len(labels), -1, dtype=np.int64)
    predicted[table["index"].to_numpy()] = table["pred"].to_numpy()
    return TestPredictions(predicted=predicted, labels=labels)


def classify_test_split(loaded: LoadedWorkspace) -> TestPredictions:
    """``test_predictions`` with a progress bar the first time the set is classified here (kept for callers that
    want whole arrays; the pages query ``pages_store``, which never classifies a set over the no-store limit)."""
    if not store_status(loaded).usable:
        computed_store(loaded)  # shows "n of N, ~m s left" while it classifies
    return test_predictions(loaded.model_id, loaded.key, loaded)


# ------------------------------------------------------------------------------------------ the one accuracy
def _accuracy_help(loaded: LoadedWorkspace, accuracy: float | None, images: int) -> str:
    text = f"Share of the {images:,} labelled test images the model classifies correctly, computed from its predictions"
    recorded = loaded.workspace.test_accuracy
    if recorded is not None and accuracy is not None and abs(recorded - accuracy) >= 5e-4:
        text += f"; the workspace records {recorded:.1%}, measured elsewhere or on another copy of the data"
    return text


def accuracy_help(loaded: LoadedWorkspace, predictions: TestPredictions | ClassSummary) -> str:
    """What the test accuracy is, and the accuracy recorded with the model when it differs (a stale record)."""
    if isinstance(predictions, ClassSummary):
        return _accuracy_help(loaded, predictions.accuracy, int(predictions.confusion.sum()))
    return _accuracy_help(loaded, predictions.accuracy, len(predictions.labels))


def sidebar_accuracy(loaded: LoadedWorkspace) -> tuple[str, str]:
    """(value, help) of the sidebar's "Test accuracy": the number the pages show, or why there is none."""
    store = pages_store(loaded)
    if store is None:
        return "n/a", (f"{len(loaded.workspace.test_set):,} test images and no precomputed store: run "
                       f"`{precompute_command(loaded.workspace)}`")
    found = summary(loaded, store)
    if found.accuracy is None:
        return "n/a", "No test image has a label"
    return f"{found.accuracy:.1%}", accuracy_help(loaded, found)
