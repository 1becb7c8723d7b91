"""Typed TOML tables: a dataclass per table, fields declared once with their documentation.

    @dataclass(frozen=True)
    class DataTable:
        root: Path | None = spec("ImageFolder directory", expected="a folder path", kind=Path)

    data = parse_table(DataTable, raw["data"], TableContext(file, "data"))

``parse_table`` refuses unknown keys (with a close match when there is one), checks each value's type and
resolves paths against the TOML file's folder; every problem is a ``WorkspaceError`` naming the file, the field,
what was found and what is expected. ``markdown_table`` renders the same declarations as documentation, so the
field reference in models/README.md cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import WorkspaceError

_NO_DEFAULT = dataclasses.MISSING


def spec(doc: str, *, expected: str, kind: Any = str, default: Any = None, required: bool = False,
         example: str | None = None) -> Any:
    """A table field: ``kind`` is str, int, float, bool, dict, Path, ``list[str]``-like tuples (see ``_check``)
    or a tuple of those for "either"; ``expected`` says in words what a valid value looks like."""
    metadata = {"doc": doc, "expected": expected, "kind": kind, "required": required, "example": example}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TableContext:
    """Where a table comes from: the workspace file and the table's name ("" for the top level)."""

    file: Path
    section: str

    def where(self, field_name: str | None = None) -> str:
        if field_name is None:
            return f"[{self.section}]" if self.section else "top level"
        return f"{self.section}.{field_name}" if self.section else field_name

    def error(self, field_name: str | None, problem: str, expected: str) -> WorkspaceError:
        return WorkspaceError(f"workspace file {str(self.file)!r}, {self.where(field_name)}: {problem}; {expected}")

    def resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.file.parent / path)


def table_fields(cls) -> dict[str, dataclasses.Field]:
    return {name: f for name, f in cls.__dataclass_fields__.items() if "doc" in f.metadata}


def parse_table(cls, table: Any, context: TableContext, *, ignore: tuple[str, ...] = ()):
    """An instance of the dataclass ``cls`` from a TOML table, validated (see the module docstring)."""
    if not isinstance(table, dict):
        raise context.error(None, f"{table!r} is not a table", f"write it as a [{context.section}] table")
    fields = table_fields(cls)
    unknown = sorted(set(table) - set(fields) - set(ignore))
    if unknown:
        raise context.error(None, f"unknown field(s) {', '.join(_with_hint(u, fields) for u in unknown)}",
                            f"allowed here: {', '.join(sorted(fields))} (see models/README.md)")
    values = {}
    for name, field in fields.items():
        if name in table:
            values[name] = _check(table[name], field, context, name)
        elif field.metadata["required"]:
            raise context.error(name, "missing required field", f"expected {field.metadata['expected']}")
    return cls(**values)


def _with_hint(name: str, allowed) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1)
    return f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name)


def _check(value: Any, field: dataclasses.Field, context: TableContext, name: str) -> Any:
    kinds = field.metadata["kind"]
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    for kind in kinds:
        ok, converted = _convert(value, kind, context)
        if ok:
            return converted
    shown = f"{value!r} ({type(value).__name__})"
    raise context.error(name, f"got {shown}", f"expected {field.metadata['expected']}")


def _convert(value: Any, kind: Any, context: TableContext) -> tuple[bool, Any]:
    if isinstance(value, bool) and kind is not bool:
        return False, None
    if kind is Path:
        return (True, context.resolve(value)) if isinstance(value, str) and value else (False, None)
    if kind is float:
        return (True, float(value)) if isinstance(value, (int, float)) else (False, None)
    if kind in ("str-list", "float-list", "int-list"):
        item = {"str-list": str, "float-list": (int, float), "int-list": int}[kind]
        if isinstance(value, list) and value and all(isinstance(v, item) and not isinstance(v, bool) for v in value):
            return True, [float(v) for v in value] if kind == "float-list" else list(value)
        return False, None
    return (True, value) if isinstance(value, kind) else (False, None)


def markdown_table(cls, title: str) -> str:
    """The fields of a table as a markdown table: field, what it is, expected value, default."""
    rows = [f"**{title}**", "", "| field | what | expected | default |", "|---|---|---|---|"]
    for name, field in table_fields(cls).items():
        meta = field.metadata
        if meta["required"]:
            default = "required"
        elif field.default_factory is not _NO_DEFAULT:  # type: ignore[misc]
            default = "`{}`"
        else:
            default = "—" if field.default is None else f"`{field.default!r}`"
        rows.append(f"| `{name}` | {meta['doc']} | {meta['expected']} | {default} |")
    return "\n".join(rows)
