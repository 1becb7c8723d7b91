"""The store's layout on disk: its columns, its file names, and the manifest (written atomically).

A store is a folder::

    STORE/part-00000.parquet     rows of test-set indices [0, shard_size), written once, atomically
    STORE/part-00001.parquet     rows of [shard_size, 2 * shard_size) ...
    STORE/_manifest.json         what made the store (model, workspace, counts, skipped files, timings, columns)

Files that are not row data start with ``_`` (``pyarrow.dataset`` skips them) and temporary files also end in
``.tmp`` (so ``read_parquet('STORE/**/*.parquet')`` in DuckDB skips them too): ``_part-00003.parquet.tmp`` is
renamed to ``part-00003.parquet`` only once it is complete, so a killed run never leaves half a shard visible.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

STORE_FORMAT = "gradcam-store"
FORMAT_VERSION = 1
MANIFEST_NAME = "_manifest.json"
SHARD_GLOB = "part-*.parquet"
TOPK = 5
THUMB_SIZE = 16
#: Penultimate features wider than this are stored as a fixed random projection to this many dimensions.
EMBEDDING_MAX_DIMS = 512
#: Key of a shard's Parquet metadata that lists the test-set items of its index range that could not be read.
SKIPPED_METADATA_KEY = b"gradcam.skipped"


class StoreError(ValueError):
    """A store that cannot be written or read as asked: what was wrong, with the path, and what to do."""


#: (name, Arrow type, meaning). The first nine are DESIGN.md's contract; the rest serve the pages.
COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("index", pa.int64(), "the image's position in the workspace's test set"),
    ("path", pa.string(), "the item id: path relative to the data root, or 'test-00042'"),
    ("label", pa.int64(), "true class index, -1 if none"),
    ("pred", pa.int64(), "predicted class (argmax of the logits)"),
    ("prob", pa.float32(), "softmax probability of pred"),
    ("loss", pa.float32(), "cross-entropy of label (nats); null if no label"),
    ("topk_index", pa.list_(pa.int64()), f"the {TOPK} most probable classes, best first"),
    ("topk_prob", pa.list_(pa.float32()), "their softmax probabilities"),
    ("embedding", pa.list_(pa.float32()), "penultimate features (input of classifier_layer), or a fixed random "
                                          f"projection to {EMBEDDING_MAX_DIMS} dims when wider: see the manifest"),
    ("margin", pa.float32(), "probability of the best class minus that of the second best"),
    ("entropy", pa.float32(), "entropy of the softmax distribution (nats)"),
    ("correct", pa.bool_(), "pred == label; null if no label"),
    ("map_x", pa.float32(), "2-D map of the embeddings (openTSNE), x; null until the map stage has run"),
    ("map_y", pa.float32(), "2-D map of the embeddings (openTSNE), y"),
    ("cam_thumb", pa.binary(), f"Grad-CAM of the default layer for pred, {THUMB_SIZE}x{THUMB_SIZE} uint8 row-major "
                               "(0-255 = the map's [0, 1]), resized bilinearly with antialiasing"),
    ("cam_peak_y", pa.float32(), "row of the map's maximum as a fraction of the image height (cell centre, 0 = top);"
                                 " null when the map is all zero"),
    ("cam_peak_x", pa.float32(), "column of the map's maximum as a fraction of the image width (0 = left)"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _, _ in COLUMNS)
ROW_SCHEMA = pa.schema([pa.field(name, kind, nullable=name != "index") for name, kind, _ in COLUMNS])


def shard_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


def shard_number(path: Path) -> int | None:
    """The shard number of ``part-00042.parquet``, else None."""
    stem = path.name.removeprefix("part-").removesuffix(".parquet")
    return int(stem) if path.name.startswith("part-") and path.name.endswith(".parquet") and stem.isdigit() else None


def shard_files(store: Path) -> list[Path]:
    """The complete shards of a store, in index order (temporary files are never among them)."""
    found = [p for p in store.glob(SHARD_GLOB) if shard_number(p) is not None]
    return sorted(found, key=lambda p: shard_number(p) or 0)


def temporary_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place: ``_<name>.tmp`` beside it."""
    return path.with_name(f"_{path.name}.tmp")


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, flush it to disk, then rename it to ``path``: readers see all of it or nothing."""
    tmp = temporary_path(path)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_manifest(store: Path) -> dict[str, Any] | None:
    """The store's manifest, None when there is none; StoreError when it is unreadable."""
    path = Path(store) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(f"the store manifest {str(path)!r} cannot be read ({error}); rerun `gradcam precompute` "
                         "with --overwrite to rebuild the store") from None
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise StoreError(f"{str(path)!r} is not a gradcam store manifest (no \"format\": \"{STORE_FORMAT}\"); "
                         "point at a folder written by `gradcam precompute`")
    return manifest


def write_manifest(store: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=False, default=str)
    atomic_write(Path(store) / MANIFEST_NAME, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def column_list() -> list[dict[str, str]]:
    """The columns as the manifest records them."""
    return [{"name": name, "type": str(kind), "meaning": meaning} for name, kind, meaning in COLUMNS]
