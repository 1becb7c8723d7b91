"""Findings: pinned views of the dashboard (or hand-written ones), and their JSON file ``findings.json``.

A finding says what was looked at (workspace, model, sample, layer, method, target, opacity, colormap), what the
user noted, and, when it was pinned in the dashboard, what was seen (top-5 and the three pictures as PNG bytes).
A finding without pictures (written by hand or by CI) is completed by ``report.compute.complete_findings``.

The JSON of one finding extends the explorer's ``view.json`` (``dashboard.explorer.view_payload``): a downloaded
``view.json`` is a valid finding, and its extra keys (``predicted``, ``seed``, ...) are ignored. Torch-free: this
module only parses and checks types and ranges; ``report.compute`` checks a finding against its model.
"""

from __future__ import annotations

import base64
import difflib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

KINDS = ("view", "compare")
TARGET_MODES = ("pred", "true", "class")  # the explorer's "pred" / "true" / a class index
PICTURE_NAMES = ("original", "heatmap", "overlay")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Keys of the explorer's view.json that a finding does not keep (derived, or only for the dashboard's gallery).
_IGNORED_KEYS = {"predicted", "layer_shape", "map_shape", "method_title", "seed", "filter"}


class FindingError(ValueError):
    """A finding that cannot be used; the message names the finding, the field, the value and what is expected."""


def field_error(where: str, name: str, problem: str, expected: str) -> FindingError:
    return FindingError(f"{where}, field '{name}': {problem}; expected {expected}")


# ----------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Sample:
    """The image of a finding: a test image (``index``) or an upload (``upload_sha256`` of its bytes)."""

    index: int | None = None
    upload_sha256: str | None = None
    file_name: str = ""
    item_id: str = ""
    true_class: int | None = None

    @property
    def is_upload(self) -> bool:
        return self.index is None

    def describe(self) -> str:
        if self.is_upload:
            return f"uploaded image {self.file_name or self.upload_sha256[:12]}"
        return f"test image #{self.index}" + (f" ({self.item_id})" if self.item_id else "")


@dataclass(frozen=True)
class TopClass:
    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class Pictures:
    """The three pictures of a view as PNG bytes: the input as the model sees it, the coloured map, the blend."""

    original: bytes
    heatmap: bytes
    overlay: bytes

    def items(self) -> list[tuple[str, bytes]]:
        return [(name, getattr(self, name)) for name in PICTURE_NAMES]


@dataclass(frozen=True)
class ComparedModel:
    """The second model of a comparison finding: same sample, method, opacity and colormap, its own layer and
    target (each model is shown at its own default or chosen layer)."""

    workspace: str
    layer: str
    model_id: str = ""
    target_mode: str = "pred"
    target_class: int | None = None
    top5: tuple[TopClass, ...] = ()
    pictures: Pictures | None = None


@dataclass(frozen=True)
class Finding:
    """One pinned view. ``target_class`` is the class explained (None until known for mode "pred"/"true")."""

    workspace: str
    sample: Sample
    layer: str
    model_id: str = ""
    kind: str = "view"
    method: str = "gradcam"
    target_mode: str = "pred"
    target_class: int | None = None
    opacity: float = 0.5
    colormap: str = "jet"
    note: str = ""
    created: str = ""  # ISO 8601, "" when unknown
    link: str = ""  # the dashboard link that reopens the view
    top5: tuple[TopClass, ...] = ()
    pictures: Pictures | None = None
    compare: ComparedModel | None = None

    @property
    def complete(self) -> bool:
        """Whether it carries everything a report shows (else ``complete_findings`` recomputes it)."""
        sides = [self] + ([self.compare] if self.compare is not None else [])
        return all(side.pictures is not None and side.top5 for side in sides)

    def to_dict(self, pictures: bool = True) -> dict[str, Any]:
        return _finding_to_dict(self, pictures)

    @classmethod
    def from_dict(cls, data: Any, where: str = "finding") -> Finding:
        return _finding_from_dict(data, where)


def now_iso() -> str:
    """The current local time with its offset, to the second (a finding's ``created``)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------ JSON -> records
class _Fields:
    """Typed reads of one JSON object, each error naming where it is and which field."""

    def __init__(self, data: Any, where: str, prefix: str, known: Iterable[str], ignored: Iterable[str] = ()):
        if not isinstance(data, Mapping):
            raise FindingError(f"{where}{f', field {prefix[:-1]!r}' if prefix else ''}: got "
                               f"{_json_type(data)} {_short(data)}; expected a JSON object")
        self.data, self.where, self.prefix = data, where, prefix
        known = list(known)
        for key in data:
            if key not in known and key not in ignored:
                hints = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {hints[0]!r}?)" if hints else ""
                raise field_error(where, prefix + str(key), f"unknown field{hint}",
                                  f"only {', '.join(known)}")

    def error(self, key: str, problem: str, expected: str) -> FindingError:
        return field_error(self.where, self.prefix + key, problem, expected)

    def get(self, key: str, types: type | tuple, expected: str, default: Any = None, required: bool = False) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.error(key, "missing", expected)
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.error(key, f"got {value!r}", expected)
        if not isinstance(value, types):
            raise self.error(key, f"got {_json_type(value)} {_short(value)}", expected)
        return value

    def text(self, key: str, expected: str = "a string", required: bool = False) -> str:
        return self.get(key, str, expected, default="", required=required)

    def class_index(self, key: str, required: bool = False) -> int | None:
        value = self.get(key, (int, float), "a class index (an integer >= 0)", required=required)
        if value is None:
            return None
        if not float(value).is_integer() or value < 0:
            raise self.error(key, f"got {value!r}", "a class index (an integer >= 0)")
        return int(value)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null" if value is None else type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _sample_from(data: Any, where: str) -> Sample:
    fields = _Fields(data, where, "sample.", ("index", "item_id", "true_class", "upload_sha256", "file_name"),
                     ignored=("true_label",))
    index = fields.get("index", (int, float), "a test image index (an integer >= 0)")
    sha = fields.text("upload_sha256", "the hex SHA-256 of the uploaded file (64 characters 0-9a-f)").lower()
    if (index is None) == (not sha):
        raise FindingError(f"{where}, field 'sample': {'both' if sha else 'neither'} 'index' and 'upload_sha256' "
                           "given; expected exactly one: a test image index, or the SHA-256 of an upload")
    if index is not None and (not float(index).is_integer() or index < 0):
        raise fields.error("index", f"got {index!r}", "a test image index (an integer >= 0)")
    if sha and not _SHA256.match(sha):
        raise fields.error("upload_sha256", f"got {sha!r}", "64 hex characters (the SHA-256 of the uploaded file)")
    true_class = fields.class_index("true_class")
    if sha and true_class is not None:
        raise fields.error("true_class", f"got {true_class} for an uploaded image", "no true class for an upload")
    return Sample(index=None if index is None else int(index), upload_sha256=sha or None,
                  file_name=fields.text("file_name"), item_id=fields.text("item_id"), true_class=true_class)


def _target_from(fields: _Fields) -> tuple[str, int | None]:
    raw = fields.get("target", (dict, str, int), 'an object {"mode": "pred"|"true"|"class", "class": N}')
    if raw is None:
        return "pred", None
    if isinstance(raw, (str, int)):  # shorthand: "pred", "true" or a class index
        raw = {"mode": raw} if isinstance(raw, str) else {"mode": "class", "class": raw}
    target = _Fields(raw, fields.where, fields.prefix + "target.", ("mode", "class"), ignored=("label",))
    mode = target.text("mode", '"pred", "true" or "class"') or "pred"
    if mode not in TARGET_MODES:
        raise target.error("mode", f"got {mode!r}", '"pred" (predicted class), "true" (true class) or "class"')
    class_index = target.class_index("class", required=mode == "class")
    return mode, class_index


def _top5_from(fields: _Fields) -> tuple[TopClass, ...]:
    raw = fields.get("top5", list, 'a list of {"class", "label", "probability"}', default=[])
    entries = []
    for position, item in enumerate(raw):
        entry = _Fields(item, fields.where, f"{fields.prefix}top5[{position}].", ("class", "label", "probability"))
        probability = entry.get("probability", (int, float), "a probability in [0, 1]", required=True)
        if not (math.isfinite(probability) and 0.0 <= probability <= 1.0):
            raise entry.error("probability", f"got {probability!r}", "a probability in [0, 1]")
        entries.append(TopClass(index=entry.class_index("class", required=True),
                                name=entry.text("label", "the class name", required=True),
                                probability=float(probability)))
    return tuple(entries)


def _pictures_from(fields: _Fields) -> Pictures | None:
    raw = fields.get("pictures", dict, 'an object {"original", "heatmap", "overlay"} of base64 PNGs')
    if raw is None:
        return None
    pictures = _Fields(raw, fields.where, fields.prefix + "pictures.", PICTURE_NAMES)
    decoded = {}
    for name in PICTURE_NAMES:
        text = pictures.text(name, "a base64 PNG", required=True)
        text = text.split(",", 1)[1] if text.startswith("data:") else text
        try:
            data = base64.b64decode(text, validate=True)
        except ValueError:
            raise pictures.error(name, "not valid base64", "a base64 PNG (or omit 'pictures' to recompute)") from None
        if not data.startswith(PNG_SIGNATURE):
            raise pictures.error(name, f"decodes to {data[:8]!r}..., not a PNG", "a base64 PNG")
        decoded[name] = data
    return Pictures(**decoded)


def _opacity_from(fields: _Fields) -> float:
    opacity = fields.get("opacity", (int, float), "a number between 0 and 1", default=0.5)
    if not (math.isfinite(opacity) and 0.0 <= opacity <= 1.0):
        raise fields.error("opacity", f"got {opacity!r}", "a number between 0 and 1")
    return float(opacity)


def _created_from(fields: _Fields) -> str:
    created = fields.text("created", 'an ISO 8601 time such as "2026-11-22T14:03:00+01:00"')
    if created:
        try:
            datetime.fromisoformat(created)
        except ValueError:
            raise fields.error("created", f"got {created!r}", 'an ISO 8601 time such as "2026-11-22T14:03:00+01:00"'
                               ) from None
    return created


def _compared_from(data: Any, where: str) -> ComparedModel:
    fields = _Fields(data, where, "compare.", ("workspace", "model_id", "layer", "target", "top5", "pictures"))
    mode, class_index = _target_from(fields)
    return ComparedModel(
        workspace=fields.text("workspace", "the second model's workspace (a bundled name or a .toml path)",
                              required=True),
        layer=fields.text("layer", "a layer name of the second model", required=True),
        model_id=fields.text("model_id", "the second model's id"),
        target_mode=mode, target_class=class_index, top5=_top5_from(fields), pictures=_pictures_from(fields),
    )


_FINDING_KEYS = ("kind", "workspace", "model_id", "sample", "layer", "method", "target", "opacity", "colormap",
                 "note", "created", "link", "top5", "pictures", "compare")


def _finding_from_dict(data: Any, where: str) -> Finding:
    fields = _Fields(data, where, "", _FINDING_KEYS, ignored=_IGNORED_KEYS)
    kind = fields.text("kind", '"view" or "compare"') or "view"
    if kind not in KINDS:
        raise fields.error("kind", f"got {kind!r}", '"view" (one model) or "compare" (two models side by side)')
    if "sample" not in fields.data:
        raise fields.error("sample", "missing", '{"index": N} (a test image) or {"upload_sha256": ..., '
                           '"file_name": ...}')
    sample = _sample_from(fields.data["sample"], where)
    mode, class_index = _target_from(fields)
    if mode == "true" and sample.is_upload:
        raise fields.error("target.mode", '"true" for an uploaded image, which has no true class',
                           '"pred" or "class"')
    compare = fields.get("compare", dict, "the second model of a comparison")
    if (kind == "compare") != (compare is not None):
        raise fields.error("compare", "missing for kind 'compare'" if compare is None else
                           f"given for kind {kind!r}", 'a "compare" object exactly when kind is "compare"')
    return Finding(
        kind=kind,
        workspace=fields.text("workspace", "a workspace (a bundled name or a .toml path)", required=True),
        model_id=fields.text("model_id", "the model's id (Workspace.model_id)"),
        sample=sample,
        layer=fields.text("layer", "a layer name of the model", required=True),
        method=fields.text("method", 'a CAM method name such as "gradcam"') or "gradcam",
        target_mode=mode,
        target_class=class_index,
        opacity=_opacity_from(fields),
        colormap=fields.text("colormap", 'a colormap name such as "jet"') or "jet",
        note=fields.text("note", "a string (the note shown under the finding)"),
        created=_created_from(fields),
        link=fields.text("link", "the dashboard link of the view"),
        top5=_top5_from(fields),
        pictures=_pictures_from(fields),
        compare=None if compare is None else _compared_from(compare, where),
    )


# ------------------------------------------------------------------------------------------ records -> JSON
def _pictures_to_dict(pictures: Pictures) -> dict[str, str]:
    return {name: base64.b64encode(data).decode("ascii") for name, data in pictures.items()}


def _top5_to_list(top5: Sequence[TopClass]) -> list[dict[str, Any]]:
    return [{"class": t.index, "label": t.name, "probability": t.probability} for t in top5]


def _target_to_dict(mode: str, class_index: int | None) -> dict[str, Any]:
    return {"mode": mode, "class": class_index}


def _sample_to_dict(sample: Sample) -> dict[str, Any]:
    if sample.is_upload:
        return {"upload_sha256": sample.upload_sha256, "file_name": sample.file_name}
    return {"index": sample.index, "item_id": sample.item_id, "true_class": sample.true_class}


def _finding_to_dict(finding: Finding, pictures: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": finding.kind, "workspace": finding.workspace, "model_id": finding.model_id,
        "sample": _sample_to_dict(finding.sample), "layer": finding.layer, "method": finding.method,
        "target": _target_to_dict(finding.target_mode, finding.target_class), "opacity": finding.opacity,
        "colormap": finding.colormap, "note": finding.note, "created": finding.created, "link": finding.link,
        "top5": _top5_to_list(finding.top5),
    }
    if pictures and finding.pictures is not None:
        out["pictures"] = _pictures_to_dict(finding.pictures)
    if finding.compare is not None:
        other = finding.compare
        out["compare"] = {"workspace": other.workspace, "model_id": other.model_id, "layer": other.layer,
                          "target": _target_to_dict(other.target_mode, other.target_class),
                          "top5": _top5_to_list(other.top5)}
        if pictures and other.pictures is not None:
            out["compare"]["pictures"] = _pictures_to_dict(other.pictures)
    return out


# ---------------------------------------------------------------------------------------------- pinning
def pin_view(view: Mapping[str, Any], pictures: Pictures | None = None, note: str = "",
             created: str | None = None) -> Finding:
    """A finding from the explorer's view JSON (``dashboard.explorer.view_payload``) and the pictures on screen
    (``report.pictures_from_arrays(original, heatmap, overlay)``): what "Add to report" pins."""
    finding = Finding.from_dict(view, where="the view to pin")
    return replace(finding, pictures=pictures or finding.pictures, note=note or finding.note,
                   created=created or finding.created or now_iso())


def pin_comparison(first: Finding, second: Finding, note: str = "") -> Finding:
    """One comparison finding from the same view pinned on two models (the "Compare models" page)."""
    if first.sample != second.sample or (first.method, first.opacity, first.colormap) != (
            second.method, second.opacity, second.colormap):
        raise ValueError("a comparison shows one image with one method, opacity and colormap on both models; got "
                         f"{first.sample.describe()} / {first.method} / {first.opacity} / {first.colormap} and "
                         f"{second.sample.describe()} / {second.method} / {second.opacity} / {second.colormap}")
    other = ComparedModel(workspace=second.workspace, layer=second.layer, model_id=second.model_id,
                          target_mode=second.target_mode, target_class=second.target_class, top5=second.top5,
                          pictures=second.pictures)
    return replace(first, kind="compare", compare=other, note=note or first.note)


# ------------------------------------------------------------------------------------------------- files
def findings_from_json(text: str, source: str = "findings.json") -> list[Finding]:
    """Parse the text of a findings file: a JSON list of findings (see the module docstring)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise FindingError(f"{source} is not valid JSON: {error.msg} at line {error.lineno}, column "
                           f"{error.colno}; expected a JSON list of findings") from None
    if not isinstance(data, list):
        raise FindingError(f"{source} holds a JSON {_json_type(data)}; expected a list of findings "
                           "([{...}, {...}]), even for one finding")
    return [Finding.from_dict(item, f"{source}: finding {n} of {len(data)}") for n, item in enumerate(data, 1)]


def findings_to_json(findings: Iterable[Finding], pictures: bool = True, indent: int | None = 2) -> str:
    """The findings file's text; ``pictures=False`` leaves the pictures out (they are recomputed when needed)."""
    return json.dumps([f.to_dict(pictures) for f in findings], indent=indent, ensure_ascii=False)


def load_findings(path: str | os.PathLike) -> list[Finding]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FindingError(f"findings file {str(path)!r} does not exist; pass the path of a findings.json "
                           "(a JSON list of findings, see report/README.md)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise FindingError(f"findings file {str(path)!r} could not be read ({error}); expected a UTF-8 JSON "
                           "file") from None
    return findings_from_json(text, source=str(path))


def write_atomically(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename: a reader never sees
    a half-written file, and a failure leaves the old file (or none) in place."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def save_findings(findings: Iterable[Finding], path: str | os.PathLike, pictures: bool = True) -> None:
    write_atomically(path, findings_to_json(findings, pictures) + "\n")


__all__ = [
    "KINDS",
    "PICTURE_NAMES",
    "TARGET_MODES",
    "ComparedModel",
    "Finding",
    "FindingError",
    "Pictures",
    "Sample",
    "TopClass",
    "findings_from_json",
    "findings_to_json",
    "load_findings",
    "now_iso",
    "pin_comparison",
    "pin_view",
    "save_findings",
    "write_atomically",
]
