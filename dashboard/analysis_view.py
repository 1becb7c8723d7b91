"""The misclassification-analysis page's parts: the confusion-matrix figure, the per-class table, the cell read
back from a chart click, grids of test images (plain or with Grad-CAM in the user's opacity and colormap) whose
buttons open the explorer, and the two fragments: the matrix with a cell's images, and the correct-vs-misclassified
grids (changing the class, layer or target reruns only the grids).

Every count comes from one aggregate (``Store.class_summary``: a GROUP BY label, pred over the precomputed store,
or over the rows classified here for a small set); the images of a cell or a class are queries that bring back
only the rows shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analysis.classification import top_confusions
from dashboard import figures
from dashboard.explorer_view import display_settings, open_in_explorer
from dashboard.predictions import accuracy_help
from dashboard.state import AnalysisState as A
from dashboard.store_gallery import Tile, render_tiles, tiles_from
from dashboard.workspaces import LoadedWorkspace
from gradcam_core import denormalise, softmax
from store import ClassSummary, RowFilter, Store

GRID_LIMIT = 8
CELL_LIMIT = 16
MATRIX_KEY = "analysis.matrix"
TARGETS = {"pred": "Predicted class", "true": "True class"}


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


def per_class_table(found: ClassSummary) -> pd.DataFrame:
    """Precision, recall, F1 (scikit-learn's definitions, zero_division=0), support, predicted-as, correct, mean
    loss and confidence per class: all from the one aggregate."""
    matrix = np.asarray(found.confusion, dtype=float)
    correct, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros_like(correct), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(correct),
                   where=precision + recall > 0)
    return pd.DataFrame({"class": found.class_names, "precision": precision, "recall": recall, "F1": f1,
                         "support": support.astype(int), "predicted as": predicted.astype(int),
                         "correct": correct.astype(int), "mean loss": found.mean_loss,
                         "mean confidence": found.mean_prob})


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


def overlay_pictures(pixels: Sequence[np.ndarray], cams: np.ndarray, opacity: float, colormap: str,
                     size: int = 128) -> list[np.ndarray]:
    """Grad-CAM over each image in the given opacity and colormap, enlarged with crisp pixels to about ``size``."""
    out = []
    for image, cam in zip(pixels, cams, strict=True):
        shown = figures.enlarge(image, figures.display_factor(*image.shape[:2], target=size))
        out.append(figures.overlay_picture(shown, cam, opacity, colormap))
    return out


# ------------------------------------------------------------------------------------------------ computations
@dataclass
class GridCams:
    indices: list[int]
    pixels: list[np.ndarray]  # (H, W, 3) uint8 each: the input as the model sees it
    cams: np.ndarray  # (K, h, w) float32 in [0, 1]
    targets: np.ndarray  # (K,) the class each map explains
    confidence: np.ndarray  # (K,) softmax probability of the explained class


@st.cache_data(show_spinner=False, max_entries=32)
def grid_cams(model_id: str, workspace_key: str, indices: tuple[int, ...], layer: str, target: str,
              _loaded: LoadedWorkspace) -> GridCams:
    """Grad-CAM at ``layer`` of several test images from ONE batched engine call. ``target``: "pred" explains
    each image's predicted class (what the model looked at when it decided), "true" its true class."""
    workspace = _loaded.workspace
    if not indices:
        return GridCams([], [], np.zeros((0, 1, 1), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))
    tensors = workspace.test_set.tensors(list(indices)).float()
    targets = None if target == "pred" else [int(workspace.test_set.label(i)) for i in indices]
    result = _loaded.engine.explain(tensors, layers=[layer], targets=targets, methods=("gradcam",))
    explained = np.asarray(result.targets, dtype=np.int64)
    return GridCams(
        indices=list(indices),
        pixels=[denormalise(tensors[i], workspace.mean, workspace.std) for i in range(len(indices))],
        cams=np.asarray(result.cams["gradcam"][layer], dtype=np.float32),
        targets=explained,
        confidence=softmax(result.logits, axis=1)[np.arange(len(indices)), explained].astype(np.float32),
    )


def class_sample(store: Store, chosen: int, correct: bool, limit: int = GRID_LIMIT, seed: int = 0) -> list[Tile]:
    """Up to ``limit`` images of true class ``chosen``, correctly classified or not: a seeded pick (ordered by a
    hash of the index, so the same store gives the same pick), fetched by one query."""
    condition = "pred = ?" if correct else "pred <> ?"
    table = store.query(f'SELECT "index", label, pred, prob, loss, margin FROM store_rows WHERE label = ? AND '
                        f'{condition} ORDER BY hash("index" + ?), "index" LIMIT ?',
                        [int(chosen), int(chosen), int(seed), int(limit)])
    return tiles_from(table)


# ------------------------------------------------------------------------------------------------ page parts
def seed_state(loaded: LoadedWorkspace, matrix: np.ndarray) -> None:
    """A first visit in this workspace opens on its most frequent mistake and its most-missed class."""
    mistakes = top_confusions(matrix, k=1)
    worst = mistakes[0] if mistakes else (0, 0, 0)
    A.true_class.setdefault(int(worst[0]))
    A.pred_class.setdefault(int(worst[1]))
    A.chosen_class.setdefault(int(np.argmax(matrix.sum(axis=1) - np.diag(matrix))))
    A.layer.setdefault(loaded.default_layer)
    A.target.setdefault(A.target.default)


def render_summary(loaded: LoadedWorkspace, found: ClassSummary) -> None:
    names, matrix = loaded.class_names, found.confusion
    labelled = int(matrix.sum())
    cols = st.columns(4)
    cols[0].metric("Test accuracy", "n/a" if found.accuracy is None else f"{found.accuracy:.1%}",
                   help=accuracy_help(loaded, found))
    cols[1].metric("Test images", f"{labelled + int(found.unlabelled.sum())}")
    cols[2].metric("Misclassified", f"{labelled - int(np.trace(matrix))}")
    mistakes = top_confusions(matrix, k=1)
    if mistakes:
        t, p, n = mistakes[0]
        cols[3].metric("Most frequent mistake", f"{names[t]} → {names[p]}", help=f"{n} images")
    if found.unlabelled.sum():
        st.caption(f"{int(found.unlabelled.sum()):,} test images have no label: they count in no cell.")


def _open(loaded: LoadedWorkspace) -> Callable[[int], None]:
    return lambda index: open_in_explorer(loaded, index, A.layer.get())


def _follow_matrix_click(class_names: Sequence[str]) -> None:
    """A click on a matrix cell selects it (read before the chart is drawn, so its highlight is already there)."""
    cell = selected_cell(st.session_state.get(MATRIX_KEY), class_names)
    if cell is not None and cell != A.last_cell.get():
        A.true_class.set(cell[0])
        A.pred_class.set(cell[1])
    A.last_cell.set(cell)


def render_matrix_and_table(loaded: LoadedWorkspace, found: ClassSummary) -> None:
    names = loaded.class_names
    _follow_matrix_click(names)
    matrix_col, table_col = st.columns([1.25, 1], gap="large")
    with table_col:
        st.markdown("**Per class**")
        st.dataframe(per_class_table(found), hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("precision", "recall", "F1", "mean loss", "mean confidence")})
        st.caption("precision: of the images predicted as the class, the share that are it · recall: of the "
                   "class's images, the share found · support: images of the class · mean loss and confidence "
                   "over the class's images")
    with matrix_col:
        st.markdown("**Confusion matrix** · click a cell to list its images")
        st.plotly_chart(confusion_figure(found.confusion, names, (A.true_class.get(), A.pred_class.get())),
                        on_select="rerun", selection_mode="points", key=MATRIX_KEY,
                        config={"displayModeBar": False})


@st.fragment
def cells_fragment(loaded: LoadedWorkspace, store: Store, found: ClassSummary) -> None:
    """The matrix, the per-class table and the images of one cell: a click or a cell choice reruns only this."""
    render_matrix_and_table(loaded, found)
    names, num_classes = loaded.class_names, len(loaded.class_names)
    st.subheader("Images of one cell", anchor=False)
    true_col, pred_col = st.columns(2)
    true_class = true_col.selectbox("True class", range(num_classes), key=A.true_class,
                                    format_func=lambda c: f"{c}: {names[c]}")
    pred_class = pred_col.selectbox("Predicted class", range(num_classes), key=A.pred_class,
                                    format_func=lambda c: f"{c}: {names[c]}")
    total = int(found.confusion[true_class, pred_class])
    if total == 0:
        st.info(f"No test image of class **{names[true_class]}** is predicted as **{names[pred_class]}**.")
        return
    tiles = tiles_from(store.page(RowFilter(label=true_class, pred=pred_class), sort="index", limit=CELL_LIMIT))
    st.caption(f"{len(tiles)} of {total:,} test images: true **{names[true_class]}**, predicted "
               f"**{names[pred_class]}** (the first by test index). Press one to open it in the explorer.")
    render_tiles(loaded, tiles, "analysis.cell", on_open=_open(loaded), columns=8)


def render_grid_column(loaded: LoadedWorkspace, tiles: list[Tile], count: int, ok: bool, chosen: int) -> None:
    names = loaded.class_names
    st.markdown(f"**{'✓ Correct' if ok else '✗ Misclassified'} · {names[chosen]}** · {len(tiles)} of {count:,}")
    if not tiles:
        st.info("None in the test split." if ok else "The model gets every test image of this class right.")
        return
    picked = tuple(t.index for t in tiles)
    with st.spinner(f"Grad-CAM of {len(picked)} images (one batched pass)…", show_time=True):
        cams = grid_cams(loaded.model_id, loaded.key, picked, A.layer.get(), A.target.get(), loaded)
    opacity, colormap = display_settings(loaded)
    captions = [f"{'' if ok else '→ '}{names[tile.pred]} ({confidence:.0%})"
                for tile, confidence in zip(tiles, cams.confidence, strict=True)]
    thumbnail_grid(picked, overlay_pictures(cams.pixels, cams.cams, opacity, colormap), captions,
                   f"analysis.{'ok' if ok else 'wrong'}", _open(loaded))


@st.fragment
def grids_fragment(loaded: LoadedWorkspace, store: Store, found: ClassSummary) -> None:
    """Grad-CAM of a class's correct and misclassified images side by side: one batched engine call per grid."""
    names = loaded.class_names
    st.subheader("Correct vs misclassified: where does the model look?", anchor=False)
    class_col, layer_col, target_col = st.columns([1.2, 2, 1.4])
    chosen = class_col.selectbox("Class", range(len(names)), key=A.chosen_class,
                                 format_func=lambda c: f"{c}: {names[c]}")
    layer = layer_col.selectbox("Grad-CAM layer", loaded.layers, key=A.layer, format_func=loaded.layer_label,
                                help="The last conv layer by default; a deeper layer is coarser but more semantic")
    target_col.segmented_control("Explain", list(TARGETS), key=A.target, required=True, format_func=TARGETS.get,
                                 help="Predicted: what the model looked at for the answer it gave")
    n_correct = int(found.confusion[chosen, chosen])
    n_wrong = int(found.confusion[chosen].sum()) - n_correct
    for column, (ok, count) in zip(st.columns(2, border=True, gap="medium"), ((True, n_correct), (False, n_wrong)),
                                   strict=True):
        with column:
            render_grid_column(loaded, class_sample(store, chosen, ok), count, ok, chosen)
    opacity, colormap = display_settings(loaded)
    st.caption(f"Grad-CAM at `{layer}` over each image, at the explorer's opacity {opacity:.2f} and colormap "
               f"{colormap}; captions give the predicted class and the probability of the explained class. Samples "
               "are a seeded random pick when there are more.")
