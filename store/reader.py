"""Read a store the way the pages need it: queries pushed down to DuckDB, only the rows and columns a page shows.

    store = open_store("shapes.store")
    store.page(RowFilter(outcome="misclassified"), sort="loss", limit=20)   # gallery page (pyarrow.Table)
    store.sample(seed=0)                                                   # the default 20-image draw (indices)
    store.map_points()                                                     # embedding page: index, map_x, map_y...
    store.rows(selected_indices)                                           # a lasso selection as gallery rows
    store.class_summary()                                                  # confusion matrix + per-class counts

Nothing here loads a whole column of every row into Python except ``listing()`` (which a FolderImageSet needs)
and ``map_points()`` (capped at 100,000 points). Every call takes its own DuckDB cursor, so one ``Store`` can be
shared by every Streamlit session (e.g. from ``st.cache_resource``). A store is read as it was when opened:
open it again to see shards written later.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from store import draw as gallery_draw
from store.schema import COLUMN_NAMES, THUMB_SIZE, StoreError, read_manifest, shard_files

#: What a gallery tile needs (no embedding, no thumbnail).
GALLERY_COLUMNS = ("index", "path", "label", "pred", "prob", "loss", "margin", "entropy", "correct", "topk_index",
                   "topk_prob", "cam_peak_y", "cam_peak_x")
MAP_COLUMNS = ("index", "map_x", "map_y", "label", "pred", "prob")
SORT_KEYS = ("index", "loss", "prob", "margin", "entropy", "label", "pred")
OUTCOMES = ("all", "correct", "misclassified")
MAX_MAP_POINTS = 100_000


@dataclass(frozen=True)
class RowFilter:
    """Which rows a page shows. ``outcome``: "correct" / "misclassified" count only labelled rows. ``label`` /
    ``pred``: one class index or several. Bounds are inclusive; None = no bound."""

    outcome: str = "all"
    label: int | Sequence[int] | None = None
    pred: int | Sequence[int] | None = None
    min_prob: float | None = None
    max_prob: float | None = None
    min_loss: float | None = None
    max_loss: float | None = None
    min_margin: float | None = None
    max_margin: float | None = None

    def sql(self) -> tuple[str, list[Any]]:
        """(a WHERE condition with ? placeholders, its parameters)."""
        if self.outcome not in OUTCOMES:
            raise StoreError(f"unknown outcome {self.outcome!r}; use one of {', '.join(OUTCOMES)}")
        parts = {"all": [], "correct": ["correct"], "misclassified": ["NOT correct"]}[self.outcome]
        params: list[Any] = []
        for column in ("label", "pred"):
            value = getattr(self, column)
            if value is not None:
                classes = [int(value)] if np.ndim(value) == 0 else [int(v) for v in value]
                parts.append(f"{column} IN ({', '.join('?' * len(classes))})" if classes else "FALSE")
                params.extend(classes)
        for column in ("prob", "loss", "margin"):
            for bound, op in (("min", ">="), ("max", "<=")):
                value = getattr(self, f"{bound}_{column}")
                if value is not None:
                    parts.append(f"{column} {op} CAST(? AS FLOAT)")  # as stored: 0.2 keeps a row of 0.2
                    params.append(float(value))
        return (" AND ".join(f"({p})" for p in parts) or "TRUE"), params


@dataclass(frozen=True)
class ClassSummary:
    """From one GROUP BY (label, pred): ``confusion[true, predicted]`` counts over labelled rows, and per class
    ``support`` (true), ``predicted``, ``correct``, ``mean_loss`` (NaN without rows); ``unlabelled[pred]``."""

    class_names: list[str]
    confusion: np.ndarray
    unlabelled: np.ndarray
    mean_loss: np.ndarray
    mean_prob: np.ndarray

    @property
    def support(self) -> np.ndarray:
        return self.confusion.sum(axis=1)

    @property
    def predicted(self) -> np.ndarray:
        return self.confusion.sum(axis=0)

    @property
    def correct(self) -> np.ndarray:
        return np.diag(self.confusion).copy()

    @property
    def accuracy(self) -> float | None:
        total = int(self.confusion.sum())
        return float(np.trace(self.confusion) / total) if total else None


def _arrow(cursor: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> pa.Table:
    """The query's result as Arrow (DuckDB >= 1.4 relations convert without the extra copy of a DB-API result)."""
    relation = cursor.sql(sql, params=params)
    convert = getattr(relation, "to_arrow_table", None) or relation.arrow
    return convert()


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _columns(columns: Sequence[str]) -> str:
    unknown = [c for c in columns if c not in COLUMN_NAMES]
    if unknown:
        raise StoreError(f"unknown store column(s) {unknown}; the store has {', '.join(COLUMN_NAMES)}")
    return ", ".join(f'"{c}"' for c in columns)


class Store:
    """A precomputed store, opened for queries (``open_store``). Thread-safe: one DuckDB cursor per call."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest = read_manifest(self.path) if self.path.is_dir() else None
        if manifest is None:
            raise StoreError(f"{str(self.path)!r} is not a gradcam store (no _manifest.json); create one with "
                             "`gradcam precompute --workspace W --out STORE`")
        self.manifest: dict[str, Any] = manifest
        self.files = shard_files(self.path)
        if not self.files:
            raise StoreError(f"the store {str(self.path)!r} holds no rows yet (status {manifest.get('status')!r}); "
                             "run `gradcam precompute` with the same options to fill it")
        self.num_rows = sum(pq.read_metadata(f).num_rows for f in self.files)
        self._lock = threading.Lock()
        self._connection = duckdb.connect(":memory:")
        self._connection.execute("SET parquet_metadata_cache = true")
        source = f"read_parquet([{', '.join(_quote(f) for f in self.files)}])"
        self._connection.execute(f"CREATE VIEW store_rows AS SELECT * FROM {source}")

    def close(self) -> None:
        """Release the DuckDB connection (the Store cannot be queried afterwards)."""
        self._connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, rows={self.num_rows}, model={self.model_id!r}, status={self.status!r})"

    # ------------------------------------------------------------------------------------- what it is
    @property
    def model_id(self) -> str:
        return self.manifest.get("model_id", "")

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest.get("class_names", []))

    @property
    def status(self) -> str:
        """"complete", "running" (being written, or killed: rerun the command) or "interrupted"."""
        return self.manifest.get("status", "")

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def has_map(self) -> bool:
        return self.manifest.get("map", {}).get("status") == "done"

    @property
    def skipped(self) -> list[dict]:
        """[{"index", "path", "label", "reason"}] of the test-set items that could not be read."""
        return list(self.manifest.get("skipped", []))

    # ------------------------------------------------------------------------------------- plumbing
    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            cursor = self._connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run ``sql`` against the view ``store_rows`` (one row per image); returns an Arrow table."""
        with self._cursor() as cursor:
            return _arrow(cursor, sql, list(params))

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._cursor() as cursor:
            return cursor.execute(sql, list(params)).fetchone()[0]

    # ------------------------------------------------------------------------------------- gallery
    def count(self, where: RowFilter | None = None) -> int:
        condition, params = (where or RowFilter()).sql()
        return int(self._scalar(f"SELECT count(*) FROM store_rows WHERE {condition}", params))

    def page(self, where: RowFilter | None = None, *, sort: str = "index", descending: bool = False,
             offset: int = 0, limit: int = 20, columns: Sequence[str] = GALLERY_COLUMNS) -> pa.Table:
        """One page of rows matching ``where``, sorted by ``sort`` (ties by index; nulls last)."""
        if sort not in SORT_KEYS:
            raise StoreError(f"cannot sort by {sort!r}; use one of {', '.join(SORT_KEYS)}")
        if limit < 0 or offset < 0:
            raise StoreError(f"offset and limit must be 0 or more, got offset={offset}, limit={limit}")
        condition, params = (where or RowFilter()).sql()
        order = f'"{sort}" {"DESC" if descending else "ASC"} NULLS LAST, "index" ASC'
        return self.query(f"SELECT {_columns(columns)} FROM store_rows WHERE {condition} ORDER BY {order} "
                          "LIMIT ? OFFSET ?", [*params, int(limit), int(offset)])

    def worst_mistakes(self, n: int = 20, columns: Sequence[str] = GALLERY_COLUMNS) -> pa.Table:
        """The ``n`` misclassified rows with the highest loss."""
        return self.page(RowFilter(outcome="misclassified"), sort="loss", descending=True, limit=n, columns=columns)

    def rows(self, indices: Sequence[int], columns: Sequence[str] = GALLERY_COLUMNS) -> pa.Table:
        """The rows of ``indices`` in the order given (indices without a row — skipped files — are left out)."""
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        if "index" not in columns:
            columns = ("index", *columns)
        found = self.query(f"SELECT {_columns(columns)} FROM store_rows WHERE \"index\" IN "
                           "(SELECT unnest(?::BIGINT[]))", [wanted.tolist()])
        position = {int(v): k for k, v in enumerate(found["index"].to_numpy())}
        return found.take(pa.array([position[int(i)] for i in wanted if int(i) in position], pa.int64()))

    def sample(self, seed: int, filter_name: str = "all", size: int = gallery_draw.GALLERY_SIZE,
               min_misclassified: int = gallery_draw.MIN_MISCLASSIFIED) -> np.ndarray:
        """The gallery's seeded draw (``dashboard/sampling.py`` semantics): up to ``size`` indices, at least
        ``min_misclassified`` misclassified ones when the store has them ("all")."""
        return gallery_draw.draw(self._count_pool, self._nth_in_pool, self._is_wrong, seed, filter_name, size,
                                 min_misclassified)

    def _count_pool(self, condition: str, exclude: int | None) -> int:
        extra, params = ("", []) if exclude is None else (' AND "index" <> ?', [exclude])
        return int(self._scalar(f"SELECT count(*) FROM store_rows WHERE ({condition}){extra}", params))

    def _nth_in_pool(self, condition: str, exclude: int | None, positions: Sequence[int]) -> np.ndarray:
        positions = [int(p) for p in positions]
        if not positions:
            return np.zeros(0, np.int64)
        extra, params = ("", []) if exclude is None else (' AND "index" <> ?', [exclude])
        found = self.query(
            f'SELECT "index", pos FROM (SELECT "index", row_number() OVER (ORDER BY "index") - 1 AS pos '
            f"FROM store_rows WHERE ({condition}){extra}) WHERE pos IN (SELECT unnest(?::BIGINT[]))",
            [*params, positions])
        by_position = dict(zip(found["pos"].to_pylist(), found["index"].to_pylist(), strict=True))
        return np.asarray([by_position[p] for p in positions], dtype=np.int64)

    def _is_wrong(self, index: int) -> bool:
        return bool(self._scalar('SELECT label <> pred FROM store_rows WHERE "index" = ?', [index]))

    # ------------------------------------------------------------------------------------- embedding page
    def map_points(self, where: RowFilter | None = None, max_points: int = MAX_MAP_POINTS, seed: int = 0,
                   columns: Sequence[str] = MAP_COLUMNS) -> pa.Table:
        """Map coordinates (no embedding vectors) of up to ``max_points`` rows, by index; above that a seeded,
        deterministic subset (by a hash of the index). Coordinates are null before the map stage ran."""
        condition, params = (where or RowFilter()).sql()
        return self.query(
            f"SELECT {_columns(columns)} FROM (SELECT * FROM store_rows WHERE {condition} "
            'ORDER BY hash("index" + ?) LIMIT ?) ORDER BY "index"', [*params, int(seed), int(max_points)])

    def embeddings(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(indices found, (k, D) float32 embeddings) of ``indices``, in the order given."""
        table = self.rows(indices, columns=("index", "embedding"))
        if table.num_rows == 0:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        values = table["embedding"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return table["index"].to_numpy(), values.astype(np.float32).reshape(table.num_rows, -1)

    def thumbnails(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(indices found, (k, 16, 16) uint8 CAM thumbnails: the default layer's Grad-CAM for pred)."""
        table = self.rows(indices, columns=("index", "cam_thumb"))
        thumbs = np.frombuffer(b"".join(table["cam_thumb"].to_pylist()), dtype=np.uint8)
        return table["index"].to_numpy(), thumbs.reshape(-1, THUMB_SIZE, THUMB_SIZE)

    # ------------------------------------------------------------------------------------- analysis page
    def class_summary(self) -> ClassSummary:
        """Confusion matrix, per-class counts, mean loss and confidence, from one GROUP BY label, pred."""
        table = self.query("SELECT label, pred, count(*) AS n, sum(loss) AS loss, sum(prob) AS prob "
                           "FROM store_rows GROUP BY label, pred")
        size = len(self.class_names)
        confusion = np.zeros((size, size), np.int64)
        unlabelled = np.zeros(size, np.int64)
        loss_sum, prob_sum = np.zeros(size), np.zeros(size)
        for label, pred, n, loss, prob in zip(*(table[c].to_pylist() for c in table.column_names), strict=True):
            if not (0 <= pred < size and label < size):
                raise StoreError(f"the store has a row with label {label} / pred {pred}, outside its {size} classes; "
                                 "rebuild it with `gradcam precompute --overwrite`")
            if label < 0:
                unlabelled[pred] += n
                continue
            confusion[label, pred] += n
            loss_sum[label] += loss or 0.0
            prob_sum[label] += prob
        support = np.maximum(confusion.sum(axis=1), 1)
        has_rows = confusion.sum(axis=1) > 0
        return ClassSummary(self.class_names, confusion, unlabelled, np.where(has_rows, loss_sum / support, np.nan),
                            np.where(has_rows, prob_sum / support, np.nan))

    # ------------------------------------------------------------------------------------- the image set
    def listing(self) -> tuple[list[str], np.ndarray]:
        """(relative paths, labels) of every test-set item in index order, skipped files included, for
        ``models.FolderImageSet(root, class_names, transform, listing=store.listing())`` (indices then match)."""
        table = self.query('SELECT "index", path, label FROM store_rows ORDER BY "index"')
        indices = table["index"].to_numpy()
        paths, labels = table["path"].to_pylist(), table["label"].to_numpy()
        if self.skipped:
            extra = sorted(self.skipped, key=lambda s: s["index"])
            indices = np.concatenate([indices, [s["index"] for s in extra]])
            order = np.argsort(indices, kind="stable")
            combined = [*paths, *(s["path"] for s in extra)]
            paths = [combined[k] for k in order]
            labels = np.concatenate([labels, [s["label"] for s in extra]])[order]
            indices = indices[order]
        expected = int(self.manifest.get("images", len(indices)))
        if len(indices) != expected or (len(indices) and not np.array_equal(indices, np.arange(expected))):
            raise StoreError(f"the store {str(self.path)!r} covers {len(indices)} of its {expected} images (status "
                             f"{self.status!r}); finish it by rerunning `gradcam precompute` with the same options")
        return paths, labels.astype(np.int64)


def open_store(path: str | Path) -> Store:
    """Open the store at ``path`` for queries; StoreError when it is not one."""
    return Store(path)
