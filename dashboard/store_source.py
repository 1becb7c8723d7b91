"""Which precomputed store a workspace's pages read, and what they do without one (no streamlit here).

A workspace's store (``workspace.store``: ``[data] store`` or ``<toml stem>.store/`` beside the TOML) is used when
it is complete and was made by the same model (``manifest["model_id"]``) on a test set of the same size; then an
ImageFolder test set is opened with the store's ``listing()`` (no directory walk), and the pages query the store
instead of classifying the set. A store that cannot be used is named in a warning with the command that fixes it.

Without a usable store, a test set of up to ``NO_STORE_LIMIT`` images is classified here, once per model, into a
``MemoryStore``: the same queries over rows computed in this process (``store_memory``); a larger one is not
classified at all, and the pages show the ``gradcam precompute`` command instead.
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from models import FolderImageSet, ImageSet
from store import Store, StoreError, open_store
from store.precompute import dataset_fingerprint

#: Above this many test images without a store, the dashboard does not classify the whole set (minutes on a CPU):
#: it shows the ``gradcam precompute`` command instead. At ~5-10 ms an image on a CPU, 5,000 images take ~30-50 s.
NO_STORE_LIMIT = 5_000
#: What a damaged store raises when it is opened or read (a cut or foreign Parquet file, a missing shard...).
UNREADABLE_STORE = (StoreError, OSError, duckdb.Error, pa.ArrowException)


@dataclass(frozen=True)
class StoreStatus:
    """The store a workspace's pages read (``store``), or why there is none they can use (``problem``)."""

    store: Store | None = None
    path: Path | None = None
    problem: str | None = None  # markdown: what is wrong with the store at ``path`` and the command that fixes it
    stamp: tuple[int, int] | None = None  # the manifest's (mtime_ns, size) when checked; None: no manifest

    @property
    def usable(self) -> bool:
        return self.store is not None


def manifest_stamp(path: Path | None) -> tuple[int, int] | None:
    """(mtime_ns, size) of a store's manifest, None without one: a changed stamp means a changed store."""
    try:
        info = (Path(path) / "_manifest.json").stat()
    except (OSError, TypeError):
        return None
    return info.st_mtime_ns, info.st_size


def _is_bundled(workspace: Any) -> bool:
    from models.workspace import BUNDLED_DIR

    toml = getattr(workspace, "toml_path", None)
    return toml is not None and Path(toml).resolve().parent == BUNDLED_DIR.resolve()


def workspace_argument(workspace: Any) -> str:
    """What ``--workspace`` takes for this workspace: a bundled name, else its TOML file."""
    toml = getattr(workspace, "toml_path", None)
    if toml is None or _is_bundled(workspace):
        return str(workspace.name)
    return str(Path(toml).resolve())


def default_store_path(workspace: Any) -> Path | None:
    """Where the workspace looks for its store: ``[data] store``, else ``<toml stem>.store/`` beside the TOML."""
    if getattr(workspace, "store", None) is not None:
        return Path(workspace.store)
    toml = getattr(workspace, "toml_path", None)
    return None if toml is None else Path(toml).resolve().with_name(f"{Path(toml).stem}.store")


def precompute_command(workspace: Any, overwrite: bool = False) -> str:
    """The exact ``gradcam precompute`` command that writes the store this workspace finds on its own."""
    out = default_store_path(workspace)
    parts = ["gradcam", "precompute", "--workspace", workspace_argument(workspace)]
    if out is not None:
        parts += ["--out", str(out)]
    if overwrite:
        parts.append("--overwrite")
    return " ".join(shlex.quote(p) for p in parts)


def _problem(workspace: Any, store: Store, test_set: ImageSet | None) -> str | None:
    """Why ``store`` cannot serve ``workspace`` (None: it can)."""
    manifest, path = store.manifest, store.path
    if store.model_id != workspace.model_id:
        return (f"The precomputed store `{path}` was made by another model (`{store.model_id}`, this workspace's "
                f"model is `{workspace.model_id}`), so the pages do not use it. Rebuild it with\n\n"
                f"`{precompute_command(workspace, overwrite=True)}`")
    if not store.complete:
        return (f"The precomputed store `{path}` is not finished (status *{store.status or 'unknown'}*: a run was "
                f"stopped or is still writing), so the pages do not use it. Finish it with\n\n"
                f"`{precompute_command(workspace)}`")
    images = int(manifest.get("images", store.num_rows))
    if test_set is not None and images != len(test_set):
        return (f"The precomputed store `{path}` covers {images:,} images but the test set has {len(test_set):,} "
                f"(files added or removed since), so the pages do not use it. Rebuild it with\n\n"
                f"`{precompute_command(workspace, overwrite=True)}`")
    if test_set is not None and manifest.get("dataset_sha256") not in (None, dataset_fingerprint(test_set, images)):
        return (f"The precomputed store `{path}` was made from other test images (their ids or labels differ), so "
                f"the pages do not use it. Rebuild it with\n\n`{precompute_command(workspace, overwrite=True)}`")
    return None


def check_store(workspace: Any, test_set: ImageSet | None = None) -> StoreStatus:
    """Open the workspace's store if it has one and it can serve the pages; never raises for a bad store.

    ``test_set``: an in-memory test set to check the store against (its size and the fingerprint of its ids and
    labels); an ImageFolder opened from the store's own listing matches it by construction."""
    path = getattr(workspace, "store", None)
    if path is None:
        return StoreStatus()
    path, stamp = Path(path), manifest_stamp(path)
    if not path.exists():
        return StoreStatus(path=path)
    try:
        store = open_store(path)
    except UNREADABLE_STORE as error:
        return StoreStatus(path=path, problem=f"The precomputed store `{path}` cannot be read ({error}).",
                           stamp=stamp)
    problem = _problem(workspace, store, test_set)
    if problem is not None:
        store.close()
        return StoreStatus(path=path, problem=problem, stamp=stamp)
    return StoreStatus(store=store, path=path, stamp=stamp)


def folder_data(workspace: Any):
    """The workspace file's ``[data]`` table when its test set is an ImageFolder (``root`` set), else None."""
    toml = getattr(workspace, "toml_path", None)
    if toml is None:
        return None
    from models.workspace import parse_workspace_file

    data = parse_workspace_file(toml).data
    return data if data.root is not None else None


def open_with_store(workspace: Any) -> StoreStatus:
    """Check the workspace's store before its test set is built; when it is usable and the test set is an
    ImageFolder, the test set is opened from the store's listing (no directory walk, no decoding). Called once
    when a workspace is loaded; a store that cannot be used leaves the workspace as it was."""
    if getattr(workspace, "store", None) is None:
        return StoreStatus()
    data = folder_data(workspace)
    status = check_store(workspace, test_set=None if data is not None else workspace.test_set)
    if not status.usable or data is None:
        return status
    try:
        listing = status.store.listing()
    except UNREADABLE_STORE as error:
        status.store.close()
        return StoreStatus(path=status.path, problem=f"The precomputed store `{status.path}` cannot be used "
                           f"({error}).", stamp=status.stamp)
    workspace.test_set_factory = functools.partial(
        FolderImageSet, data.root, workspace.class_names, workspace.transform, folder_to_class=data.class_map,
        listing=listing)
    workspace.__dict__.pop("test_set", None)  # a cached_property: built from the new factory on first access
    return status


def big_folder_message(workspace: Any, test_set_size: int) -> str:
    """Markdown for a test set too large to classify in the page: the command that precomputes its store."""
    return (f"**{test_set_size:,} test images and no precomputed store.** Classifying them all here would take "
            f"minutes on every start, so this page does not (the limit without a store is {NO_STORE_LIMIT:,}). "
            f"Precompute the store once, in a terminal, then restart the dashboard:\n\n"
            f"`{precompute_command(workspace)}`\n\n"
            "It writes predictions, losses, embeddings and the 2-D map of every image; the dashboard then opens at "
            "once, at any size. Single images still work in the explorer.")
