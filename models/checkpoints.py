"""Reading weights safely: safetensors, or ``torch.load(weights_only=True)`` — never unpickling code."""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from models.errors import WorkspaceError

STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
_SAVE_HINT = (
    "save only the weights instead: torch.save(model.state_dict(), 'model.pt') "
    "(or safetensors.torch.save_file(model.state_dict(), 'model.safetensors'))"
)


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (used in cache keys: same weights, same id).

    Remembered per (path, size, modification time), so loading a workspace hashes its checkpoint once even
    though the model id and the shipped-logits check both ask; a rewritten file is hashed again."""
    stat = os.stat(path)
    return _sha256_of(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_file(path: str | os.PathLike, what: str, field: str | None = None) -> Path:
    """``path`` as a Path if it is an existing file, else a WorkspaceError naming it (and the TOML field)."""
    path = Path(path)
    if path.is_file():
        return path
    where = f" (from {field})" if field else ""
    if path.is_dir() and (path / "config.json").is_file():
        raise WorkspaceError(f"{what} {str(path)!r}{where} is a Hugging Face save_pretrained folder, not a weights "
                             f'file; use source = "huggingface" with path = "{path.name}" in [model]')
    reason = "is a directory, not a file" if path.is_dir() else "does not exist"
    raise WorkspaceError(f"{what} {str(path)!r}{where} {reason}; check the path (relative paths in a workspace "
                         "file are relative to the .toml file's folder)")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict from ``.safetensors`` or a torch file, loaded on the CPU without executing any code.

    Torch files go through ``torch.load(weights_only=True)``: a pickled full model (or anything carrying Python
    objects other than tensors and containers) is refused before any of it runs. Common training wrappers
    (``{"state_dict": ...}``, ``{"model": ...}``) and DataParallel's ``module.`` prefix are unwrapped.
    """
    path = require_file(path, "checkpoint")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as error:
            raise WorkspaceError(f"checkpoint {str(path)!r} is not a readable .safetensors file ({error}); "
                                 "re-export it with safetensors.torch.save_file(model.state_dict(), path)") from error
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            found = re.search(r"GLOBAL ([\w.]+)", str(error))
            what = f" ({found.group(1)})" if found else ""
            raise WorkspaceError(
                f"refused to load checkpoint {str(path)!r}: it is not a plain state_dict but a pickle that refers to "
                f"Python code{what} — a whole pickled model, or objects of custom classes. Unpickling it could run "
                f"arbitrary code, so it was not loaded (torch.load with weights_only=True). To fix it, {_SAVE_HINT}"
            ) from None
        except Exception as error:  # garbage bytes make torch's weights-only unpickler raise
            # anything (IndexError "pop from empty list" for a text file, KeyError, struct.error...); no code ran.
            raise WorkspaceError(f"checkpoint {str(path)!r} could not be read as a PyTorch file "
                                 f"({type(error).__name__}: {error}); "
                                 f"{_SAVE_HINT}") from error
    return _as_state_dict(state, path)


def _as_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and obj and not all(torch.is_tensor(v) for v in obj.values()):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(torch.is_tensor(v) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        kind = type(obj).__name__
        keys = f" with keys {list(obj)[:5]}" if isinstance(obj, Mapping) else ""
        raise WorkspaceError(f"checkpoint {str(path)!r} holds a {kind}{keys}, not a state_dict (a dict of tensor "
                             f"names to tensors); {_SAVE_HINT}")
    state = dict(obj)
    if all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    return state


_BOOKKEEPING_SUFFIXES = ("num_batches_tracked", "running_mean", "running_var")
_TIMM_MARKERS = ("patch_embed.", "blocks.", "stages.", "stem.", "conv_stem.", "head.fc.", "pos_embed", "cls_token")
_HF_MARKERS = ("vit.", "deit.", "beit.", "swin.", "convnext.", "resnet.", "dinov2.", "regnet.", "efficientnet.",
               "mobilenet_v2.", "embeddings.", "encoder.layer.")


def _informative_first(keys: list[str]) -> list[str]:
    """Weights before batch-norm bookkeeping: a list that starts with num_batches_tracked says nothing."""
    return sorted(keys, key=lambda k: k.endswith(_BOOKKEEPING_SUFFIXES))


def _listing(items: list[str], limit: int = 5) -> str:
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def foreign_library_hint(state: Mapping[str, torch.Tensor], model: nn.Module) -> str:
    """A hint when a checkpoint's keys look like another library's model than ``model``, else ""."""
    keys = list(state)
    own = set(model.state_dict())
    if any(k.startswith(_HF_MARKERS) for k in keys) and not any(k.startswith(_HF_MARKERS) for k in own):
        return ('; its keys look like a Hugging Face model\'s: save it with model.save_pretrained(folder) and use '
                'source = "huggingface" with path = "folder"')
    if any(k.startswith(_TIMM_MARKERS) for k in keys) and not any(k.startswith(_TIMM_MARKERS) for k in own):
        return '; its keys look like a timm model\'s: use source = "timm" with name = "<the timm model name>"'
    return ""


def apply_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike,
                     classifier_layer: str | None = None, class_names: list[str] | None = None,
                     class_names_origin: str = "") -> None:
    """Load ``state`` into ``model`` strictly, or raise a WorkspaceError listing what does not fit.

    When the checkpoint's classifier has another output count than ``len(class_names)``, that is reported first
    and plainly, naming where the class names came from (``class_names_origin``); when the keys look like another
    library's model, the error says which source to use.
    """
    expected = model.state_dict()
    if classifier_layer and class_names is not None:
        key = f"{classifier_layer}.weight"
        if key in state and key in expected and state[key].ndim >= 1 and state[key].shape[0] != len(class_names):
            origin = f" from {class_names_origin}" if class_names_origin else ""
            raise WorkspaceError(
                f"the checkpoint {str(source)!r} has a classifier ({key}) with {state[key].shape[0]} outputs, but "
                f"{len(class_names)} class names were given{origin} ({_listing(list(class_names), 8)}); list exactly "
                "one name per output, in the order the model was trained with (set [model] class_names, or map / "
                "remove the extra data folders)"
            )
    missing = _informative_first([k for k in expected if k not in state])
    unexpected = _informative_first([k for k in state if k not in expected])
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_listing(mismatched, 3)}")
    if problems:
        hint = foreign_library_hint(state, model) or (
            ". Check that the architecture (and num_classes) is the one the checkpoint was saved from")
        raise WorkspaceError(
            f"the checkpoint {str(source)!r} does not fit {type(model).__name__}: " + "; ".join(problems) + hint
        )
    model.load_state_dict(state, strict=True)
