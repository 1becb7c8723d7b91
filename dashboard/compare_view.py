"""The "Compare models" page's parts: two workspaces, one image, where each model looks, and how far they agree.

The computing is ``analysis.compare`` (``compare_image`` for one image, ``agreement`` for a seeded sample); this
module picks the inputs, caches the results and says what they show in plain words (``image_story``,
``sample_story``): the page tells the shortcut story on its own when the numbers show one.

The page's two workspaces are its own (``CompareState``), independent of the sidebar's: default the bundled pair
``STORY_PAIR`` when both are available, on a heart of the shortcut test set (``STORY_IMAGE``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import streamlit as st

from analysis.compare import (
    DEFAULT_SAMPLE,
    Agreement,
    ComparisonView,
    Compatibility,
    IncompatibleModelsError,
    ModelSide,
    agreement,
    check_compatible,
    compare_image,
    default_image_source,
)
from dashboard.report_view import page_url, render_pin_controls
from dashboard.samples import UploadedImage, UploadError, decode_image
from dashboard.state import CompareState as C
from dashboard.workspaces import LoadedWorkspace, load, workspace_choices, workspace_label
from gradcam_core import CAM_METHODS, COLORMAPS, METHOD_NAMES
from models import WorkspaceError
from report import Finding, pin_view
from report.session_store import finding_link

#: The bundled pair that tells the shortcut story, and the image it is told on: a heart of the shortcut test set
#: that ``shapes`` recognises by its shape and ``shapes-shortcut`` calls a circle because of the marker.
STORY_PAIR = ("shapes", "shapes-shortcut")
STORY_IMAGE = 479
#: The sample is computed when the page opens if (images × input pixels of both models) is at most this (the
#: shapes pair at 200 images: 1.6 M, a few seconds on two CPU cores); a bigger one waits for the button.
AUTO_AGREEMENT_WORK = 2_000_000
#: The page says a model "looks at the marker" when its share of the map on it is at least this many times the
#: other model's and this many times the marker's share of the image (its fair share).
STORY_RATIO = 2.0
#: Above this ratio "N× more" stops meaning anything to a reader (the other share is close to zero).
MANY_TIMES = 20.0
UPLOAD = "upload"
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]
AGREEMENT_CACHE_ENTRIES = 16


# ----------------------------------------------------------------------------------------- plain words
def _pct(value: float) -> str:
    return f"{value:.1%}" if value < 0.1 else f"{value:.0%}"


def _times(ratio: float) -> str:
    """6.03 -> "6×", 2.46 -> "2.5×"."""
    return f"{ratio:.0f}×" if ratio >= 3 else f"{ratio:.1f}×"


def _marker_reader(shares: dict[str, float], area: float) -> tuple[str, str, float] | None:
    """(the model that reads the marker, the other, how many times more) when one clearly does, else None."""
    if any(np.isnan(v) for v in shares.values()) or np.isnan(area):
        return None
    high, low = sorted(shares, key=shares.get, reverse=True)
    ratio = shares[high] / shares[low] if shares[low] > 0 else float("inf")
    if ratio >= STORY_RATIO and shares[high] >= STORY_RATIO * area:
        return high, low, ratio
    return None


def image_story(view: ComparisonView) -> list[str]:
    """What the two maps of one image show, in sentences for a stakeholder (markdown)."""
    a, b = view.a, view.b
    thing = view.sample.true_name or "object"
    calls = {side.workspace: side.predicted_name for side in (a, b)}
    truth = f" It is a {view.sample.true_name}." if view.sample.true_name else ""
    if a.predicted_name == b.predicted_name:
        lines = [f"Both models call this image a **{a.predicted_name}**.{truth}"]
    else:
        lines = [f"**{a.workspace}** calls this image a **{calls[a.workspace]}**, **{b.workspace}** a "
                 f"**{calls[b.workspace]}**.{truth}"]
    markers = {side.workspace: side.energy_marker for side in (a, b)}
    objects = {side.workspace: side.energy_object for side in (a, b)}
    reader = _marker_reader(markers, view.marker_area)
    if reader is not None:
        high, low, ratio = reader
        other = (f"where **{low}** puts almost none ({_pct(markers[low])})" if ratio > MANY_TIMES else
                 f"{_times(ratio)} more than **{low}** ({_pct(markers[low])})")
        lines.append(f"**{high}** looks at the small coloured marker: it puts {_pct(markers[high])} of its attention "
                     f"on it, {other}, though the marker covers only {_pct(view.marker_area)} of the image.")
        if not np.isnan(objects[low]):
            lines.append(f"**{low}** looks at the {thing} itself: {_pct(objects[low])} of its attention is on it, "
                         f"against {_pct(objects[high])} for **{high}**.")
    elif not np.isnan(view.object_area) and not any(np.isnan(v) for v in objects.values()):
        lines.append(f"Share of each model's attention on the {thing} ({_pct(view.object_area)} of the image): "
                     + ", ".join(f"**{name}** {_pct(share)}" for name, share in objects.items()) + ".")
    if not np.isnan(view.spearman):
        alike = "much alike" if view.spearman >= 0.7 else "somewhat alike" if view.spearman >= 0.3 else "differently"
        lines.append(f"Their heatmaps rank the pixels {alike} (rank correlation {view.spearman:.2f}; 1 means the "
                     "same order).")
    return lines


def sample_story(result: Agreement) -> list[str]:
    """What the seeded sample shows, in sentences for a stakeholder (markdown)."""
    a, b = result.workspace_a, result.workspace_b
    lines = []
    marker_a, marker_b = result.energy_marker_mean
    if marker_a is not None:
        area = float(np.nanmean(result.marker_area))
        reader = _marker_reader({a: marker_a, b: marker_b}, area)
        if reader is not None:
            high, low, ratio = reader
            shares = {a: marker_a, b: marker_b}
            more = "far more" if ratio > MANY_TIMES else f"{_times(ratio)} more"
            lines.append(f"Over {result.n} test images, **{high} puts {more} of its attention on the "
                         f"marker than {low}** ({_pct(shares[high])} against {_pct(shares[low])}; the marker covers "
                         f"{_pct(area)} of an image). {high} has learned a shortcut: it reads the marker, not the "
                         "shape.")
    object_a, object_b = result.energy_object_mean
    if object_a is not None:
        lines.append(f"Share of the attention on the object itself: **{a}** {_pct(object_a)}, **{b}** "
                     f"{_pct(object_b)} (the object covers {_pct(float(np.nanmean(result.object_area)))} of an image).")
    accuracy_a, accuracy_b = result.accuracy
    if accuracy_a is not None:
        lines.append(f"On these images **{a}** is right {_pct(accuracy_a)} of the time, **{b}** {_pct(accuracy_b)}.")
    if result.agreement_rate is not None:
        lines.append(f"The two models give the same answer on {_pct(result.agreement_rate)} of the images.")
    return lines


# ------------------------------------------------------------------------------------------ the inputs
def default_pair(choices: list[str], sidebar_key: str) -> tuple[str, str]:
    """``STORY_PAIR`` when both are available, else the sidebar's workspace and the next one."""
    if all(name in choices for name in STORY_PAIR):
        return STORY_PAIR
    others = [key for key in choices if key != sidebar_key]
    return sidebar_key, others[0] if others else sidebar_key


def render_pair_pickers(choices: list[str], sidebar_key: str) -> tuple[str, str]:
    first, second = default_pair(choices, sidebar_key)
    for key, default in ((C.workspace_a, first), (C.workspace_b, second)):
        if key.get() not in choices:
            key.set(default)
    left, right = st.columns(2)
    key_a = left.selectbox("Model A", choices, key=C.workspace_a, format_func=workspace_label,
                           persist_state="session", help="Any workspace whose model takes the same kind of image")
    key_b = right.selectbox("Model B", choices, key=C.workspace_b, format_func=workspace_label,
                            persist_state="session", help="Any workspace whose model takes the same kind of image")
    return key_a, key_b


def load_pair(key_a: str, key_b: str) -> tuple[LoadedWorkspace, LoadedWorkspace, Compatibility] | None:
    """Both workspaces (cached) and what can be compared; None, with the reason on the page, when they cannot."""
    loaded = []
    for key in (key_a, key_b):
        try:
            with st.spinner(f"Loading workspace {workspace_label(key)}…", show_time=True):
                loaded.append(load(key))
        except (WorkspaceError, OSError, RuntimeError) as error:
            st.error(f"**Workspace {workspace_label(key)!r} could not be loaded.** {error}\n\nPick another one above.",
                     icon=":material/block:")
            return None
    try:
        compatibility = check_compatible(loaded[0].workspace, loaded[1].workspace)
    except IncompatibleModelsError as error:
        st.error(f"**These two models cannot be compared.** {error}", icon=":material/block:")
        return None
    for note in compatibility.notes:
        st.info(note, icon=":material/info:")
    if key_a == key_b:
        st.info("Model A and model B are the same workspace: pick another model B to compare two models (or "
                "compare two layers of one model).", icon=":material/info:")
    return loaded[0], loaded[1], compatibility


@dataclass(frozen=True)
class ImageChoice:
    """The compared image: test image ``index`` of side ``source`` ("a" / "b"), or an upload."""

    source: str
    index: int = 0
    upload: UploadedImage | None = None

    @property
    def key(self) -> str:
        return f"upload:{self.upload.sha256}" if self.upload is not None else f"{self.source}:{self.index}"


def _story_index(a: LoadedWorkspace, b: LoadedWorkspace, source: str) -> int:
    size = len((a if source == "a" else b).workspace.test_set)
    return STORY_IMAGE if (a.key, b.key) == STORY_PAIR and size > STORY_IMAGE else 0


def _on_upload() -> None:
    file = C.uploader.get()
    C.upload.set(None if file is None else UploadedImage(name=file.name, data=file.getvalue()))


def pick_index(source: str, index: int) -> None:
    """Show test image ``index`` of side ``source`` (a callback of the "where they disagree" buttons)."""
    C.source.set(source)
    C.index.set(int(index))


def render_image_picker(a: LoadedWorkspace, b: LoadedWorkspace) -> ImageChoice | None:
    """The image: a test image of either set (by number), or an upload; None when there is nothing to show yet."""
    sides = {"a": a, "b": b}
    options = [s for s in ("a", "b") if len(sides[s].workspace.test_set)] + [UPLOAD]
    if C.source.get() not in options:
        C.source.set(default_image_source(a.workspace, b.workspace))
    source_col, index_col = st.columns([2, 1], vertical_alignment="bottom")
    source = source_col.segmented_control(
        "Image from", options, key=C.source, required=True, persist_state="session",
        format_func=lambda s: "Upload" if s == UPLOAD else f"{s.upper()}'s test set ({sides[s].key})",
        help="Both models see the same image, each through its own preprocessing")
    if source == UPLOAD:
        source_col.file_uploader("Upload an image", type=UPLOAD_TYPES, key=C.uploader, on_change=_on_upload)
        upload = C.upload.get()
        if upload is None:
            st.info("Upload an image to compare the two models on it.", icon=":material/upload:")
            return None
        try:
            decode_image(upload.data, upload.name)
        except UploadError as error:
            st.error(f"**Could not use {upload.name}.** {error}", icon=":material/block:")
            return None
        return ImageChoice(UPLOAD, upload=upload)
    size = len(sides[source].workspace.test_set)
    if C.index.get() is None or not 0 <= C.index.get() < size:
        C.index.set(_story_index(a, b, source))
    index = index_col.number_input("Test image #", min_value=0, max_value=size - 1, step=1, key=C.index,
                                   persist_state="session", help=f"0 to {size - 1}")
    return ImageChoice(source, int(index))


@dataclass(frozen=True)
class Settings:
    """What the comparison shows: each model's layer, the method and target, and how the pictures are drawn."""

    layer_a: str
    layer_b: str
    method: str
    target: str | int
    opacity: float
    colormap: str


def _target_label(value: str | int, class_names: list[str]) -> str:
    return {"pred": "Each model's prediction", "true": "The true class"}.get(value, f"{value}: {class_names[value]}"
                                                                              if isinstance(value, int) else value)


def render_settings(a: LoadedWorkspace, b: LoadedWorkspace, compatibility: Compatibility) -> Settings:
    for key, loaded in ((C.layer_a, a), (C.layer_b, b)):
        if key.get() not in loaded.layers:
            key.set(loaded.default_layer)
    for key in (C.method, C.opacity, C.colormap):  # a widget given a key but no value starts at its first option
        key.setdefault(key.default)
    targets: list = ["pred", "true", *(range(len(a.class_names)) if compatibility.same_classes else [])]
    if C.target.get() not in targets:
        C.target.set("pred")
    layer_a_col, layer_b_col, method_col, target_col, opacity_col, cmap_col = st.columns([2, 2, 1.4, 1.6, 1.2, 1])
    layer_a = layer_a_col.selectbox("Layer of A", a.layers, key=C.layer_a, format_func=a.layer_label,
                                    persist_state="session", help=f"Default: {a.default_layer}")
    layer_b = layer_b_col.selectbox("Layer of B", b.layers, key=C.layer_b, format_func=b.layer_label,
                                    persist_state="session", help=f"Default: {b.default_layer}")
    method = method_col.selectbox("Method", METHOD_NAMES, key=C.method, format_func=lambda m: CAM_METHODS[m].title,
                                  persist_state="session")
    target = target_col.selectbox("Target class", targets, key=C.target, persist_state="session",
                                  format_func=lambda v: _target_label(v, a.class_names),
                                  help="Each model's own prediction, the image's true class, or one class (when "
                                       "both models have the same classes)")
    opacity = opacity_col.slider("Opacity", 0.0, 1.0, step=0.05, key=C.opacity, persist_state="session")
    colormap = cmap_col.selectbox("Colormap", list(COLORMAPS), key=C.colormap, persist_state="session")
    return Settings(layer_a, layer_b, method, target, float(opacity), colormap)


# ------------------------------------------------------------------------------------------ computing
def pair_key(a: LoadedWorkspace, b: LoadedWorkspace) -> tuple[str, str, str, str]:
    return a.key, a.model_id, b.key, b.model_id


@st.cache_data(show_spinner=False, max_entries=32)
def comparison(pair: tuple[str, str, str, str], image_key: str, layers: tuple[str, str], method: str,
               target: str | int, _a: LoadedWorkspace, _b: LoadedWorkspace, _image: ImageChoice) -> ComparisonView:
    """Both models on one image (``analysis.compare.compare_image``), once per (pair, image, layers, method,
    target); the engines take each model's lock."""
    upload = _image.upload
    image = _image.index if upload is None else upload.data
    return compare_image(_a.workspace, _b.workspace, image, layers[0], layers[1], method, target,
                         engine_a=_a.engine, engine_b=_b.engine,
                         image_from=None if upload is not None else _image.source,
                         file_name="" if upload is None else upload.name)


class _Results:
    """A small LRU of finished results shared by every session (the sample's numbers depend only on the key).
    Not ``st.cache_data``: the computation draws a progress bar, which a cached function would replay."""

    def __init__(self, max_entries: int):
        self.max_entries, self.entries, self.lock = max_entries, OrderedDict(), threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
            return self.entries.get(key)

    def put(self, key: Hashable, value: Any) -> None:
        with self.lock:
            self.entries[key] = value
            self.entries.move_to_end(key)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)


@st.cache_resource(show_spinner=False, max_entries=1)
def agreement_results() -> _Results:
    """The process's one LRU of samples (itself bounded by ``AGREEMENT_CACHE_ENTRIES``)."""
    return _Results(AGREEMENT_CACHE_ENTRIES)


def agreement_key(a: LoadedWorkspace, b: LoadedWorkspace, settings: Settings, n: int, seed: int,
                  source: str) -> tuple:
    return (*pair_key(a, b), settings.layer_a, settings.layer_b, settings.method, int(n), int(seed), source)


def compute_agreement(a: LoadedWorkspace, b: LoadedWorkspace, settings: Settings, n: int, seed: int, source: str,
                      progress: Callable[[float, str], None] | None = None) -> Agreement:
    """The seeded sample's numbers (``analysis.compare.agreement``), kept for every session."""
    key = agreement_key(a, b, settings, n, seed, source)
    found = agreement_results().get(key)
    if found is None:
        found = agreement(a.workspace, b.workspace, n=n, seed=seed, layer_a=settings.layer_a,
                          layer_b=settings.layer_b, progress=progress, method=settings.method, image_from=source,
                          engine_a=a.engine, engine_b=b.engine)
        agreement_results().put(key, found)
    return found


# ------------------------------------------------------------------------------------------- drawing
def _verdict(side: ModelSide, true_name: str | None) -> str:
    if true_name is None:
        return ""
    return ":green-badge[✓ correct]" if side.predicted_name == true_name else ":red-badge[✗ wrong]"


def render_side(which: str, key: str, side: ModelSide, true_name: str | None) -> None:
    """One model's prediction and top-5, under its pictures."""
    p = side.probabilities
    st.markdown(f"**{which.upper()} · {workspace_label(key)}** predicts **{side.predicted_name}** "
                f"({p[side.predicted]:.0%}) {_verdict(side, true_name)}")
    rows = [{"class": name, "probability": probability} for _, name, probability in side.top5()]
    st.dataframe(rows, hide_index=True, width="stretch", key=f"compare.top5.{which}",
                 column_config={"class": st.column_config.TextColumn("Top-5"),
                                "probability": st.column_config.ProgressColumn("Probability", format="percent",
                                                                               min_value=0.0, max_value=1.0)})
    explained = "" if side.target_class == side.predicted else f" · explains {side.target_name}"
    st.caption(f"{CAM_METHODS[side.method].title} at `{side.layer}`{explained}")


def render_pictures(view: ComparisonView, keys: tuple[str, str], settings: Settings) -> None:
    """The image, each model's overlay and heatmap, and the difference, side by side."""
    original_col, a_col, b_col, difference_col = st.columns(4)
    size = f"{view.image.shape[0]}×{view.image.shape[1]}"
    original_col.image(view.image, width="stretch", caption=f"The image ({view.sample.describe()}) · {size}")
    for column, which, key in ((a_col, "a", keys[0]), (b_col, "b", keys[1])):
        _, heat, blended = view.pictures(which, settings.opacity, settings.colormap)
        side = view.side(which)
        column.image(blended, width="stretch", caption=f"{which.upper()} · {key}: where it looks "
                                                       f"(for {side.target_name})")
        with column.expander("Heatmap"):
            st.image(heat, width="stretch", caption=f"{which.upper()} heatmap · {settings.colormap}")
    difference_col.image(view.difference_picture(), width="stretch",
                         caption=f"Difference: red where A ({keys[0]}) looks more, blue where B ({keys[1]}) does")


def render_comparison(view: ComparisonView, keys: tuple[str, str], settings: Settings) -> None:
    render_pictures(view, keys, settings)
    a_col, b_col, story_col = st.columns([1, 1, 1.3], gap="medium")
    with a_col:
        render_side("a", keys[0], view.a, view.sample.true_name)
    with b_col:
        render_side("b", keys[1], view.b, view.sample.true_name)
    with story_col:
        st.markdown("**What this image shows**")
        st.markdown("\n\n".join(image_story(view)))


def _sample_controls(size: int) -> tuple[int, int]:
    if C.sample_size.get() is None or not 1 <= C.sample_size.get() <= size:
        C.sample_size.set(min(DEFAULT_SAMPLE, size))
    C.seed.setdefault(C.seed.default)
    n_col, seed_col, _ = st.columns([1, 1, 3])
    n = n_col.number_input("Images in the sample", min_value=1, max_value=size, step=10, key=C.sample_size,
                           persist_state="session", help="Drawn at random (seeded) from the image's test set")
    seed = seed_col.number_input("Seed", min_value=0, max_value=2**32 - 1, step=1, key=C.seed,
                                 persist_state="session")
    return int(n), int(seed)


def agreement_work(a: LoadedWorkspace, b: LoadedWorkspace, n: int) -> int:
    """Images × input pixels of both models: what decides whether the sample is computed on opening the page."""
    return n * sum(int(np.prod(loaded.workspace.input_size)) for loaded in (a, b))


def render_agreement(a: LoadedWorkspace, b: LoadedWorkspace, settings: Settings, source: str) -> Agreement | None:
    """The two models over a seeded sample: computed on opening for a small pair, else on the button; cached."""
    st.subheader("Over a sample of test images", anchor=False)
    size = len((a if source == "a" else b).workspace.test_set)
    n, seed = _sample_controls(size)
    key = agreement_key(a, b, settings, n, seed, source)
    result = agreement_results().get(key)
    if result is None:
        automatic = agreement_work(a, b, n) <= AUTO_AGREEMENT_WORK
        if not automatic and not st.button(f"Compare on {n} images", icon=":material/play_arrow:", type="primary",
                                           help="Both models explain each image; one engine call per batch of 64"):
            st.caption(f"Both models explain {n} images at their layers: for these models that takes a while on "
                       "a CPU, so it waits for the button.")
            return None
        bar = st.progress(0.0, text=f"Both models explain {n} test images…")
        started = time.perf_counter()
        result = compute_agreement(a, b, settings, n, seed, source,
                                   progress=lambda fraction, text: bar.progress(min(1.0, fraction), text=text))
        bar.progress(1.0, text=f"Done in {time.perf_counter() - started:.1f} s")
    render_agreement_numbers(result)
    return result


def render_agreement_numbers(result: Agreement) -> None:
    a, b = result.workspace_a, result.workspace_b
    columns = st.columns(4)
    rate = result.agreement_rate
    columns[0].metric("Same prediction", "n/a" if rate is None else _pct(rate),
                      help="Share of the sample's images on which both models predict the same class (by name)")
    columns[1].metric("Map rank correlation", "n/a" if result.spearman_mean is None else f"{result.spearman_mean:.2f}",
                      help="Mean Spearman correlation of the two maps (1: the same pixels ranked alike)")
    for column, label, (value_a, value_b) in ((columns[2], "Attention on the object", result.energy_object_mean),
                                              (columns[3], "Attention on the marker", result.energy_marker_mean)):
        if value_a is not None:
            column.metric(label, f"{_pct(value_a)} · {_pct(value_b)}", help=f"Mean share of the map: {a} · {b}")
    st.caption(" ".join(result.summary()[:1]) + f" Computed in {result.seconds:.1f} s.")
    render_disagreements(result)
    with st.expander("Every image of the sample"):
        st.dataframe(result.table(), hide_index=True, key="compare.sample_table")
        st.download_button("Download the sample (CSV)", result.csv(), file_name=f"compare_{a}_{b}.csv",
                           mime="text/csv", on_click="ignore", icon=":material/download:")


def render_disagreements(result: Agreement, limit: int = 8) -> None:
    """Buttons that show an image of the sample on which the two models disagree."""
    disagree = np.flatnonzero(~result.agree)[:limit]
    if not len(disagree) or not result.compatibility.shared_classes:
        return
    st.markdown("Images where they disagree (click to compare them above):")
    columns = st.columns(len(disagree))
    table = result.table()
    for column, row in zip(columns, disagree, strict=True):
        index = int(result.indices[row])
        column.button(f"{index} · {table['true'][row] or '?'}", key=f"compare.disagree.{index}",
                      on_click=pick_index, args=(result.source, index), width="stretch",
                      help=f"A: {table['pred_a'][row]}, B: {table['pred_b'][row]}")


def comparison_finding(a: LoadedWorkspace, b: LoadedWorkspace, view: ComparisonView, settings: Settings,
                       note: str) -> Finding:
    """The comparison on screen as one "compare" finding (the pictures as shown), linked to the first model's
    view in the explorer."""
    payload = view.finding_payload(settings.opacity, settings.colormap, workspace_keys=(a.key, b.key))
    finding = pin_view(payload, note=note)
    return replace(finding, link=finding_link(finding, page_url()))


def render_page(loaded: LoadedWorkspace) -> None:
    """Everything under the title: the pair, the image, the settings, the comparison, the pin, the sample."""
    key_a, key_b = render_pair_pickers(workspace_choices(), loaded.key)
    pair = load_pair(key_a, key_b)
    if pair is None:
        return
    a, b, compatibility = pair
    image = render_image_picker(a, b)
    settings = render_settings(a, b, compatibility)
    story_slot = st.container()  # the sample's story, on top: it is what a stakeholder should read first
    if image is not None:
        try:
            with st.spinner("Both models explain the image…", show_time=True):
                view = comparison(pair_key(a, b), image.key, (settings.layer_a, settings.layer_b), settings.method,
                                  settings.target, a, b, image)
        except (ValueError, TypeError, IndexError) as error:
            st.error(f"**The two models could not be compared on this image.** {error}", icon=":material/block:")
        else:
            render_comparison(view, (a.key, b.key), settings)
            pin_col, _ = st.columns([2, 3])
            with pin_col:
                render_pin_controls("compare", lambda note: comparison_finding(a, b, view, settings, note))
    source = image.source if image is not None and image.source != UPLOAD else default_image_source(
        a.workspace, b.workspace)
    result = render_agreement(a, b, settings, source)
    story = sample_story(result) if result is not None else []
    if story:
        story_slot.success("\n\n".join(story), icon=":material/lightbulb:")
