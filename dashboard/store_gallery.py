"""Gallery tiles from store rows, shared by the explorer's gallery, the embedding page's selection and the analysis
page's cell: a framed thumbnail (or a placeholder for a file that cannot be read), a two-line caption and a
``#<index>`` button.

Rows come from store queries (``Store.page`` / ``Store.rows``: only the shown rows and columns); thumbnails are
decoded here, 20 at a time, and encoded once (``st.cache_data``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import streamlit as st
from PIL import Image, ImageDraw

from dashboard import figures
from dashboard.workspaces import LoadedWorkspace
from models import WorkspaceError

TILE_COLUMNS = ("index", "label", "pred", "prob", "loss", "margin")
PLACEHOLDER_RGB = (233, 236, 239)


@dataclass(frozen=True)
class Tile:
    """One gallery image: what its caption and frame say (``label`` -1: none; ``pred`` -1: not classified)."""

    index: int
    label: int
    pred: int
    prob: float
    loss: float | None
    margin: float

    @property
    def correct(self) -> bool | None:
        return None if self.label < 0 or self.pred < 0 else self.label == self.pred


def tiles_from(table: pa.Table) -> list[Tile]:
    """Tiles of the rows of a store query (in the table's order)."""
    columns = {name: table[name].to_pylist() for name in TILE_COLUMNS}
    return [Tile(int(i), int(t), int(p), float(c), None if loss is None else float(loss), float(m))
            for i, t, p, c, loss, m in zip(*(columns[n] for n in TILE_COLUMNS), strict=True)]


def placeholder_picture(size: int = 96) -> np.ndarray:
    """A grey tile with a cross: the file could not be read."""
    picture = Image.new("RGB", (size, size), PLACEHOLDER_RGB)
    draw = ImageDraw.Draw(picture)
    margin = size // 3
    for start, end in (((margin, margin), (size - margin, size - margin)), ((margin, size - margin),
                                                                              (size - margin, margin))):
        draw.line([start, end], fill=(173, 181, 189), width=3)
    return np.asarray(picture)


@st.cache_data(show_spinner=False, max_entries=64)
def tile_pictures(model_id: str, workspace_key: str, indices: tuple[int, ...], correct: tuple[bool | None, ...],
                  _loaded: LoadedWorkspace) -> list[bytes | None]:
    """PNG bytes of the framed thumbnails (None: the file cannot be read), decoded and encoded once."""
    test_set = _loaded.workspace.test_set
    pictures: list[bytes | None] = []
    for index, ok in zip(indices, correct, strict=True):
        try:
            pictures.append(figures.png_bytes(figures.thumbnail(test_set.image(index), ok)))
        except WorkspaceError:  # recorded in test_set.skipped; the page lists it
            pictures.append(None)
    return pictures


def tile_caption(tile: Tile, class_names: Sequence[str], shows: str | None = None) -> str:
    """Two lines for every tile, so the buttons of a row line up: the outcome, and true → predicted class."""
    true_name = class_names[tile.label] if tile.label >= 0 else "?"
    if tile.pred < 0:
        return f"{true_name}  \n:gray[not classified]"
    pred_name = class_names[tile.pred]
    value = {"loss": "" if tile.loss is None else f"loss {tile.loss:.2f}", "prob": f"{tile.prob:.0%} sure",
             "margin": f"margin {tile.margin:.2f}"}.get(shows or "", "")
    if tile.correct is None:
        return f"→ {pred_name}  \n:gray[{value or 'no label'}]"
    if tile.correct:
        return f":green[✓ {true_name}]  \n:gray[{value or 'correct'}]"
    return f":red[✗ {true_name}]  \n→ {pred_name}{f' · {value}' if value else ''}"


def render_tiles(loaded: LoadedWorkspace, tiles: Sequence[Tile], key: str, *, selected: int | None = None,
                 on_pick: Callable[[int], None] | None = None, on_open: Callable[[int], None] | None = None,
                 shows: str | None = None, columns: int = 5) -> None:
    """Tiles in a grid, each with a ``#<index>`` button: ``on_pick(index)`` as its callback (a fragment rerun),
    or ``on_open(index)`` called inline when pressed (so it may switch pages). Unreadable files get a
    placeholder and a disabled button."""
    names = [*loaded.class_names, "not classified yet"]  # names[-1]: a tile without a prediction
    pictures = tile_pictures(loaded.model_id, loaded.key, tuple(t.index for t in tiles),
                             tuple(t.correct for t in tiles), loaded)
    grid = st.grid(columns, gap="xsmall", min_column_width=64)
    for tile, picture in zip(tiles, pictures, strict=True):
        readable = picture is not None
        verdict = {None: "no label" if tile.pred >= 0 else "", True: "correct", False: "misclassified"}[tile.correct]
        with grid.cell():
            st.image(picture if readable else placeholder_picture(), width="stretch",
                     caption=tile_caption(tile, names, shows) if readable else ":orange[unreadable]  \n:gray[file]")
            pressed = st.button(
                f"#{tile.index}", key=f"{key}.{tile.index}", width="stretch", disabled=not readable,
                type="primary" if tile.index == selected else "secondary",
                on_click=on_pick, args=(tile.index,) if on_pick is not None else None,
                help=(f"Show test image #{tile.index} · true: {names[tile.label] if tile.label >= 0 else '?'} · "
                      f"predicted: {names[tile.pred]}"
                      + (f" ({tile.prob:.0%}, {verdict})" if tile.pred >= 0 else "")) if readable else
                     f"Test image #{tile.index} cannot be read (see the list of unreadable files)")
            if pressed and on_open is not None:
                on_open(tile.index)


def render_unreadable(files: Sequence[tuple[str, str]], limit: int = 10) -> None:
    """The unreadable files met so far (and those the store skipped), each with why."""
    if not files:
        return
    listing = "\n".join(f"- `{path}`: {why}" for path, why in files[:limit])
    more = f"\n\n…and {len(files) - limit} more." if len(files) > limit else ""
    st.warning(f"**{len(files)} image file(s) of the test folder could not be read and are left out:**\n\n"
               f"{listing}{more}", icon=":material/warning:")
