"""Model sources: one module per ``[model] source`` value, found by itself (adding a source is one file).

Each module has ``NAME``, ``Table`` (its ``[model]`` fields, a dataclass built on ``base.ModelTable``) and
``load(table, context) -> base.LoadedModel``; ``EXTRA`` names the pip extra it needs, if any.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from types import ModuleType

from models.schema import TableContext

_NOT_SOURCES = {"base"}
#: keys that make the source unambiguous when ``source`` is left out
_INFERRED_FROM = (("torchscript", "torchscript"), ("file", "torchscript"), ("arch", "torchvision"),
                  ("factory", "python"), ("path", "huggingface"))


@functools.cache
def sources() -> dict[str, ModuleType]:
    """``{NAME: module}`` of every source module in this package."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_SOURCES:
            module = importlib.import_module(f"{__name__}.{info.name}")
            found[module.NAME] = module
    return found


def source_for(table: dict, context: TableContext) -> tuple[ModuleType, dict]:
    """The source module a ``[model]`` table asks for, and the table with old spellings updated.

    ``source`` may be left out when another key makes it unambiguous (``arch`` alone still means torchvision).
    The old ``torchscript = "model.pt"`` (with ``arch``) means ``source = "torchscript"`` with ``file``."""
    table = dict(table)
    if "class" in table or "module" in table:
        raise context.error(None, "unknown field(s) " + ", ".join(repr(k) for k in ("class", "module") if k in table)
                            + _class_module_hint(table), "see models/README.md for the fields of each source")
    if "torchscript" in table and "file" not in table:
        table["file"] = table.pop("torchscript")
        table.setdefault("source", "torchscript")
    known = sources()
    name = table.get("source")
    if name is None:
        name = next((source for key, source in _INFERRED_FROM if key in table), None)
        if name is None:
            raise context.error("source", "no model given",
                                f'set source = one of {", ".join(repr(n) for n in known)} with its fields, e.g. '
                                'source = "python" and factory = "nets.py:MyNet" (see models/README.md)')
        table["source"] = name
    if name not in known:
        raise context.error("source", f"unknown source {name!r}",
                            f"use one of {', '.join(repr(n) for n in known)}")
    return known[name], table


def _class_module_hint(table: dict) -> str:
    module = str(table.get("module", "nets.py"))
    module = module if module.endswith(".py") or "." in module else f"{module}.py"
    return (f' (for your own model class write source = "python" and factory = '
            f'"{module}:{table.get("class", "MyNet")}")')
