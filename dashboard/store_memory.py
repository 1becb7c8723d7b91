"""A small test set without a precomputed store, classified here into a ``MemoryStore`` (no streamlit here).

A ``MemoryStore`` is a ``store.Store`` whose rows live in this process's DuckDB instead of Parquet files, with
the store's columns computed the way ``gradcam precompute`` computes them (``store.compute``): the pages then run
the very same queries (gallery draw, sorting, the class summary, a cell's images) with a store or without, and
give the same answers. Only what a forward pass gives is filled in: embedding, map and CAM columns stay null.

Unreadable files are met here (the folder is not checked up front): they get no row and are listed in the
manifest's ``skipped``, as ``gradcam precompute`` lists them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from store import ROW_SCHEMA, Store
from store.compute import _classification_columns, decode_batch

BATCH = 128


@dataclass(frozen=True)
class Progress:
    """How far a classification is: ``done`` of ``total`` images, after ``seconds``."""

    done: int
    total: int
    seconds: float

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far (None before the first batch)."""
        if self.done <= 0:
            return None
        return self.seconds / self.done * (self.total - self.done)

    def text(self, what: str = "Classifying the test images") -> str:
        """ "Classifying the test images: 640 of 2,000, ~12 s left" (the ETA from the rate so far)."""
        eta = self.eta_seconds
        left = "" if eta is None else f", ~{max(eta, 0):.0f} s left"
        return f"{what}: {self.done:,} of {self.total:,}{left}"


ProgressFn = Callable[[Progress], None]


class MemoryStore(Store):
    """``Store``'s queries over an Arrow table held in memory (``ROW_SCHEMA`` columns, one row per readable image).

    Built like ``Store`` but without files: the table is copied into a table named ``store_rows`` of an in-memory
    DuckDB database, which every cursor of the connection sees (``Store`` opens one cursor per query).
    """

    def __init__(self, table: pa.Table, manifest: dict[str, Any]):  # no super().__init__(): there are no files
        self.path = Path("(computed in the dashboard)")
        self.manifest = {"status": "complete", **manifest}
        self.files = []
        self.num_rows = table.num_rows
        self._lock = threading.Lock()
        self._connection = duckdb.connect(":memory:")
        self._connection.register("computed_rows", table.select(ROW_SCHEMA.names).cast(ROW_SCHEMA))
        self._connection.execute("CREATE TABLE store_rows AS SELECT * FROM computed_rows")
        self._connection.unregister("computed_rows")


def rows_from_logits(indices: np.ndarray, item_ids: list[str], labels: np.ndarray, logits: np.ndarray) -> pa.Table:
    """The store's columns for images whose logits are known (prediction columns as ``gradcam precompute``
    computes them; embedding, map and CAM columns null)."""
    n = len(indices)
    given = {"index": pa.array(indices, pa.int64()), "path": pa.array(item_ids, pa.string()),
             "label": pa.array(labels, pa.int64()),
             **_classification_columns(np.asarray(logits, np.float32), np.asarray(logits).argmax(axis=1), labels)}
    return pa.table({f.name: given.get(f.name, pa.nulls(n, f.type)) for f in ROW_SCHEMA}, schema=ROW_SCHEMA)


def classify(engine, test_set, progress: ProgressFn | None = None,
             batch: int = BATCH) -> tuple[pa.Table, list[dict]]:
    """Rows of every readable image of ``test_set`` (one batched no-grad forward per ``batch`` images) and the
    ``skipped`` entries ({index, path, label, reason}) of the unreadable ones; ``progress`` after every batch."""
    total, start = len(test_set), time.perf_counter()
    parts, skipped = [], []
    for first in range(0, total, batch):
        decoded = decode_batch(test_set, np.arange(first, min(first + batch, total)))
        if decoded.images is not None and len(decoded.indices):
            logits = engine.predict(decoded.images.float(), batch_size=batch)
            parts.append(rows_from_logits(decoded.indices, decoded.item_ids, decoded.labels, logits))
        skipped += [{"index": i, "path": path, "label": label, "reason": why}
                    for i, path, label, why in decoded.skipped]
        if progress is not None:
            progress(Progress(min(first + batch, total), total, time.perf_counter() - start))
    table = pa.concat_tables(parts) if parts else ROW_SCHEMA.empty_table()
    return table, skipped


def shipped_rows(test_set, logits: np.ndarray) -> pa.Table:
    """Rows from the logits shipped with a bundled checkpoint (nothing is decoded or run)."""
    indices = np.arange(len(test_set), dtype=np.int64)
    return rows_from_logits(indices, [test_set.item_id(int(i)) for i in indices], np.asarray(test_set.labels),
                            logits)


def memory_store(workspace, table: pa.Table, skipped: list[dict], source: str) -> MemoryStore:
    """A MemoryStore of ``workspace``'s rows; ``source`` says where the predictions came from (for captions)."""
    return MemoryStore(table, {"model_id": workspace.model_id, "workspace": workspace.name,
                               "class_names": list(workspace.class_names), "images": len(workspace.test_set),
                               "skipped": skipped, "source": source, "map": {"status": "none"}})
