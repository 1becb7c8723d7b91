"""The embedding page's parts without a precomputed map: a t-SNE of a subset computed here on request — its
settings (perplexity clamped to what the image count allows), the features and embedding from the disk cache
(``analysis.features``, ``analysis.embedding``), the picked image's panel (a fragment: typing an index reruns only
the panel) — and what both modes share: the WebGL scatter figure and reading a selection back by image index.
With a store's map the page is drawn by ``store_embedding``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from analysis.disk_cache import default_cache_dir
from analysis.embedding import EmbeddingResult, cached_embedding, feature_separability, stored_embedding
from analysis.features import FeatureSet, dataset_id, features_key, stored_features, workspace_features
from dashboard import figures
from dashboard.explorer_view import open_in_explorer
from dashboard.state import TsneState as T
from dashboard.store_selection import selection_fragment
from dashboard.store_state import EmbeddingState as S
from dashboard.workspaces import LoadedWorkspace

ProgressFn = Callable[[float, str], None]
DEFAULT_MAX_POINTS = 2000
SUBSET_SEED = 0
MAX_PERPLEXITY, MIN_SLIDER_PERPLEXITY = 100, 5

COLOR_MODES = {"true": "True class", "pred": "Predicted class", "outcome": "Correct / misclassified"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
           "#756bb1", "#636363"]
CORRECT_COLOR, WRONG_COLOR = "#2f9e44", "#e03131"
#: Up to this many points, each carries a hover text with both class names; above it the hover names its group
#: (100,000 texts cost ~1 s to build and a few MB to send, on every draw).
HOVER_TEXT_LIMIT = 20_000


def _groups(labels: np.ndarray, predicted: np.ndarray, names: np.ndarray, color_by: str) -> list:
    correct = labels == predicted
    if color_by == "outcome":
        return [("correct", correct, CORRECT_COLOR), ("misclassified", ~correct, WRONG_COLOR)]
    key = labels if color_by == "true" else predicted
    return [(str(names[k]), key == k, PALETTE[k % len(PALETTE)]) for k in range(len(names)) if (key == k).any()]


def scatter_figure(xy: np.ndarray, indices: np.ndarray, labels: np.ndarray, predicted: np.ndarray,
                   confidence: np.ndarray, class_names: Sequence[str], color_by: str,
                   highlight: int | None = None, title: str | None = None) -> go.Figure:
    """One WebGL trace (``Scattergl``: 100,000 points stay fluid) per colour group, with a clickable legend;
    misclassified points are crosses in every mode.

    Every point carries its test index as ``customdata[0]`` (and its confidence as ``customdata[1]``), which
    ``selected_index`` / ``selected_indices`` read back: a selection names images, not positions in a trace.
    Hover text is built in the browser from a template, so the payload stays a few numbers per point.
    """
    xy, indices = np.asarray(xy, dtype=np.float32), np.asarray(indices, dtype=np.int64)
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    correct = labels == predicted
    names = np.asarray(list(class_names), dtype=object)
    with_text = len(indices) <= HOVER_TEXT_LIMIT
    figure = go.Figure()
    for name, mask, colour in _groups(labels, predicted, names, color_by):
        # Correct points first: the legend shows the first point's symbol, and the crosses are drawn on top.
        members = np.flatnonzero(mask)
        members = members[np.argsort(~correct[members], kind="stable")]
        figure.add_trace(go.Scattergl(
            x=xy[members, 0], y=xy[members, 1], mode="markers", name=name,
            marker={"color": colour, "size": np.where(correct[members], 5, 8),
                    "symbol": np.where(correct[members], "circle", "x"), "line": {"width": 0}, "opacity": 0.8},
            customdata=np.stack([indices[members], np.asarray(confidence, np.float32)[members]], axis=1),
            text=[f"true {names[t]} · predicted {names[p]}" for t, p in zip(labels[members], predicted[members],
                                                                           strict=True)] if with_text else None,
            hovertemplate="#%{customdata[0]:d} · " + ("%{text}" if with_text else name)
                          + " · %{customdata[1]:.0%}<extra></extra>",
        ))
    if highlight is not None and highlight in set(indices.tolist()):
        at = int(np.flatnonzero(indices == highlight)[0])
        figure.add_trace(go.Scattergl(x=[xy[at, 0]], y=[xy[at, 1]], mode="markers", name=f"#{highlight}",
                                      marker={"size": 18, "color": "rgba(0,0,0,0)",
                                              "line": {"width": 2.5, "color": "black"}},
                                      customdata=[[highlight, 0.0]], hoverinfo="skip"))
    figure.update_layout(
        height=620, margin={"l": 10, "r": 10, "t": 30, "b": 10}, clickmode="event+select", dragmode="lasso",
        legend={"title": {"text": COLOR_MODES[color_by]}, "itemsizing": "constant"},
        xaxis={"showticklabels": False, "title": None, "zeroline": False},
        yaxis={"showticklabels": False, "title": None, "zeroline": False, "scaleanchor": "x"},
        title={"text": title or "t-SNE of penultimate features · ✕ = misclassified · lasso or box to list images",
               "font": {"size": 14}},
    )
    return figure


def _point_indices(event) -> list[int]:
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return []
    found = []
    for point in points or []:
        data = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(data, dict):  # a row of a typed-array customdata arrives as {"0": index, "1": confidence}
            data = data.get("0", next(iter(data.values()), None))
        elif isinstance(data, (list, tuple)) and data:
            data = data[0]
        try:
            found.append(int(data))
        except (TypeError, ValueError):
            continue
    return found


def selected_index(event) -> int | None:
    """The test index of the first clicked/selected point of a ``st.plotly_chart(on_select=...)`` event."""
    found = _point_indices(event)
    return found[0] if found else None


def selected_indices(event) -> list[int]:
    """The test indices of every point of a click, box or lasso selection, read from each point's
    ``customdata[0]`` (never its position in a trace), each once, in the order selected."""
    return list(dict.fromkeys(_point_indices(event)))


# ------------------------------------------------------------------------------------------------ settings
def subset_indices(num_test: int, max_points: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """All test indices when ``max_points`` covers the split; else a seeded random subset, ascending (a random
    subset rather than the first ones: folder test sets are sorted by class)."""
    if max_points >= num_test:
        return np.arange(num_test, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_test, size=int(max_points), replace=False)).astype(np.int64)


def perplexity_limit(num_points: int) -> int:
    """The largest whole perplexity t-SNE can use for ``num_points`` images: it keeps 3 x perplexity neighbours,
    which must be fewer than the other images, so at most (N - 1) / 3 (and the slider's 100)."""
    return int(max(1, min(MAX_PERPLEXITY, (num_points - 1) // 3)))


def seed_state(num_test: int) -> None:
    T.max_points.setdefault(min(num_test, DEFAULT_MAX_POINTS))
    T.perplexity.setdefault(T.perplexity.default)
    T.color.setdefault(T.color.default)


def perplexity_control(column, num_points: int) -> int:
    """A slider up to the limit for ``num_points`` (the value moved down to it), or a note when the limit is so low
    that there is nothing to choose."""
    limit = perplexity_limit(num_points)
    T.perplexity.set(min(int(T.perplexity.get()), limit))
    if limit <= MIN_SLIDER_PERPLEXITY:
        column.markdown(f"Perplexity **{limit}**")
        column.caption(f"The most t-SNE allows for {num_points} images ((N − 1) / 3 = {(num_points - 1) / 3:.1f}).")
        return limit
    T.perplexity.set(max(int(T.perplexity.get()), MIN_SLIDER_PERPLEXITY))
    value = column.slider("Perplexity", MIN_SLIDER_PERPLEXITY, limit, step=5 if limit >= 30 else 1, key=T.perplexity,
                          help="About how many neighbours each point keeps close; 30 is the usual choice")
    if limit < MAX_PERPLEXITY:
        column.caption(f"At most {limit} for {num_points} images: t-SNE needs (N − 1) / 3 ≥ perplexity.")
    return int(value)


# ------------------------------------------------------------------------------------------------ cached data
def embedding_key(loaded: LoadedWorkspace) -> str:
    workspace = loaded.workspace
    return f"{loaded.model_id}|{dataset_id(workspace)}|{workspace.classifier_layer}"


def cached_features(loaded: LoadedWorkspace, indices: np.ndarray) -> FeatureSet | None:
    """The features of ``indices`` if they are on disk; never runs the model."""
    return stored_features(loaded.workspace, indices, default_cache_dir())


def split_features(loaded: LoadedWorkspace, indices: np.ndarray, progress: ProgressFn | None = None) -> FeatureSet:
    """Penultimate features of test images ``indices``: from disk, else batched no-grad forwards on the shared
    engine, ``progress(fraction, message)`` after every batch."""
    return workspace_features(loaded.workspace, indices, default_cache_dir(), engine=loaded.engine,
                              progress=progress)


def embedding(loaded: LoadedWorkspace, features: FeatureSet, perplexity: float, seed: int = 0,
              progress: ProgressFn | None = None) -> EmbeddingResult:
    """PCA to 50 dims then seeded t-SNE, from disk or computed (and stored)."""
    return cached_embedding(features.features, default_cache_dir(), embedding_key(loaded), progress=progress,
                            perplexity=float(perplexity), seed=int(seed), pca_dims=50)


def peek_embedding(loaded: LoadedWorkspace, features: FeatureSet, perplexity: float,
                   seed: int = 0) -> EmbeddingResult | None:
    """The stored embedding, or None when it would have to be computed (nothing is computed)."""
    return stored_embedding(features.features, default_cache_dir(), embedding_key(loaded),
                            perplexity=float(perplexity), seed=int(seed), pca_dims=50)


@st.cache_data(show_spinner=False, max_entries=16)
def separability(features_id: str, _features: FeatureSet) -> dict:
    """k-NN accuracy and silhouette of the classes in feature space (not in the 2-D embedding)."""
    return feature_separability(_features.features, _features.labels, seed=0)


def features_id(loaded: LoadedWorkspace, indices: np.ndarray) -> str:
    return features_key(loaded.workspace, indices)


# ------------------------------------------------------------------------------------------------ drawing
def stage_progress(bar, stage: str, start: float, width: float) -> ProgressFn:
    """A progress callback for one stage of a computation: the bar moves over its share, and the text says the
    count (from the stage's own message) and the seconds left at the stage's rate so far."""
    began = time.perf_counter()

    def report(fraction: float, message: str) -> None:
        elapsed = time.perf_counter() - began
        left = f", ~{elapsed * (1 - fraction) / fraction:.0f} s left" if fraction > 0 else ""
        bar.progress(min(start + width * fraction, 1.0), text=f"{stage}: {message}{left}")

    return report


def render_compute_prompt(loaded: LoadedWorkspace, indices: np.ndarray, perplexity: int) -> None:
    """Nothing stored yet: say what a computation costs, and compute on request (then draw the page again)."""
    estimate = 2.5e-3 * len(indices) + 3.5e-3 * len(indices)  # features + t-SNE, as measured on 2 busy CPU cores
    st.info(f"The t-SNE of these {len(indices)} images with perplexity {perplexity} has not been computed yet "
            f"(about {max(estimate, 2):.0f} s on a CPU). It is then kept on disk, so it opens at once next time, "
            "also after a restart.", icon=":material/scatter_plot:")
    if not st.button(f"Compute the t-SNE of {len(indices)} images", type="primary", icon=":material/play_arrow:",
                     key="tsne.compute"):
        return
    bar = st.progress(0.0, text="Starting…")
    started = time.perf_counter()
    features = split_features(loaded, indices, progress=stage_progress(bar, "Step 1 of 2", 0.0, 0.4))
    embedding(loaded, features, perplexity, progress=stage_progress(bar, "Step 2 of 2 (t-SNE)", 0.4, 0.6))
    bar.progress(1.0, text=f"Done in {time.perf_counter() - started:.1f} s")
    st.rerun()  # draw the page again without the button and the note, now from the disk cache


def render_metrics(loaded: LoadedWorkspace, features: FeatureSet, result: EmbeddingResult) -> None:
    num_test, indices = len(loaded.workspace.test_set), features.indices
    separation = separability(features_id(loaded, indices), features)
    cols = st.columns(4)
    cols[0].metric("Images", f"{len(indices)}", help=f"of {num_test} test images")
    cols[1].metric("k-NN accuracy (features)", f"{separation['knn_accuracy']:.1%}",
                   delta=f"chance {separation['knn_chance']:.1%}", delta_color="off",
                   help=f"Leave-one-out {separation['knn_k']}-nearest-neighbour accuracy in the full feature space "
                        "(not the 2-D picture): how well the classes separate where the classifier reads them")
    cols[2].metric("Silhouette (features)", f"{separation['silhouette']:.2f}",
                   help="Mean silhouette of the classes in feature space, -1 … 1: higher = tighter, better "
                        "separated classes")
    cols[3].metric("Misclassified", f"{int((~features.correct).sum())}", help="Among the images shown")
    source = {"computed": "just computed", "disk": "from the disk cache"}[result.source]
    st.caption(f"t-SNE {source} (its t-SNE step took {result.seconds:.1f} s, the features apart) · perplexity "
               f"{result.params['perplexity']:g} · seed {result.params.get('seed', 0)} · PCA kept "
               f"{result.pca_variance:.0%} of the variance · cache: `{default_cache_dir()}`")


def render_chart(features: FeatureSet, result: EmbeddingResult, class_names: Sequence[str], color_by: str) -> None:
    """The scatter; a clicked point becomes the picked image (once per click), a lasso or box the listed images."""
    figure = scatter_figure(result.xy, features.indices, features.labels, features.predicted, features.confidence,
                            class_names, color_by)
    event = st.plotly_chart(figure, on_select="rerun", selection_mode=("points", "box", "lasso"), key="tsne.chart",
                            config={"displayModeBar": True, "displaylogo": False, "scrollZoom": True})
    chosen = tuple(selected_indices(event))
    if chosen != S.selection.get():
        S.selection.set(chosen)
        S.page.set(0)
    clicked = chosen[0] if chosen else None
    if clicked is not None and clicked != T.last_selection.get():
        T.pick.set(clicked)
    T.last_selection.set(clicked)
    T.pick.setdefault(int(features.indices[0]))


@st.fragment
def picked_fragment(loaded: LoadedWorkspace, features: FeatureSet) -> None:
    """The picked image with its classes and a button to open it in the explorer."""
    class_names, test_set = loaded.class_names, loaded.workspace.test_set
    st.markdown("**Picked image**")
    pick = int(st.number_input("Test image #", min_value=0, max_value=len(test_set) - 1, step=1, key=T.pick,
                               help="Click a point in the chart, or type a test index"))
    position = {int(i): k for k, i in enumerate(features.indices)}.get(pick)
    st.image(figures.thumbnail(test_set.image(pick), None if position is None else bool(features.correct[position]),
                               size=160), width=160)
    if position is not None:
        true_name, pred_name = class_names[features.labels[position]], class_names[features.predicted[position]]
        st.markdown(f"true **{true_name}**  \npredicted **{pred_name}** ({features.confidence[position]:.1%})")
    else:
        st.caption("Not among the images in the chart.")
    if st.button(f"Open #{pick} in the explorer", type="primary", icon=":material/open_in_new:", width="stretch",
                 key="tsne.open"):
        open_in_explorer(loaded, pick)


def render_subset_page(loaded: LoadedWorkspace) -> None:
    """No precomputed map: a seeded subset's features and t-SNE, computed here when the user asks."""
    num_test = len(loaded.workspace.test_set)
    seed_state(num_test)
    st.caption(f"Each point is a test image, placed by its penultimate features (the input of "
               f"`{loaded.workspace.classifier_layer}`), reduced with PCA to 50 dimensions, then t-SNE. Images the "
               "model sees as alike sit together; ✕ marks a misclassified image.")
    points_col, perplexity_col, color_col = st.columns([1, 1.6, 2.2], vertical_alignment="bottom")
    max_points = points_col.number_input(
        "Images (max)", min_value=min(50, num_test), max_value=num_test, step=100, key=T.max_points,
        help=f"The whole test split has {num_test}; fewer are drawn at random (seeded) and computed faster.")
    indices = subset_indices(num_test, int(max_points))
    perplexity = perplexity_control(perplexity_col, len(indices))
    color_by = color_col.segmented_control("Colour by", list(COLOR_MODES), key=T.color, required=True,
                                           format_func=COLOR_MODES.get)
    features = cached_features(loaded, indices)
    result = peek_embedding(loaded, features, perplexity) if features is not None else None
    if result is None:
        render_compute_prompt(loaded, indices, perplexity)
        return
    render_metrics(loaded, features, result)
    chart_col, side_col = st.columns([3, 1], gap="medium")
    with chart_col:
        render_chart(features, result, loaded.class_names, color_by)
    with side_col:
        picked_fragment(loaded, features)
    selection_fragment(loaded, None, features)
