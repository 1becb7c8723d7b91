"""Which explanation can I trust? The Faithfulness page and the explorer's deletion/insertion panel.

Everything here is computed by ``gradcam_core.faithfulness`` and ``gradcam_core.sanity``; this module chooses the
inputs (a seeded sample of test images, their object masks, a shortcut workspace's marker boxes), shows progress,
keeps the results, and says what they mean in plain words.

Progress and caching: a long computation draws an ``st.progress`` bar, and a bar may not be drawn inside an
``st.cache_data`` function (the cache would replay the bar's updates on a hit, and fails to: the bar was made
outside it). So each result has a *store*: an ``st.cache_data`` function of the ids and strings that identify it
plus an unhashed ``_value``. ``stored_or_computed`` first asks the store with no value — a hit returns the kept
result; a miss raises ``NotStored``, which Streamlit does not keep — then computes outside the cache, with the bar,
and hands the result to the store. Keys are ids and strings (workspace key, model id, sample key, counts, seeds,
layer and method names), never tensors or models.

Threads: the table and the sanity check run with one torch thread (``one_torch_thread``). On a busy 2-core
machine two intra-op threads made ROAD's many small solves pathologically slow (the metrics' author measured
38-53 s for the default shapes table with one thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from dashboard.explorer_link import ViewChoice
from dashboard.samples import Sample
from dashboard.state import FaithfulnessState as F
from dashboard.workspaces import LoadedWorkspace
from gradcam_core import CAM_METHODS
from gradcam_core.faithfulness import (
    TABLE_METHODS,
    FaithfulnessTable,
    deletion_insertion_curves,
    faithfulness_table,
    table_layers,
)
from gradcam_core.sanity import SANITY_METHODS, SanityResult, sanity_check
from gradcam_core.scorecam import score_cam

if TYPE_CHECKING:  # pandas is imported when a table is shown: the explorer's first heatmap never waits for it
    import pandas as pd

T = TypeVar("T")
ProgressFn = Callable[[int, int], None]


# ------------------------------------------------------------------------------ stored results, progress
class NotStored(LookupError):
    """A store was asked for a result it does not hold (raised inside ``st.cache_data``: nothing is kept)."""


def require(value: T | None) -> T:
    """The body of every store: the value handed in, or ``NotStored`` when the caller only asked."""
    if value is None:
        raise NotStored
    return value


def stored_or_computed(store: Callable[..., T], key: tuple, compute: Callable[[], T]) -> T:
    """``store(*key)`` when it holds the result; else ``compute()`` — outside the cache, so it may draw progress —
    handed to the store and returned."""
    try:
        return store(*key)
    except NotStored:
        pass
    return store(*key, _value=compute())


def progress_bar(text: str) -> tuple[Any, ProgressFn]:
    """An ``st.progress`` bar and a ``progress(done, total)`` callback that moves it (the core's convention)."""
    bar = st.progress(0.0, text=text)

    def report(done: int, total: int) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{text} {done:,} of {total:,}")

    return bar, report


_THREADS_LOCK = threading.Lock()
_THREADS = {"running": 0, "default": 0}  # computations inside one_torch_thread; the count they found before


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the body with one torch intra-op thread, then give the calling thread the process's count back.

    With torch's OpenMP backend ``set_num_threads`` sets the calling thread's count and the default of threads
    started later; threads already running keep theirs. So each computation sets and restores its own thread, and
    the count to restore is the one found by the first of overlapping computations: a thread started while another
    computation held one thread inherited 1, which must not become the process's default.
    """
    with _THREADS_LOCK:
        if _THREADS["running"] == 0:
            _THREADS["default"] = torch.get_num_threads()
        _THREADS["running"] += 1
        default = _THREADS["default"]
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(default)
        with _THREADS_LOCK:
            _THREADS["running"] -= 1


# ----------------------------------------------------------------------------------------- the metrics
@dataclass(frozen=True)
class MetricInfo:
    label: str
    higher_is_better: bool | None  # None: a finding (where the map points), not a score to improve
    explanation: str  # one sentence for someone who has never heard of the metric


METRICS: dict[str, MetricInfo] = {
    "deletion": MetricInfo(
        "Deletion AUC ↓", False,
        "The pixels the map calls most important are blanked out first, step by step; if the model's confidence in "
        "the class drops quickly, the map found what the model relies on — lower is better."),
    "insertion": MetricInfo(
        "Insertion AUC ↑", True,
        "Starting from a blurred image, the pixels the map calls most important are put back first; if the "
        "model's confidence climbs quickly, the map found what the model relies on — higher is better."),
    "road": MetricInfo(
        "ROAD ↑", True,
        "The map's most and least important pixels are removed and filled in from their neighbours (so odd-looking "
        "holes do not fool the model); the score is how much more removing the important ones hurts — higher is "
        "better."),
    "pointing": MetricInfo(
        "Pointing game (object) ↑", True,
        "The share of images in which the map's hottest point lies on the object (within a few pixels) — higher "
        "is better."),
    "energy": MetricInfo(
        "Energy in object mask ↑", True,
        "The share of the map's total heat that falls on the object; a map that spreads evenly gets the object's "
        "share of the image, shown beside it — higher is better."),
}
REGION_EXPLANATION = ("Pointing game (marker) and energy on marker: the same two measures for the shortcut marker. "
                      "Not a score to maximise but a finding: maps that point at the marker show a model that reads "
                      "the marker.")
SHOWN_METRICS = ("deletion", "insertion", "road", "pointing", "energy")  # road_morf/road_lerf: in the CSV only


def metric_label(metric: str, area_share: dict[str, np.ndarray]) -> str:
    """A column title: the metric, which way is better, and for region metrics the region's share of the image."""
    if metric in METRICS:
        label = METRICS[metric].label
        share = area_share.get("mask") if metric == "energy" else None
    else:
        kind, _, region = metric.partition("_")
        label = f"Pointing game ({region})" if kind == "pointing" else f"Energy on {region}"
        share = area_share.get(region) if kind == "energy" else None
    return label if share is None else f"{label} ({float(np.mean(share)):.1%} of image)"


def method_title(method: str) -> str:
    return CAM_METHODS[method].title if method in CAM_METHODS else method


# ------------------------------------------------------------------------------- the explorer's panel
RANDOM_MAP_SEED = 0
EXPLORER_STEPS = 20
CURVE_COLOURS = {"map": "#d6336c", "random": "#868e96"}


@dataclass(frozen=True)
class ExplorerCurves:
    """Deletion and insertion of one image's map and of a seeded random map of the same size: ``scores[kind]``
    (2, S) (row 0 the map, row 1 the random map) at ``fractions`` (S,), ``auc[kind]`` (2,)."""

    fractions: np.ndarray
    scores: dict[str, np.ndarray]
    auc: dict[str, np.ndarray]


def random_map(shape: tuple[int, ...], seed: int = RANDOM_MAP_SEED) -> np.ndarray:
    """The baseline: uniform noise of the map's own size, the same for every image of that size."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def compute_explorer_curves(engine, tensor: torch.Tensor, cam: np.ndarray, target: int,
                            progress: ProgressFn | None = None, steps: int = EXPLORER_STEPS) -> ExplorerCurves:
    """The map and its random baseline through ``deletion_insertion_curves`` together: one ranking each, the
    same image, the same target class, the same forwards."""
    maps = np.stack([cam, random_map(cam.shape)])[None]  # (1, 2, h, w)
    deletion, insertion = deletion_insertion_curves(engine, tensor, maps, [int(target)], steps, progress=progress)
    return ExplorerCurves(fractions=deletion.fractions,
                          scores={"deletion": deletion.scores[0], "insertion": insertion.scores[0]},
                          auc={"deletion": np.asarray(deletion.auc[0]), "insertion": np.asarray(insertion.auc[0])})


@st.cache_data(show_spinner=False, max_entries=64)
def _stored_explorer_curves(model_id: str, sample_key: str, method: str, layer: str, target: int,
                            _value: ExplorerCurves | None = None) -> ExplorerCurves:
    return require(_value)


def explorer_curves(loaded: LoadedWorkspace, sample: Sample, tensor: torch.Tensor, choice: ViewChoice,
                    cam: np.ndarray) -> ExplorerCurves:
    """The shown map's curves, kept per (model, image, method, layer, class); computed with a bar on a miss."""
    key = (loaded.model_id, sample.key, choice.method, choice.layer, int(choice.target_class))

    def compute() -> ExplorerCurves:
        bar, report = progress_bar("Deleting and inserting pixels: image forwards")
        curves = compute_explorer_curves(loaded.engine, tensor, cam, choice.target_class, report)
        bar.empty()
        return curves

    return stored_or_computed(_stored_explorer_curves, key, compute)


def explorer_curves_figure(curves: ExplorerCurves, class_name: str) -> go.Figure:
    """Deletion (left) and insertion (right): the target's probability against the share of pixels changed, the
    map solid, the random map dashed."""
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "Deletion: most important pixels removed first", "Insertion: most important pixels revealed first"))
    for column, kind in enumerate(("deletion", "insertion"), start=1):
        for row, (name, dash) in enumerate((("this map", "solid"), ("random map", "dash"))):
            colour = CURVE_COLOURS["map" if row == 0 else "random"]
            figure.add_trace(go.Scatter(
                x=curves.fractions, y=curves.scores[kind][row], mode="lines", name=name, legendgroup=name,
                showlegend=column == 1, line={"color": colour, "dash": dash, "width": 2.5 if row == 0 else 1.5},
                hovertemplate=f"{name}: %{{x:.0%}} of pixels → p = %{{y:.3f}}<extra></extra>"), row=1, col=column)
        figure.update_xaxes(title_text="share of pixels changed", tickformat=".0%", range=[0, 1], row=1, col=column)
    figure.update_yaxes(title_text=f"p({class_name})", range=[0, 1.02], row=1, col=1)
    figure.update_yaxes(range=[0, 1.02], row=1, col=2)
    figure.update_layout(height=270, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         legend={"orientation": "h", "y": -0.3}, font={"size": 11})
    figure.update_annotations(font_size=12)
    return figure


@st.cache_resource(show_spinner=False, max_entries=32)
def _explorer_figure(model_id: str, sample_key: str, method: str, layer: str, target: int, _curves: ExplorerCurves,
                     _class_name: str) -> go.Figure:
    """Built once per view: plotly's layout validation is slow enough to show on every opacity move."""
    return explorer_curves_figure(_curves, _class_name)


def render_auc_metrics(curves: ExplorerCurves) -> None:
    deletion, insertion = curves.auc["deletion"], curves.auc["insertion"]
    left, right = st.columns(2)
    left.metric("Deletion AUC (lower is better)", f"{deletion[0]:.3f}", delta=f"{deletion[0] - deletion[1]:+.3f} vs "
                f"random map ({deletion[1]:.3f})", delta_color="inverse", help=METRICS["deletion"].explanation)
    right.metric("Insertion AUC (higher is better)", f"{insertion[0]:.3f}", delta=f"{insertion[0] - insertion[1]:+.3f}"
                 f" vs random map ({insertion[1]:.3f})", help=METRICS["insertion"].explanation)


def render_explorer_faithfulness(loaded: LoadedWorkspace, sample: Sample, tensor: torch.Tensor, choice: ViewChoice,
                                 cam: np.ndarray) -> None:
    """The explorer's faithfulness panel for the shown image, method and layer: an expander that computes the
    deletion and insertion curves (and a random map's) only once it is opened, and keeps them.

    The one call the explorer's view fragment makes, right after its pictures."""
    # One label for every view: a label that changed with the method would make a new expander, closed again.
    panel = st.expander("How faithful is this map? Deletion and insertion curves", key=F.explorer_panel,
                        on_change="rerun", icon=":material/verified:")
    if not panel.open:
        return
    with panel:
        class_name = loaded.class_names[choice.target_class]
        st.markdown(f"**{method_title(choice.method)}** at `{choice.layer}`, explaining **{class_name}**")
        curves = explorer_curves(loaded, sample, tensor, choice, cam)
        render_auc_metrics(curves)
        figure = _explorer_figure(loaded.model_id, sample.key, choice.method, choice.layer, int(choice.target_class),
                                  curves, class_name)
        st.plotly_chart(figure, config={"displayModeBar": False}, key="faithfulness.explorer_curves")
        st.caption(f"The model's probability for **{class_name}** as this map's most important pixels are removed "
                   "(left, to the normalisation's mean colour) or revealed over a blurred copy (right), next to a "
                   f"seeded random map of the same {cam.shape[0]}×{cam.shape[1]} size. A faithful map drops faster "
                   "on the left and climbs faster on the right than the random one. Whole-test-set numbers for "
                   "every method and layer: the **Faithfulness** page.")


# ---------------------------------------------------------------------------------- the page's inputs
MIN_IMAGES, MAX_IMAGES = 2, 256
SANITY_IMAGES = 8  # the sanity check's images: the first of the table's sample
#: Extra keyword arguments of ``faithfulness_table`` (the defaults: 20 steps, 5 ROAD fractions, 1000 bootstrap
#: draws); part of every cache key. Tests make the table small through it.
TABLE_OPTIONS: dict[str, Any] = {}


def options_key() -> str:
    return repr(sorted(TABLE_OPTIONS.items()))


def table_sample(test_size: int, count: int, seed: int) -> np.ndarray:
    """The seeded sample: ``count`` distinct test indices, sorted (the same for the same size, count and seed)."""
    count = max(1, min(int(count), int(test_size)))
    return np.sort(np.random.default_rng(int(seed)).choice(int(test_size), count, replace=False))


@dataclass
class TableInputs:
    indices: np.ndarray
    images: torch.Tensor
    layers: list[str]
    masks: np.ndarray | None  # (N, H, W) bool: the objects, where the test set has masks
    markers: np.ndarray | None  # (N, H, W) bool: a shortcut workspace's marker boxes


def marker_boxes(test_set, indices: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """(N, H, W) bool boxes of each image's marker (``marker_box``), or None when the set has no markers."""
    if not callable(getattr(test_set, "marker_box", None)):
        return None
    boxes = [test_set.marker_box(int(i)) for i in indices]
    if all(box is None for box in boxes):
        return None
    regions = np.zeros((len(indices), *size), bool)
    for row, box in enumerate(boxes):
        if box is not None:
            top, left, bottom, right = box
            regions[row, top:bottom, left:right] = True
    return regions


def table_inputs(loaded: LoadedWorkspace, indices: np.ndarray) -> TableInputs:
    """The sample's images, the three table layers, the object masks and (on a shortcut workspace) the markers."""
    workspace = loaded.workspace
    test_set = workspace.test_set
    images = test_set.tensors(indices)
    with loaded.lock:  # table_layers runs a dry forward with hooks on the shared model
        layers = table_layers(workspace.model, loaded.default_layer, tuple(workspace.input_size))
    masks = [test_set.mask(int(i)) for i in indices]
    masks = None if any(mask is None for mask in masks) else np.stack(masks).astype(bool)
    markers = marker_boxes(test_set, indices, tuple(images.shape[-2:])) if loaded.shortcut else None
    return TableInputs(indices, images, layers, masks, markers)


def compute_table(loaded: LoadedWorkspace, inputs: TableInputs, progress: ProgressFn | None) -> FaithfulnessTable:
    """Every method x the three layers on the sample (targets: the predicted classes), with one torch thread."""
    with one_torch_thread():
        return faithfulness_table(
            loaded.engine, inputs.images, inputs.layers, masks=inputs.masks,
            regions=None if inputs.markers is None else {"marker": inputs.markers}, image_ids=inputs.indices,
            progress=progress, **TABLE_OPTIONS)


@dataclass(frozen=True)
class TimedTable:
    table: FaithfulnessTable
    seconds: float


@st.cache_data(show_spinner=False, max_entries=8)
def _stored_table(workspace_key: str, model_id: str, count: int, seed: int, options: str,
                  _value: TimedTable | None = None) -> TimedTable:
    return require(_value)


def table_key(loaded: LoadedWorkspace, count: int, seed: int) -> tuple:
    return loaded.key, loaded.model_id, int(count), int(seed), options_key()


def stored_table(loaded: LoadedWorkspace, count: int, seed: int) -> TimedTable | None:
    """The table of this sample if it was computed (in this process), else None; never computes."""
    try:
        return _stored_table(*table_key(loaded, count, seed))
    except NotStored:
        return None


def computed_table(loaded: LoadedWorkspace, count: int, seed: int) -> TimedTable:
    """The table of this sample: kept, or computed now with a progress bar."""
    def compute() -> TimedTable:
        bar, report = progress_bar("Scoring perturbed images: image forwards")
        started = time.perf_counter()
        inputs = table_inputs(loaded, table_sample(len(loaded.workspace.test_set), count, seed))
        table = compute_table(loaded, inputs, report)
        bar.empty()
        return TimedTable(table, time.perf_counter() - started)

    return stored_or_computed(_stored_table, table_key(loaded, count, seed), compute)


# ------------------------------------------------------------------------------------- the table shown
BEST_MARK = "★"
BEST_STYLE = "background-color: rgba(47, 158, 68, 0.18); font-weight: 600"


def shown_metrics(table: FaithfulnessTable) -> list[str]:
    """The table's columns: the scores, then the region findings (pointing_marker, energy_marker, ...)."""
    scores = [m for m in SHOWN_METRICS if m in table.metrics]
    regions = sorted({m.partition("_")[2] for m in table.metrics if m.startswith(("pointing_", "energy_"))})
    return scores + [f"{kind}_{region}" for region in regions for kind in ("pointing", "energy")
                     if f"{kind}_{region}" in table.metrics]


def cell_text(mean: float, low: float, high: float, best: bool) -> str:
    """'★ 0.412 [0.38, 0.45]': the mean, its bootstrap 95% interval, and the best mark."""
    text = f"{mean:.3f} [{low:.2f}, {high:.2f}]"
    return f"{BEST_MARK} {text}" if best else text


@dataclass(frozen=True)
class SummaryFrame:
    """The table as shown: one row per computed (method, layer), text cells, and which cells are best."""

    frame: pd.DataFrame
    cells: list[tuple[str, str]]  # (method, layer) of each row
    best: pd.DataFrame  # bool, same shape as ``frame``


def summary_frame(table: FaithfulnessTable) -> SummaryFrame:
    metrics = shown_metrics(table)
    labels = {metric: metric_label(metric, table.area_share) for metric in metrics}
    rows, best_rows, cells = [], [], []
    for row in table.summary_rows():
        cells.append((row["method"], row["layer"]))
        shown = {"Method": method_title(row["method"]), "Layer": row["layer"]}
        best = {"Method": False, "Layer": False}
        for metric in metrics:
            shown[labels[metric]] = cell_text(row[metric], row[f"{metric}_low"], row[f"{metric}_high"],
                                              row[f"{metric}_best"])
            best[labels[metric]] = bool(row[f"{metric}_best"])
        rows.append(shown)
        best_rows.append(best)
    import pandas as pd

    return SummaryFrame(pd.DataFrame(rows), cells, pd.DataFrame(best_rows))


def column_help(table: FaithfulnessTable) -> dict[str, Any]:
    config: dict[str, Any] = {"Method": st.column_config.TextColumn("Method", pinned=True)}
    for metric in shown_metrics(table):
        label = metric_label(metric, table.area_share)
        about = METRICS[metric].explanation if metric in METRICS else REGION_EXPLANATION
        config[label] = st.column_config.TextColumn(label, help=f"{about} Mean over the images [95% interval].")
    return config


def selected_row(event: Any) -> int | None:
    """The first selected row of an ``st.dataframe(on_select="rerun")`` event, or None."""
    try:
        rows = event["selection"]["rows"]
    except (KeyError, TypeError):
        rows = getattr(getattr(event, "selection", None), "rows", None)
    return int(rows[0]) if rows else None


def render_summary(table: FaithfulnessTable) -> tuple[str, str]:
    """The methods x layers table (best cells marked); returns the (method, layer) whose curves to draw."""
    summary = summary_frame(table)
    styled = summary.frame.style.apply(lambda _: summary.best.replace({True: BEST_STYLE, False: ""}), axis=None)
    event = st.dataframe(styled, hide_index=True, on_select="rerun", selection_mode="single-row", key=F.table,
                         column_config=column_help(table))
    picked = selected_row(event)
    if picked is not None and picked < len(summary.cells):
        return summary.cells[picked]
    best = table.best.get("insertion") or summary.cells[0]
    return best


def render_metric_help(table: FaithfulnessTable) -> None:
    lines = [f"- **{METRICS[m].label}** — {METRICS[m].explanation}" for m in SHOWN_METRICS if m in table.metrics]
    if any(m.startswith(("pointing_", "energy_")) for m in table.metrics):
        lines.append(f"- {REGION_EXPLANATION}")
    st.markdown(f"{BEST_MARK} marks the best cell of each score (highlighted); in brackets, the range that holds "
                "the true mean with 95% confidence (bootstrap over the images): two cells whose ranges overlap are "
                "not clearly different.\n" + "\n".join(lines))
    if "pointing" not in table.metrics:
        st.caption("This workspace's test set has no object masks, so the pointing game and the energy in the "
                   "object are not measured.")


def row_curves_figure(table: FaithfulnessTable, method: str, layer: str) -> go.Figure:
    """The selected cell's curves over its images: deletion, insertion, ROAD (most and least relevant first); the
    mean as a line, the middle half of the images as a band."""
    m, k = table.methods.index(method), table.layers.index(layer)
    panels = (("Deletion", ("deletion",)), ("Insertion", ("insertion",)), ("ROAD", ("road_morf", "road_lerf")))
    names = {"deletion": "deletion", "insertion": "insertion", "road_morf": "ROAD, most relevant removed first",
             "road_lerf": "ROAD, least relevant removed first"}
    colours = {"deletion": "#d6336c", "insertion": "#1c7ed6", "road_morf": "#d6336c", "road_lerf": "#1c7ed6"}
    figure = make_subplots(rows=1, cols=3, subplot_titles=[title for title, _ in panels], horizontal_spacing=0.07)
    for column, (_, kinds) in enumerate(panels, start=1):
        for kind in kinds:
            x, per_image = table.fractions[kind], table.curves[kind][m, k]  # (S,), (N, S)
            low, high = np.percentile(per_image, [25, 75], axis=0)
            figure.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=np.r_[high, low[::-1]], fill="toself",
                                        fillcolor=colours[kind], opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                        showlegend=False), row=1, col=column)
            figure.add_trace(go.Scatter(x=x, y=per_image.mean(axis=0), mode="lines+markers", name=names[kind],
                                        line={"color": colours[kind], "width": 2.5}, marker={"size": 4},
                                        hovertemplate="%{x:.0%} of pixels → mean p = %{y:.3f}<extra></extra>"),
                             row=1, col=column)
        figure.update_xaxes(title_text="share of pixels changed", tickformat=".0%", range=[0, 1], row=1, col=column)
        figure.update_yaxes(range=[0, 1.02], row=1, col=column)
    figure.update_yaxes(title_text="probability of the predicted class", row=1, col=1)
    figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         legend={"orientation": "h", "y": -0.28}, font={"size": 11})
    figure.update_annotations(font_size=12)
    return figure


def render_row_curves(table: FaithfulnessTable, method: str, layer: str) -> None:
    st.markdown(f"##### Curves of {method_title(method)} at `{layer}`")
    st.plotly_chart(row_curves_figure(table, method, layer), config={"displayModeBar": False},
                    key="faithfulness.row_curves")
    st.caption("Select a row of the table to see its curves (without a selection: the best insertion cell). "
               "Lines: the mean over the images; bands: the middle half of the images.")


# ----------------------------------------------------------------------------------------- the shortcut
@dataclass(frozen=True)
class ShortcutFinding:
    """Where the maps of every method point at one layer, averaged over the methods (energy and peak shares)."""

    layer: str
    methods: int
    marker_share: float  # the marker's share of the image (a map spread evenly puts this much energy there)
    object_share: float
    energy_marker: float
    energy_object: float
    peak_marker: float  # share of images whose map peaks on the marker
    peak_object: float
    strongest: tuple[str, str, float]  # (method, layer, energy on the marker / its share) of the most extreme cell

    @property
    def marker_ratio(self) -> float:
        return self.energy_marker / max(self.marker_share, 1e-12)

    @property
    def object_ratio(self) -> float:
        return self.energy_object / max(self.object_share, 1e-12)


def shortcut_finding(table: FaithfulnessTable, layer: str) -> ShortcutFinding | None:
    """The marker against the object at ``layer``; None when the table has no marker or no object masks."""
    if "energy_marker" not in table.metrics or "energy" not in table.metrics:
        return None
    k = table.layers.index(layer)
    marker_share = float(np.mean(table.area_share["marker"]))
    ratios = table.mean["energy_marker"] / max(marker_share, 1e-12)
    m_best, k_best = np.unravel_index(np.nanargmax(ratios), ratios.shape)

    def at_layer(metric: str) -> float:
        return float(np.nanmean(table.mean[metric][:, k]))

    return ShortcutFinding(
        layer=layer, methods=int(np.sum(~np.isnan(table.mean["energy"][:, k]))), marker_share=marker_share,
        object_share=float(np.mean(table.area_share["mask"])), energy_marker=at_layer("energy_marker"),
        energy_object=at_layer("energy"), peak_marker=at_layer("pointing_marker"), peak_object=at_layer("pointing"),
        strongest=(table.methods[m_best], table.layers[k_best], float(ratios[m_best, k_best])))


def shortcut_sentence(finding: ShortcutFinding) -> str:
    """The finding in plain words, for someone who will not read the table."""
    f = finding
    numbers = (f"The marker covers only {f.marker_share:.1%} of each image and the object {f.object_share:.0%}. At "
               f"`{f.layer}` the maps of the {f.methods} methods put on average **{f.energy_marker:.0%} of their heat "
               f"on the marker** — {f.marker_ratio:.1f}× its share of the image — against {f.energy_object:.0%} on "
               f"the object ({f.object_ratio:.1f}× its share), and their hottest point lies **on the marker in "
               f"{f.peak_marker:.0%} of the images, on the object in {f.peak_object:.0%}**.")
    method, layer, ratio = f.strongest
    strongest = f" The most extreme: {method_title(method)} at `{layer}`, {ratio:.0f}× the marker's share."
    if f.marker_ratio > f.object_ratio:
        return ("**The maps show the shortcut: this model looks at the small coloured marker, not at the shape.** "
                + numbers + strongest)
    return "**At this layer the maps do not single out the marker.** " + numbers + strongest


def render_shortcut(loaded: LoadedWorkspace, table: FaithfulnessTable) -> None:
    finding = shortcut_finding(table, loaded.default_layer if loaded.default_layer in table.layers
                               else table.layers[0])
    if finding is None:
        st.info("This workspace's model is known to use a shortcut, but its test set does not say where the "
                "shortcut is (no marker boxes or no object masks), so the page cannot measure the maps on it.",
                icon=":material/warning:")
        return
    st.warning(shortcut_sentence(finding), icon=":material/warning:")


# -------------------------------------------------------------------------------------- the sanity check
def scorecam_at(engine, images: torch.Tensor, layer: str, targets: np.ndarray) -> np.ndarray:
    """Score-CAM as one of the sanity check's methods (its engine is the randomised copy's)."""
    return score_cam(engine, images, layer, targets).cams["scorecam"][layer]


def compute_sanity(loaded: LoadedWorkspace, images: torch.Tensor, layer: str,
                   progress: ProgressFn | None) -> SanityResult:
    """Cascading randomisation of a copy of the model: every method of the table, Score-CAM included."""
    with one_torch_thread():
        return sanity_check(loaded.engine, images, layer, SANITY_METHODS, extra_methods={"scorecam": scorecam_at},
                            progress=progress)


@st.cache_data(show_spinner=False, max_entries=16)
def _stored_sanity(workspace_key: str, model_id: str, count: int, seed: int, layer: str,
                   _value: SanityResult | None = None) -> SanityResult:
    return require(_value)


def sanity_figure(result: SanityResult) -> go.Figure:
    """Each method's similarity to its original map as more of the model is randomised (left: rank correlation,
    right: SSIM); the first point is the untouched model (1 by definition)."""
    steps = ["none", *(f"+ {label}" for label in result.steps)]
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=(
        "Rank correlation with the original map", "SSIM with the original map"))
    palette = ("#1c7ed6", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#868e96", "#d6336c", "#0c8599")
    for index, method in enumerate(result.methods):
        colour = palette[index % len(palette)]
        for column, values in enumerate((result.spearman[method], result.ssim[method]), start=1):
            figure.add_trace(go.Scatter(
                x=steps, y=np.r_[1.0, values.mean(axis=1)], mode="lines+markers", name=method_title(method),
                legendgroup=method, showlegend=column == 1, line={"color": colour, "width": 2},
                hovertemplate=f"{method_title(method)}: %{{y:.2f}} after randomising %{{x}}<extra></extra>"),
                row=1, col=column)
    figure.add_hline(y=result.threshold, line={"dash": "dot", "color": "#495057"}, row=1, col=1,
                     annotation_text="pass below", annotation_position="bottom left")
    figure.update_xaxes(title_text="layers randomised, from the output down (cumulative)", tickangle=-40)
    lowest = min(float(np.min(per[method].mean(axis=1))) for per in (result.spearman, result.ssim)
                 for method in result.methods)
    figure.update_yaxes(range=[min(-0.3, lowest - 0.05), 1.05])
    figure.update_layout(height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10}, font={"size": 11},
                         legend={"orientation": "h", "y": -0.55})
    figure.update_annotations(font_size=12)
    return figure


def render_sanity_result(result: SanityResult) -> None:
    st.plotly_chart(sanity_figure(result), config={"displayModeBar": False}, key="faithfulness.sanity_chart")
    for method in result.methods:
        if result.passed[method]:
            st.success(result.verdicts[method], icon=":material/check_circle:")
        else:
            st.error(result.verdicts[method], icon=":material/cancel:")


def render_sanity(loaded: LoadedWorkspace, count: int, seed: int) -> None:
    st.subheader("Sanity check: do the maps depend on what the model learned?", anchor=False)
    st.markdown("The model's layers are replaced by random weights one group at a time, from the output down "
                "(Adebayo et al. 2018). A map that explains the model must change as what the model learned is "
                "destroyed; a method whose maps stay the same is drawing something else (edges, bright spots) and "
                "fails. A method passes when its rank correlation with the original map ends below 0.5 (dotted line).")
    if F.sanity_layer.get() not in loaded.layers:
        F.sanity_layer.set(loaded.default_layer)
    layer = st.columns([2, 3])[0].selectbox(
        "Layer", loaded.layers, key=F.sanity_layer, format_func=loaded.layer_label,
        help="The layer whose maps are compared (default: the workspace's default layer)")
    images = min(SANITY_IMAGES, count, len(loaded.workspace.test_set))
    key = (loaded.key, loaded.model_id, int(count), int(seed), layer)
    try:
        result = _stored_sanity(*key)
    except NotStored:
        if not st.button(f"Run the sanity check on {images} images", icon=":material/play_arrow:",
                         key="faithfulness.sanity_run"):
            st.caption(f"{len(SANITY_METHODS) + 1} methods, the first {images} images of the sample above; one "
                       "model copy, re-randomised step by step (seconds on the bundled models).")
            return

        def compute() -> SanityResult:
            bar, report = progress_bar("Randomising the model: steps")
            indices = table_sample(len(loaded.workspace.test_set), count, seed)[:images]
            found = compute_sanity(loaded, loaded.workspace.test_set.tensors(indices), layer, report)
            bar.empty()
            return found

        stored_or_computed(_stored_sanity, key, compute)
        st.rerun()  # without the button, the result now kept
    render_sanity_result(result)


# ------------------------------------------------------------------------------------------------ the page
#: CPU seconds per image of the default table on the bundled 64-px shapes models, measured through the page with one
#: torch thread (16 images: 42-45 s of CPU; on a machine busy with other work the wall time was about twice that)
SECONDS_PER_SHAPES_IMAGE = 2.8


def render_sample_controls(loaded: LoadedWorkspace) -> tuple[int, int]:
    size = len(loaded.workspace.test_set)
    largest = min(MAX_IMAGES, size)
    F.count.set(min(int(F.count.get()), largest))  # the default or the user's count, within this test set
    F.seed.setdefault(F.seed.default)
    count_col, seed_col, _ = st.columns([1, 1, 2])
    count = count_col.number_input(
        "Images", min_value=min(MIN_IMAGES, largest), max_value=largest, step=4, key=F.count,
        help=f"How many test images (of {size}) to score, drawn with the seed. More images give narrower "
             "intervals and take proportionally longer.")
    seed = seed_col.number_input("Seed", min_value=0, max_value=2**32 - 1, step=1, key=F.seed,
                                 help="Which images are drawn; the same seed and count give the same images.")
    return int(count), int(seed)


def render_compute_prompt(loaded: LoadedWorkspace, count: int) -> bool:
    """Say what the table costs; True when the user asked for it."""
    shapes = tuple(loaded.workspace.input_size) == (64, 64)
    estimate = (f" On the bundled 64-px models that takes about {SECONDS_PER_SHAPES_IMAGE * count:.0f} s on an idle "
                "CPU (longer while the machine is busy)." if shapes else "")
    st.info(f"The table scores every CAM method ({len(TABLE_METHODS)}, Score-CAM included) at three layers on {count} "
            f"test images: each map is checked by removing and revealing pixels in 20 steps and by ROAD at five "
            f"fractions — one model forward per perturbed image.{estimate} It is then kept: the same images and "
            "seed open at once.", icon=":material/table_chart:")
    return st.button(f"Compute the table for {count} images", type="primary", icon=":material/play_arrow:",
                     key="faithfulness.compute")


def render_skipped(table: FaithfulnessTable) -> None:
    if table.skipped:
        listing = "; ".join(f"{method_title(m)} at `{layer}`" for m, layer, _ in table.skipped)
        st.caption(f"Not computed, to bound the time (Score-CAM runs one forward per channel and image): {listing}. "
                   "Fewer images include them.")


def render_download(loaded: LoadedWorkspace, table: FaithfulnessTable, seed: int) -> None:
    st.download_button(
        "Download the per-image numbers (CSV)", table.to_csv(), icon=":material/download:", mime="text/csv",
        file_name=f"faithfulness_{loaded.workspace.name}_{len(table.image_ids)}images_seed{seed}.csv",
        on_click="ignore", key="faithfulness.csv",
        help="One row per image, method and layer: the test index, the explained class and every metric "
             "(ROAD's most- and least-relevant-first means included).")


def render_table_section(loaded: LoadedWorkspace, timed: TimedTable, seed: int) -> None:
    table = timed.table
    st.caption(f"{len(table.image_ids)} test images drawn with seed {seed} · each map explains the model's predicted "
               f"class · {len(table.methods)} methods × {len(table.layers)} layers (the default layer and two "
               f"shallower ones) · computed in {timed.seconds:.0f} s")
    if loaded.shortcut:
        render_shortcut(loaded, table)
    method, layer = render_summary(table)
    render_skipped(table)
    render_metric_help(table)
    render_row_curves(table, method, layer)
    render_download(loaded, table, seed)


def render_page_header(loaded: LoadedWorkspace) -> None:
    st.title("Faithfulness", anchor=False)
    st.caption(f"**{loaded.workspace.title}**: which explanation can I trust? Six CAM methods and Score-CAM give "
               "different pictures; this page measures, with intervals, which method and layer follow what the "
               "model actually uses, and checks that the maps depend on what it learned at all.")


def render_page_body(loaded: LoadedWorkspace) -> None:
    """The sample controls, the table (kept, or computed on request), the shortcut finding, the sanity check."""
    if loaded.shortcut:
        st.info("This workspace's model is known to use a shortcut. The table measures where the maps point: on the "
                "marker or on the object.", icon=":material/info:")
    if len(loaded.workspace.test_set) < MIN_IMAGES:
        st.info(f"The test set has {len(loaded.workspace.test_set)} image(s); the page needs at least {MIN_IMAGES}.")
        return
    count, seed = render_sample_controls(loaded)
    timed = stored_table(loaded, count, seed)
    if timed is None and render_compute_prompt(loaded, count):
        computed_table(loaded, count, seed)
        st.rerun()  # draw the page again without the prompt, the table now kept
    if timed is not None:
        render_table_section(loaded, timed, seed)
    st.divider()
    render_sanity(loaded, count, seed)
