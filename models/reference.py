"""The workspace file's field reference, generated from the table declarations (models/README.md shows it).

    python -m models.reference          # rewrite the reference section of models/README.md

A test checks that the README holds exactly what this generates, so the documentation cannot drift.
"""

from __future__ import annotations

from pathlib import Path

from models.schema import markdown_table
from models.sources import sources
from models.sources.base import ModelTable
from models.workspace_file import DataTable, PreprocessingTable, TopTable

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- fields:start -->", "<!-- fields:end -->"


def field_reference() -> str:
    """Markdown tables of every workspace-file field: top level, [model] per source, [data], [preprocessing]."""
    parts = [markdown_table(TopTable, "Top level"), markdown_table(ModelTable, "[model], every source")]
    common = set(ModelTable.__dataclass_fields__)
    for name, module in sources().items():
        own = type("Fields", (), {})  # only the fields this source adds to the common ones
        own.__dataclass_fields__ = {k: v for k, v in module.Table.__dataclass_fields__.items() if k not in common}
        extra = f" (needs `pip install -e .[{module.EXTRA}]`)" if getattr(module, "EXTRA", None) else ""
        parts.append(markdown_table(own, f'[model] source = "{name}"{extra}'))
    parts += [markdown_table(DataTable, "[data]"), markdown_table(PreprocessingTable, "[preprocessing]")]
    return "\n\n".join(parts)


def write_reference(readme: Path = README) -> bool:
    """Replace the text between the markers; True when the file changed."""
    text = readme.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{field_reference()}\n{END}{tail}"
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    print("models/README.md " + ("updated" if write_reference() else "already up to date"))
