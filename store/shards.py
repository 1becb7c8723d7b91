"""Shards: fixed index ranges of the test set, each written once and atomically; what makes resuming work.

Shard ``k`` holds the rows of test-set indices ``[k * shard_size, (k + 1) * shard_size)`` (fewer at the end),
and its Parquet metadata lists the items of that range that could not be read. A shard file exists only when
all of its range was processed, so a rerun skips the shards it finds and redoes the rest; the manifest's list
of skipped files is rebuilt from the shards, so it survives a run killed before the manifest was updated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from store.compute import SKIP_REASON
from store.schema import (
    ROW_SCHEMA,
    SKIPPED_METADATA_KEY,
    atomic_write,
    shard_files,
    shard_name,
    shard_number,
)

#: Rows per Parquet row group: small enough that a lookup by index reads little, large enough to scan fast.
ROW_GROUP_SIZE = 2048


@dataclass(frozen=True)
class ShardPlan:
    """``count`` test-set items split into shards of ``shard_size``, processed in batches of ``batch_size``."""

    count: int
    shard_size: int
    batch_size: int

    @property
    def shards(self) -> int:
        return -(-self.count // self.shard_size)

    def index_range(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.count))

    def batches(self, shards: list[int]) -> Iterator[np.ndarray]:
        """Index batches of the given shards, in order; a batch never spans two shards."""
        for shard in shards:
            span = self.index_range(shard)
            for start in range(span.start, span.stop, self.batch_size):
                yield np.arange(start, min(start + self.batch_size, span.stop), dtype=np.int64)


def done_shards(store: Path) -> set[int]:
    return {shard_number(p) for p in shard_files(store)}


def remove_temporary_files(store: Path) -> list[Path]:
    """Delete what a killed run left half-written (``_*.tmp``); returns what was removed."""
    stale = sorted(store.glob("_*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_shard(store: Path, shard: int, rows: pa.Table, skipped: list[dict]) -> Path:
    """Write a shard's rows (sorted by index) and its skipped items, atomically."""
    rows = rows.sort_by("index").cast(ROW_SCHEMA)
    metadata = {SKIPPED_METADATA_KEY: json.dumps(skipped).encode("utf-8")}
    rows = rows.replace_schema_metadata(metadata)
    path = store / shard_name(shard)
    atomic_write(path, lambda tmp: pq.write_table(rows, tmp, row_group_size=ROW_GROUP_SIZE, compression="zstd",
                                                  write_statistics=True))
    return path


def shard_skipped(path: Path) -> list[dict]:
    """The skipped items recorded in a shard's metadata: [{"index", "path", "label", "reason"}, ...]."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(SKIPPED_METADATA_KEY, b"[]").decode("utf-8"))


def split_batch(table: pa.Table) -> tuple[pa.Table, list[dict]]:
    """(the rows, the skipped items) of a batch table from ``BatchExplainer``."""
    is_skipped = pc.is_valid(table[SKIP_REASON])
    rows = table.filter(pc.invert(is_skipped)).drop_columns([SKIP_REASON])
    bad = table.filter(is_skipped).select(["index", "path", "label", SKIP_REASON]).to_pylist()
    return rows, [{"index": b["index"], "path": b["path"], "label": b["label"], "reason": b[SKIP_REASON]}
                  for b in bad]


class ShardSink:
    """Collects batch tables (in any order) and writes each shard as soon as all of its range has arrived."""

    def __init__(self, store: Path, plan: ShardPlan, on_shard: Callable[[int, int, int], None] | None = None):
        self.store, self.plan, self.on_shard = store, plan, on_shard
        self._rows: dict[int, list[pa.Table]] = {}
        self._skipped: dict[int, list[dict]] = {}
        self._seen: dict[int, int] = {}
        self.written: list[int] = []

    def add(self, batch: pa.Table) -> int:
        """Take one batch's table; returns how many items (rows + skipped) it held."""
        if batch.num_rows == 0:
            return 0
        shard_of = pc.divide(batch["index"], pa.scalar(self.plan.shard_size, pa.int64())).to_numpy()
        for shard in np.unique(shard_of):
            part = batch.filter(pa.array(shard_of == shard))
            rows, skipped = split_batch(part)
            shard = int(shard)
            self._rows.setdefault(shard, []).append(rows)
            self._skipped.setdefault(shard, []).extend(skipped)
            self._seen[shard] = self._seen.get(shard, 0) + part.num_rows
            if self._seen[shard] == len(self.plan.index_range(shard)):
                self._flush(shard)
        return batch.num_rows

    def _flush(self, shard: int) -> None:
        rows = pa.concat_tables(self._rows.pop(shard))
        skipped = sorted(self._skipped.pop(shard), key=lambda s: s["index"])
        del self._seen[shard]
        write_shard(self.store, shard, rows, skipped)
        self.written.append(shard)
        if self.on_shard is not None:
            self.on_shard(shard, rows.num_rows, len(skipped))

    @property
    def pending(self) -> list[int]:
        """Shards with some rows received but not all (nonempty only after an interrupted run)."""
        return sorted(self._seen)
