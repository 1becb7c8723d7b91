"""The misclassification-analysis page's pieces: the confusion-matrix figure, the per-class table, the cell read
back from a chart click, and a grid of test images (plain or with Grad-CAM) whose buttons open the explorer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import figures

GRID_LIMIT = 8
CELL_LIMIT = 16


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], highlight: tuple[int, int] | None = None
                     ) -> go.Figure:
    """Rows true class, columns predicted; colour = share of the true class (so small mistakes stay visible next
    to large diagonals), text = count."""
    matrix = np.asarray(matrix)
    names = [str(n) for n in class_names]
    support = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, support, out=np.zeros(matrix.shape, float), where=support > 0)
    hover = [[f"true <b>{names[t]}</b> → predicted <b>{names[p]}</b><br>{matrix[t, p]} images "
              f"({share[t, p]:.1%} of {names[t]})" for p in range(len(names))] for t in range(len(names))]
    figure = go.Figure(go.Heatmap(
        z=share, x=names, y=names, text=matrix, texttemplate="%{text}", hovertext=hover, hoverinfo="text",
        colorscale="Blues", zmin=0, zmax=1, xgap=1, ygap=1,
        colorbar={"title": {"text": "share of<br>true class"}, "tickformat": ".0%", "thickness": 12},
    ))
    if highlight is not None:
        t, p = highlight
        figure.add_shape(type="rect", x0=p - 0.5, x1=p + 0.5, y0=t - 0.5, y1=t + 0.5,
                         line={"color": "#e03131", "width": 3})
    size = max(360, min(720, 46 * len(names) + 160))
    figure.update_layout(
        height=size, margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"title": {"text": "predicted class"}, "side": "bottom", "type": "category", "tickangle": -40
               if max(len(n) for n in names) > 6 else 0, "automargin": True},
        yaxis={"title": {"text": "true class"}, "autorange": "reversed", "type": "category", "automargin": True},
    )
    return figure


def selected_cell(event, class_names: Sequence[str]) -> tuple[int, int] | None:
    """(true, predicted) of a clicked confusion-matrix cell from a ``st.plotly_chart(on_select="rerun")`` event."""
    names = [str(n) for n in class_names]
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points or []:
        x, y = point.get("x"), point.get("y")
        if str(x) in names and str(y) in names:
            return names.index(str(y)), names.index(str(x))
    return None


def metrics_table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows)[["name", "precision", "recall", "f1", "support", "predicted", "correct"]]
    return table.rename(columns={"name": "class", "f1": "F1", "predicted": "predicted as"})


def thumbnail_grid(indices: Sequence[int], pictures: Sequence[np.ndarray], captions: Sequence[str | None], key: str,
                   on_open: Callable[[int], None], help_texts: Sequence[str] | None = None, columns: int = 4) -> None:
    """Pictures in a grid, each with a button "#i" that calls ``on_open(i)`` (inline, not as a callback, so it
    may switch pages)."""
    grid = st.grid(columns, gap="xsmall", min_column_width=72)
    for n, (index, picture, caption) in enumerate(zip(indices, pictures, captions, strict=True)):
        with grid.cell():
            st.image(picture, width="stretch", caption=caption)
            if st.button(f"#{int(index)}", key=f"{key}.{int(index)}", width="stretch",
                         help=(help_texts[n] if help_texts else f"Open test image #{int(index)} in the explorer")):
                on_open(int(index))


def overlay_pictures(pixels: Sequence[np.ndarray], cams: np.ndarray, size: int = 128) -> list[np.ndarray]:
    """Grad-CAM over each image, enlarged with crisp pixels to about ``size``."""
    out = []
    for image, cam in zip(pixels, cams, strict=True):
        shown = figures.enlarge(image, figures.display_factor(*image.shape[:2], target=size))
        out.append(figures.overlay_picture(shown, cam, 0.5, "jet"))
    return out


def thumbnails(test_set, indices: Sequence[int], correct: Sequence[bool]) -> list[np.ndarray]:
    return [figures.thumbnail(test_set.image(int(i)), bool(ok)) for i, ok in zip(indices, correct, strict=True)]
