"""The stage after the per-image pass: fit the 2-D map on the store's embeddings, write map_x/map_y into every shard.

Memory is bounded by the fitted subset (at most ``FIT_MAX`` embeddings) plus one shard: the other rows are read,
placed and rewritten shard by shard. Each shard is rewritten atomically; a run killed here leaves every shard
whole (some with the new map, some with none) and the manifest says the map is not done, so a rerun redoes it
(the map is deterministic for a seed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from store.embedding_map import FIT_MAX, fit_map, fit_subset
from store.schema import ROW_SCHEMA, shard_files, shard_number
from store.shards import shard_skipped, write_shard


def embedding_matrix(table: pa.Table) -> np.ndarray:
    """(rows, D) float32 from a table's ``embedding`` list column."""
    column = table["embedding"]
    if table.num_rows == 0:
        return np.zeros((0, 0), np.float32)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(table.num_rows, -1)


def _fit_rows(files: list[Path], fit_max: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the rows the map is fitted on, ascending; their embeddings)."""
    dataset = ds.dataset(files, format="parquet")
    indices = dataset.to_table(columns=["index"])["index"].to_numpy()
    order = np.argsort(indices, kind="stable")
    chosen = np.sort(indices[order[fit_subset(len(indices), fit_max, seed)]])
    table = dataset.to_table(columns=["index", "embedding"],
                             filter=None if len(chosen) == len(indices) else ds.field("index").isin(chosen))
    table = table.sort_by("index")
    return table["index"].to_numpy(), embedding_matrix(table)


def build_map(store: Path, seed: int = 0, fit_max: int = FIT_MAX,
              progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Fit, place and write the map; returns what the manifest records about it."""
    files = shard_files(store)
    start = time.perf_counter()
    fit_indices, fit_features = _fit_rows(files, fit_max, seed)
    if len(fit_indices) == 0:
        return {"status": "done", "method": "none", "fit_points": 0, "placed_points": 0, "seconds": 0.0}
    if progress:
        progress(0, len(files), f"fitting the 2-D map (openTSNE) on {len(fit_indices):,} embeddings")
    fitted = fit_map(fit_features, seed=seed)
    del fit_features
    fit_seconds = time.perf_counter() - start
    placed = 0
    for done, path in enumerate(files, start=1):
        table = pq.read_table(path)
        indices = table["index"].to_numpy()
        position = np.clip(np.searchsorted(fit_indices, indices), 0, len(fit_indices) - 1)
        in_fit = fit_indices[position] == indices
        xy = np.zeros((len(indices), 2), np.float32)
        xy[in_fit] = fitted.xy[position[in_fit]]
        if not in_fit.all():
            xy[~in_fit] = fitted.place(embedding_matrix(table.filter(pa.array(~in_fit))))
            placed += int((~in_fit).sum())
        table = table.set_column(ROW_SCHEMA.get_field_index("map_x"), "map_x", pa.array(xy[:, 0], pa.float32()))
        table = table.set_column(ROW_SCHEMA.get_field_index("map_y"), "map_y", pa.array(xy[:, 1], pa.float32()))
        write_shard(store, shard_number(path), table, shard_skipped(path))
        if progress:
            progress(done, len(files), "writing the map into the shards")
    return {"status": "done", **fitted.params, "placed_points": placed, "fit_seconds": round(fit_seconds, 3),
            "seconds": round(time.perf_counter() - start, 3)}
