"""The workspace TOML file: reading it, and its tables other than ``[model]`` (whose fields each source owns).

    name = "pets"                       # optional: default the file's stem
    [model]
    source = "python"                   # see models/sources/
    factory = "nets.py:PetNet"
    checkpoint = "pets.pt"
    [data]
    root = "images"                     # an ImageFolder: images/<class>/<files>
    [preprocessing]
    input_size = [224, 224]

Relative paths resolve against the TOML file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import WorkspaceError
from models.schema import TableContext, spec

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SECTIONS = ("model", "data", "preprocessing")


@dataclass(frozen=True)
class TopTable:
    """Top-level fields."""

    name: str | None = spec("the workspace's short name (ids, links, caches); default: the file's stem",
                            expected="letters, digits, '-', '_' or '.', starting with a letter or digit")
    title: str | None = spec("a human title for the sidebar; default: the name", expected="a string")
    description: str | None = spec("one or two sentences for the sidebar", expected="a string")
    warning: str | None = spec("a warning shown prominently on every page (e.g. a known shortcut)",
                               expected="a string")
    shortcut: bool = spec("the model is known to use a shortcut (the dashboard says so, and compares what it looks "
                          "at with the object)", kind=bool, default=False, expected="true or false")


@dataclass(frozen=True)
class DataTable:
    """``[data]``: the test images the dashboard browses."""

    root: Path | None = spec("an ImageFolder directory: root/<class name>/<image files>", kind=Path,
                             expected="a folder path relative to the .toml")
    class_map: dict = spec("folder name -> class name, for folders not named like the classes", kind=dict,
                           default={}, expected='a table of folder = "class name" pairs, e.g. { n01440764 = "tench" }')
    store: Path | None = spec("the precomputed store of this workspace (`gradcam precompute --out`); default: "
                              "<toml file stem>.store/ beside the .toml when it exists", kind=Path,
                              expected="a folder path relative to the .toml, or absolute")
    factory: str | None = spec("instead of root: a Python callable factory(transform, **kwargs) returning an ImageSet",
                               expected='"package.module:function"')
    kwargs: dict = spec("keyword arguments for the data factory", kind=dict, default={}, expected="a table")


@dataclass(frozen=True)
class PreprocessingTable:
    """``[preprocessing]``: overrides what the model's source says (else 224×224, ImageNet mean/std)."""

    input_size: int | list | None = spec("the size the model sees", kind=(int, "int-list"),
                                         expected="a positive int or [height, width]")
    resize: int | None = spec("resize the shorter side to this, then centre-crop input_size", kind=int,
                              expected="a positive int at least as large as input_size (e.g. 256 for 224)")
    mean: list | None = spec("normalisation mean per RGB channel", kind="float-list", expected="three numbers")
    std: list | None = spec("normalisation standard deviation per RGB channel", kind="float-list",
                            expected="three positive numbers")
    interpolation: str | None = spec("resampling filter", expected='"bilinear", "bicubic", "nearest" or "lanczos"')


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise WorkspaceError(f"workspace file {str(path)!r} does not exist; give the path to a .toml workspace file "
                             "(see models/README.md) or a bundled workspace name")
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise WorkspaceError(f"workspace file {str(path)!r} is not valid TOML: {error}; fix the syntax (strings in "
                             'quotes, lists in [ ], tables as [model] / [data])') from error
    except UnicodeDecodeError as error:
        raise WorkspaceError(f"workspace file {str(path)!r} is not UTF-8 text ({error})") from error
    if "model" not in raw:
        raise TableContext(path, "").error(None, "missing [model] table",
                                           "see models/README.md for an example workspace file")
    return raw


def workspace_name(top: TopTable, path: Path, context: TableContext) -> str:
    name = top.name or path.stem
    if not _NAME_PATTERN.match(name):
        raise context.error("name", f"got {name!r}",
                            "expected letters, digits, '-', '_' or '.', starting with a letter or digit")
    return name
