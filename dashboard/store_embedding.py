"""The embedding page on a precomputed store: the 2-D map ``gradcam precompute`` computed (openTSNE) drawn at once,
up to 100,000 points with WebGL, coloured by true or predicted class or outcome, and a lasso or box selection
that lists the selected images below (``store_selection``).

The map is one query for its coordinates (no embedding vectors); the class separation in feature space is
measured on a seeded subset of the stored embeddings; nothing runs the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from analysis.embedding import feature_separability
from dashboard.predictions import store_token
from dashboard.store_selection import SELECTION_FRAGMENT, selection_fragment
from dashboard.store_state import EmbeddingState
from dashboard.tsne_view import COLOR_MODES, scatter_figure, selected_indices
from dashboard.workspaces import LoadedWorkspace
from store import Store
from store.reader import MAX_MAP_POINTS

MAP_FRAGMENT, CHART_KEY = "embedding.map", "embedding.chart"
SEPARABILITY_POINTS = 2_000


@dataclass(frozen=True)
class MapPoints:
    indices: np.ndarray  # (N,) int64 test indices
    xy: np.ndarray  # (N, 2) float32
    labels: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray


@st.cache_data(show_spinner=False, max_entries=8)
def map_points(model_id: str, token: str, max_points: int, _store: Store) -> MapPoints:
    """Coordinates and classes of up to ``max_points`` images (a seeded subset above that), one query."""
    table = _store.map_points(max_points=int(max_points))
    return MapPoints(table["index"].to_numpy(), np.stack([table["map_x"].to_numpy(), table["map_y"].to_numpy()],
                                                         axis=1).astype(np.float32),
                     table["label"].to_numpy(), table["pred"].to_numpy(), table["prob"].to_numpy())


@st.cache_data(show_spinner=False, max_entries=8)
def store_separability(model_id: str, token: str, _store: Store) -> dict | None:
    """k-NN accuracy and silhouette of the classes on up to ``SEPARABILITY_POINTS`` stored embeddings (seeded)."""
    picked = _store.query('SELECT "index", label FROM store_rows WHERE label >= 0 ORDER BY hash("index"), "index" '
                          "LIMIT ?", [SEPARABILITY_POINTS])
    indices, labels = picked["index"].to_numpy(), picked["label"].to_numpy()
    if len(indices) < 3:
        return None
    found, vectors = _store.embeddings(indices)
    order = {int(i): k for k, i in enumerate(indices)}
    return feature_separability(vectors, labels[[order[int(i)] for i in found]], seed=0)


def on_map_select() -> None:
    """A lasso, box or click on the map: the selected images become the list below, which reruns alone."""
    EmbeddingState.selection.set(tuple(selected_indices(st.session_state.get(CHART_KEY))))
    EmbeddingState.page.set(0)
    st.rerun([SELECTION_FRAGMENT])


def render_header(loaded: LoadedWorkspace, store: Store) -> None:
    info = store.manifest.get("map", {})
    placed = int(info.get("placed_points") or 0)
    how = f"fitted on {int(info.get('fit_points', 0)):,} images" + (f", {placed:,} more placed on it" if placed else "")
    st.caption(f"Each point is a test image, placed by {info.get('method', 'openTSNE')} on its penultimate features "
               f"(the input of `{loaded.workspace.classifier_layer}`): images the model sees as alike sit together; "
               f"✕ marks a misclassified image. The map was computed once by `gradcam precompute` ({how}, "
               f"perplexity {info.get('perplexity', '?')}, {float(info.get('seconds', 0)):.0f} s) and is read from "
               f"`{store.path.name}`. Draw a lasso or a box to list images below.")


def render_metrics(cols, loaded: LoadedWorkspace, store: Store, points: MapPoints) -> None:
    """Into ``cols`` (made above the map, filled after it: the k-NN and silhouette take seconds the first time)."""
    cols[0].metric("Images", f"{len(points.indices):,}", help=f"of {store.num_rows:,} in the store")
    wrong = int((points.labels != points.predicted).sum())
    cols[3].metric("Misclassified", f"{wrong:,}", help="Among the images shown")
    with cols[1], st.spinner("Class separation…"):
        separation = store_separability(loaded.model_id, store_token(store), store)
    if separation is None:
        return
    cols[1].metric("k-NN accuracy (features)", f"{separation['knn_accuracy']:.1%}",
                   delta=f"chance {separation['knn_chance']:.1%}", delta_color="off",
                   help=f"Leave-one-out {separation['knn_k']}-nearest-neighbour accuracy of the classes in the stored "
                        f"embeddings of {separation['n_samples']:,} images (seeded), not in the 2-D picture")
    cols[2].metric("Silhouette (features)", f"{separation['silhouette']:.2f}",
                   help="Mean silhouette of the classes in the stored embeddings, -1 … 1: higher = tighter, better "
                        "separated classes")


@st.fragment(key=MAP_FRAGMENT)
def map_fragment(loaded: LoadedWorkspace, store: Store) -> None:
    """The controls and the map; a selection on it reruns only the list below (``on_map_select``)."""
    limit = min(store.num_rows, MAX_MAP_POINTS)
    EmbeddingState.max_points.setdefault(limit)
    points_col, color_col = st.columns([1, 2.4], vertical_alignment="bottom")
    max_points = points_col.number_input(
        "Images (max)", min_value=min(100, limit), max_value=limit, step=1000, key=EmbeddingState.max_points,
        help=f"Up to {MAX_MAP_POINTS:,} points are drawn with WebGL; above that, a seeded subset.")
    color_by = color_col.segmented_control("Colour by", list(COLOR_MODES), key=EmbeddingState.color,
                                           required=True, format_func=COLOR_MODES.get)
    points = map_points(loaded.model_id, store_token(store), int(max_points), store)
    metric_cols = st.columns(4)
    figure = scatter_figure(points.xy, points.indices, points.labels, points.predicted, points.confidence,
                            loaded.class_names, color_by,
                            title=f"{len(points.indices):,} test images · ✕ = misclassified · lasso or box to list "
                                  "them")
    st.plotly_chart(figure, on_select=on_map_select, selection_mode=("points", "box", "lasso"), key=CHART_KEY,
                    config={"displayModeBar": True, "displaylogo": False, "scrollZoom": True})
    render_metrics(metric_cols, loaded, store, points)


def render_store_map(loaded: LoadedWorkspace, store: Store) -> None:
    EmbeddingState.color.setdefault(EmbeddingState.color.default)
    render_header(loaded, store)
    map_fragment(loaded, store)
    selection_fragment(loaded, store)
