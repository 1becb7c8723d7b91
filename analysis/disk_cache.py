"""The one disk cache of the project: arrays computed from a model and a data set (penultimate features, t-SNE
layouts), kept as ``<kind>-<hash>.npz`` files so a restarted dashboard does not compute them again.

A file is named by a hash of everything its content depends on (``cache_key``), written atomically (temp file +
rename: a crash or a concurrent reader never sees half a file) and read with ``allow_pickle=False``. A file that
cannot be read — missing, truncated, foreign — is a miss, never an error: the caller computes and overwrites it.

Why not ``joblib.Memory``: it pickles results, and this project never unpickles a file it did not just write (the
folder is configurable, ``$GRADCAM_CACHE_DIR``, and can be shared); and the t-SNE page must ask "is it there?"
without computing, which here is one ``load``. Memory caching is the caller's: the dashboard has
``st.cache_data``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "GRADCAM_CACHE_DIR"
_KEY, _META = "__key__", "__meta__"


def default_cache_dir() -> Path:
    """``$GRADCAM_CACHE_DIR``, else ``~/.cache/gradcam-dashboard/embeddings``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "gradcam-dashboard" / "embeddings"


def _describe(part: Any) -> Any:
    if isinstance(part, np.ndarray):
        data = np.ascontiguousarray(part)
        content = hashlib.sha256(data.view(np.uint8).reshape(-1)).hexdigest()
        return ["ndarray", str(data.dtype), list(data.shape), content]
    if isinstance(part, dict):
        return {str(k): _describe(v) for k, v in sorted(part.items())}
    if isinstance(part, (list, tuple)):
        return [_describe(v) for v in part]
    return part


def cache_key(*parts: Any) -> str:
    """A sha256 hex digest of ``parts``: strings, numbers, dicts, lists, and numpy arrays (by dtype, shape and
    bytes). Put in everything the cached value depends on, including the settings' defaults and a version."""
    return hashlib.sha256(json.dumps(_describe(list(parts)), sort_keys=True, default=repr).encode()).hexdigest()


@dataclass(frozen=True)
class Cached:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


@dataclass(frozen=True)
class DiskCache:
    """Files ``<folder>/<kind>-<key[:40]>.npz`` holding named arrays and a JSON-able ``meta`` dict."""

    folder: Path
    kind: str

    def path(self, key: str) -> Path:
        return Path(self.folder) / f"{self.kind}-{key[:40]}.npz"

    def load(self, key: str) -> Cached | None:
        """What ``save`` stored under ``key``, or None (missing, unreadable, or written for another key)."""
        try:
            with np.load(self.path(key), allow_pickle=False) as stored:
                if str(stored[_KEY]) != key:
                    return None
                meta = json.loads(str(stored[_META]))
                arrays = {name: np.array(stored[name]) for name in stored.files if name not in (_KEY, _META)}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        return Cached(arrays, meta) if isinstance(meta, dict) else None

    def save(self, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> bool:
        """Write atomically; False (with a RuntimeWarning saying so) when the folder cannot be written, in which
        case the value is simply computed again next time."""
        path = self.path(key)
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays, **{_KEY: np.array(key), _META: np.array(json.dumps(meta or {}))})
            os.replace(tmp, path)
            return True
        except OSError as exc:
            warnings.warn(f"could not write the cache file {path} ({exc}); it will be computed again after a "
                          f"restart (set ${CACHE_ENV} to a writable folder)", RuntimeWarning, stacklevel=2)
            return False
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)  # gone already after a successful rename
