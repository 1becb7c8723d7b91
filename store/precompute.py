"""``precompute``: a workspace's whole test set into a Parquet store, resumable, on the local or the Ray engine.

    from store import precompute
    summary = precompute("shapes", "shapes.store")                 # or a Workspace, or a .toml path
    summary = precompute("my.toml", engine="ray", concurrency=4, num_gpus=1)

Stages: (1) the per-image pass, shard by shard (``store.compute``: one engine call per batch), skipping shards
already on disk; (2) the 2-D map of the embeddings (``store.map_stage``) once every shard is there. The manifest
(``_manifest.json``) is rewritten atomically after each shard and at the end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models import FolderImageSet, ImageSet, Workspace, load_workspace
from store.compute import embedding_info
from store.embedding_map import FIT_MAX
from store.schema import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    STORE_FORMAT,
    THUMB_SIZE,
    StoreError,
    column_list,
    read_manifest,
    shard_files,
    write_manifest,
)
from store.shards import ShardPlan, ShardSink, done_shards, remove_temporary_files, shard_skipped

ENGINES = ("local", "ray")
DEFAULT_SHARD_SIZE = 10_000
DEFAULT_BATCH_SIZE = 64
#: Manifest fields that must match for a run to resume into an existing store.
IDENTITY_KEYS = ("model_id", "workspace", "default_layer", "classifier_layer", "class_names", "images",
                 "dataset_sha256")


@dataclass(frozen=True)
class Progress:
    """What ``precompute(progress=...)`` is told: stage "images" (done/total items, resumed ones included) or
    "map" (done/total shards rewritten), with a message."""

    stage: str
    done: int
    total: int
    message: str = ""
    shards_done: int = 0


@dataclass
class PrecomputeSummary:
    store: Path
    images: int
    rows: int
    skipped: list[dict]
    shards_resumed: int
    shards_written: int
    seconds: float
    images_per_second: float | None
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class Options:
    engine: str = "local"
    overwrite: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    shard_size: int = DEFAULT_SHARD_SIZE
    workers: int | None = None
    device: str | None = None
    limit: int | None = None
    ray_address: str | None = None
    concurrency: int = 1
    num_gpus: float = 0.0
    map_fit_max: int = FIT_MAX
    seed: int = 0

    def check(self) -> None:
        if self.engine not in ENGINES:
            raise StoreError(f"unknown engine {self.engine!r}; use one of {', '.join(ENGINES)}")
        for name in ("batch_size", "shard_size", "concurrency", "map_fit_max"):
            if int(getattr(self, name)) < 1:
                raise StoreError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise StoreError(f"limit must be at least 1, got {self.limit}")
        if self.workers is not None and self.workers < 0:
            raise StoreError(f"workers must be 0 (decode in this process) or more, got {self.workers}")
        if self.num_gpus < 0:
            raise StoreError(f"num-gpus must be 0 or more, got {self.num_gpus}")


def dataset_fingerprint(image_set: ImageSet, count: int) -> str:
    """sha256 of the first ``count`` items' ids and labels: a resumed run must see the same listing."""
    digest = hashlib.sha256()
    ids = image_set.relative_paths[:count] if isinstance(image_set, FolderImageSet) else \
        [image_set.item_id(i) for i in range(count)]
    for item_id, label in zip(ids, image_set.labels[:count].tolist(), strict=True):
        digest.update(f"{item_id}\t{label}\n".encode())
    return digest.hexdigest()


def _versions(engine: str) -> dict[str, str]:
    import numpy
    import openTSNE
    import pyarrow
    import torch
    import torchvision

    versions = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
                "numpy": numpy.__version__, "pyarrow": pyarrow.__version__, "openTSNE": openTSNE.__version__}
    if engine == "ray":
        import ray

        versions["ray"] = ray.__version__
    return versions


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _identity(workspace: Workspace, count: int) -> dict[str, Any]:
    return {
        "model_id": workspace.model_id,
        "workspace": workspace.name,
        "default_layer": workspace.default_layer,
        "classifier_layer": workspace.classifier_layer,
        "class_names": list(workspace.class_names),
        "images": count,
        "dataset_sha256": dataset_fingerprint(workspace.test_set, count),
    }


def _store_files(out: Path) -> list[Path]:
    """What --overwrite may delete: the store's own files, nothing else."""
    return [*shard_files(out), *out.glob("_*.tmp"), out / MANIFEST_NAME]


def prepare_store(out: Path, identity: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Check (or with ``overwrite``, empty) the store folder; returns the manifest of a store to resume, or None."""
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {str(out)!r} is a file, not a folder; give a folder path for the store")
    manifest = read_manifest(out) if out.is_dir() and not overwrite else None
    if out.is_dir():
        ours = set(_store_files(out))
        foreign = [p for p in out.iterdir() if p not in ours]
        if foreign and read_manifest_quietly(out) is None:
            raise StoreError(f"--out {str(out)!r} is a folder that holds other files (e.g. {foreign[0].name!r}) and "
                             "no store manifest; give an empty or new folder for the store")
    if manifest is not None:
        different = [k for k in IDENTITY_KEYS if manifest.get(k) != identity[k]]
        if different:
            raise StoreError(_refusal(out, manifest, identity, different))
    elif out.is_dir() and shard_files(out) and not overwrite:
        raise StoreError(f"{str(out)!r} holds shards but no {MANIFEST_NAME}, so whose they are is unknown; rerun "
                         "with --overwrite to start the store anew")
    if overwrite and out.is_dir():
        for path in _store_files(out):
            path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    remove_temporary_files(out)
    return manifest


def read_manifest_quietly(out: Path) -> dict | None:
    try:
        return read_manifest(out)
    except StoreError:
        return None


def _refusal(out: Path, manifest: dict, identity: dict, different: list[str]) -> str:
    if "model_id" in different or "workspace" in different:
        what = (f"a store of another model: it was made by {manifest.get('model_id')!r} (workspace "
                f"{manifest.get('workspace')!r}), this run is {identity['model_id']!r}")
    elif "images" in different or "dataset_sha256" in different:
        what = (f"a store of other images: it covers {manifest.get('images')} images with another listing, this "
                f"run has {identity['images']} (files added, removed or relabelled, or another --limit)")
    else:
        key = different[0]
        what = f"a store made with {key} = {manifest.get(key)!r}, this run has {identity[key]!r}"
    return (f"--out {str(out)!r} holds {what}; rerun with --overwrite to replace it, or choose another --out "
            "folder")


def new_manifest(workspace: Workspace, workspace_ref: str, identity: dict, options: Options) -> dict[str, Any]:
    return {
        "format": STORE_FORMAT,
        "format_version": FORMAT_VERSION,
        **identity,
        "workspace_ref": workspace_ref,
        "workspace_toml": str(workspace.toml_path or ""),
        "test_set_size": len(workspace.test_set),
        "limit": options.limit,
        "input_size": list(workspace.input_size),
        "shard_size": options.shard_size,
        "created": _now(),
        "status": "running",
        "counts": {"images": identity["images"], "rows": 0, "skipped": 0, "shards": 0},
        "skipped": [],
        "cam": {"layer": workspace.default_layer, "method": "gradcam", "target": "pred",
                "thumb_shape": [THUMB_SIZE, THUMB_SIZE],
                "peak": "cam_peak_y/x: centre of the map's maximum cell, as a fraction of the image height/width from "
                        "the top-left; null for an all-zero map"},
        "embedding": None,
        "map": {"status": "pending"},
        "columns": column_list(),
        "runs": [],
        "seconds": {"images": 0.0, "map": 0.0},
    }


def summarise_shards(out: Path, manifest: dict) -> None:
    """Counts and the skipped list from the shards themselves (so they survive any interruption)."""
    import pyarrow.parquet as pq

    files = shard_files(out)
    skipped = [entry for path in files for entry in shard_skipped(path)]
    rows = sum(pq.read_metadata(path).num_rows for path in files)
    manifest["counts"] = {"images": manifest["images"], "rows": rows, "skipped": len(skipped), "shards": len(files)}
    manifest["skipped"] = skipped


def feature_dims(workspace: Workspace) -> int:
    """Width of the penultimate features: one zero image through the model on the CPU."""
    import torch

    from gradcam_core import CamEngine

    engine = CamEngine(workspace.model, device=next(workspace.model.parameters()).device)
    features, _ = engine.features(torch.zeros(1, 3, *workspace.input_size), workspace.classifier_layer)
    return int(features.shape[1])


def _resolve(workspace: Workspace | str | Path, out: str | Path | None) -> tuple[Workspace, str, Path]:
    if isinstance(workspace, Workspace):
        ws, ref = workspace, str(workspace.toml_path or "")
    else:
        ws, ref = load_workspace(workspace), str(workspace)
    if out is None:
        if ws.store is None:
            raise StoreError(f"workspace {ws.name!r} names no store; give --out STORE (a folder), or set "
                             "[data] store in its TOML (a store beside the TOML as <stem>.store/ is found "
                             "automatically)")
        out = ws.store
    return ws, ref, Path(out).expanduser()


def precompute(workspace: Workspace | str | Path, out: str | Path | None = None, *,
               progress: Callable[[Progress], None] | None = None, **options: Any) -> PrecomputeSummary:
    """Write (or resume) the store of ``workspace`` at ``out``; see ``Options`` for the keyword options.

    ``progress(Progress)`` is called after every batch and every map step. Raises StoreError for a store that
    cannot be written as asked (another model's, a non-store folder, bad options).
    """
    opts = Options(**options)
    opts.check()
    ws, ref, out = _resolve(workspace, out)
    if opts.engine == "ray" and ws.toml_path is None:
        raise StoreError(f"workspace {ws.name!r} has no TOML file, and Ray actors load the workspace from one; "
                         "describe it in a .toml file (see models/README.md) or use --engine local")
    count = len(ws.test_set) if opts.limit is None else min(opts.limit, len(ws.test_set))
    if count == 0:
        raise StoreError(f"workspace {ws.name!r} has an empty test set; there is nothing to precompute")
    identity = _identity(ws, count)
    manifest = prepare_store(out, identity, opts.overwrite)
    if manifest is None:
        manifest = new_manifest(ws, ref, identity, opts)
        manifest["embedding"] = embedding_info(feature_dims(ws))
    plan = ShardPlan(count, int(manifest["shard_size"]), opts.batch_size)
    done = sorted(s for s in done_shards(out) if s < plan.shards)
    pending = [s for s in range(plan.shards) if s not in set(done)]
    run = {"started": _now(), "engine": opts.engine, "shards_resumed": len(done), "shards_written": 0,
           "batch_size": opts.batch_size, "versions": _versions(opts.engine), "status": "running"}
    manifest.setdefault("runs", []).append(run)
    manifest.update(status="running", engine=opts.engine)
    write_manifest(out, manifest)
    start = time.perf_counter()
    try:
        written = _image_pass(ws, out, plan, pending, done, opts, manifest, progress)
        images_seconds = time.perf_counter() - start
        run["images_seconds"] = round(images_seconds, 3)
        manifest["seconds"]["images"] = round(manifest["seconds"]["images"] + images_seconds, 3)
        summarise_shards(out, manifest)
        if written or manifest["map"].get("status") != "done":
            _map_pass(out, manifest, opts, progress)
        manifest["status"] = run["status"] = "complete"
    except BaseException:
        manifest["status"] = run["status"] = "interrupted"
        raise
    finally:
        run["seconds"] = round(time.perf_counter() - start, 3)
        manifest["updated"] = _now()
        write_manifest(out, manifest)
    rate = _items_in(plan, pending) / run["images_seconds"] if pending and run["images_seconds"] > 0 else None
    return PrecomputeSummary(out, count, manifest["counts"]["rows"], manifest["skipped"], len(done),
                             run["shards_written"], run["seconds"], rate, manifest)


def _items_in(plan: ShardPlan, shards: list[int]) -> int:
    return sum(len(plan.index_range(s)) for s in shards)


def _image_pass(ws: Workspace, out: Path, plan: ShardPlan, pending: list[int], done: list[int],
                opts: Options, manifest: dict, progress: Callable[[Progress], None] | None) -> int:
    """Run the chosen engine over the pending shards; returns how many shards it wrote."""
    run = manifest["runs"][-1]
    state = {"items": _items_in(plan, done), "shards": len(done)}

    def on_shard(shard: int, rows: int, skipped: int) -> None:
        state["shards"] += 1
        run["shards_written"] += 1
        manifest["counts"]["shards"] = state["shards"]
        write_manifest(out, manifest)

    sink = ShardSink(out, plan, on_shard)

    def add(table) -> int:
        state["items"] += sink.add(table)
        if progress is not None:
            progress(Progress("images", state["items"], plan.count, "", state["shards"]))
        return table.num_rows

    if progress is not None:
        resuming = f"resuming: {len(done)} of {plan.shards} shards are already in {out}" if done else ""
        progress(Progress("images", state["items"], plan.count, resuming, state["shards"]))
    if pending and opts.engine == "local":
        from store.local_engine import run_local

        run_local(ws, plan, pending, add, workers=opts.workers, device=opts.device)
    elif pending:
        from store.ray_engine import run_ray

        threads = opts.workers if opts.workers is not None else 1
        run_ray(str(ws.toml_path), plan, pending, add, address=opts.ray_address,
                concurrency=opts.concurrency, num_gpus=opts.num_gpus, device=opts.device, decode_threads=threads)
    if sink.pending:
        raise StoreError(f"the {opts.engine} engine returned no rows for part of shard(s) {sink.pending[:5]}; "
                         "rerun the same command to redo them")
    return len(sink.written)


def _map_pass(out: Path, manifest: dict, opts: Options, progress: Callable[[Progress], None] | None) -> None:
    from store.map_stage import build_map

    manifest["map"] = {"status": "running"}
    write_manifest(out, manifest)

    def report(done: int, total: int, message: str) -> None:
        if progress is not None:
            progress(Progress("map", done, total, message))

    manifest["map"] = build_map(out, seed=opts.seed, fit_max=opts.map_fit_max, progress=report)
    manifest["seconds"]["map"] = manifest["map"]["seconds"]
