"""The explorer page's session state and its larger widgets (gallery, layer strip).

Widget values live in ``st.session_state`` under ``explorer.*`` keys. They are seeded once per session from the
URL (validated by ``view_state``), reset to defaults when the workspace changes, re-seeded from the last view when
Streamlit dropped them (after a visit to another page), and written back to the URL after every run.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import replace

import numpy as np
import streamlit as st

from dashboard import compute, figures
from dashboard.sampling import CLASS_FILTER_PREFIX, FILTER_ALL, FILTER_CORRECT, FILTER_WRONG, filter_options
from dashboard.view_state import WORKSPACE_PARAM, ViewOptions, ViewState, default_state, parse_query_params
from dashboard.workspaces import LoadedWorkspace
from gradcam_core import CAM_METHODS, upsample

WIDGET_KEYS = {
    "seed": "explorer.seed",
    "filter": "explorer.filter",
    "layer": "explorer.layer",
    "method": "explorer.method",
    "target": "explorer.target",
    "opacity": "explorer.opacity",
    "colormap": "explorer.colormap",
}
SAMPLE_KEY = "explorer.sample"  # selected test index, or None for the gallery's first image
SOURCE_KEY = "explorer.source"  # "test" or "upload": what the view shows
UPLOAD_KEY = "explorer.upload"
_VIEW_KEY = "explorer._view"  # (workspace key, last ViewState)


def restore_view(loaded: LoadedWorkspace, options: ViewOptions) -> list[str]:
    """Seed the widgets' state before they are drawn; returns warnings about values the URL got wrong."""
    state = st.session_state
    saved = state.get(_VIEW_KEY)
    warnings: list[str] = []
    if saved is None or saved[0] != loaded.key:
        if saved is None:  # first run of this session: the shared link decides
            view, warnings = parse_query_params(st.query_params.to_dict(), options)
        else:  # another workspace was picked: its layers and classes differ, start from its defaults
            view = default_state(options)
        for key in WIDGET_KEYS.values():
            state.pop(key, None)
        state[SAMPLE_KEY] = view.sample if isinstance(view.sample, int) else None
        state[SOURCE_KEY] = "test"
        saved = (loaded.key, view)
        state[_VIEW_KEY] = saved
    for field, key in WIDGET_KEYS.items():
        if key not in state:
            state[key] = getattr(saved[1], field)
    state.setdefault(SAMPLE_KEY, None)
    state.setdefault(SOURCE_KEY, "test")
    return warnings


def remember_view(loaded: LoadedWorkspace, view: ViewState) -> None:
    st.session_state[_VIEW_KEY] = (loaded.key, view)


EXPLORER_PAGE = "pages/explorer.py"


def open_in_explorer(loaded: LoadedWorkspace, index: int, layer: str | None = None) -> None:
    """Show test image ``index`` (and ``layer``, when given) in the explorer, in this session and workspace.

    For other pages: call it when their "open in the explorer" button was pressed (not from a callback:
    ``st.switch_page`` ends the run). The explorer's other settings stay as the user left them.
    """
    state = st.session_state
    saved = state.get(_VIEW_KEY)
    if saved is not None and saved[0] == loaded.key:
        view = saved[1]
    else:  # the explorer was not open yet in this workspace: its defaults, and no URL of another page decides
        view = ViewState(layer=loaded.default_layer)
        for key in WIDGET_KEYS.values():
            state.pop(key, None)
    if layer is not None and layer in loaded.layers:
        view = replace(view, layer=layer)
        state[WIDGET_KEYS["layer"]] = layer
    state[_VIEW_KEY] = (loaded.key, replace(view, sample=int(index)))
    state[SAMPLE_KEY] = int(index)
    state[SOURCE_KEY] = "test"
    st.switch_page(EXPLORER_PAGE, query_params={WORKSPACE_PARAM: loaded.key, "sample": str(int(index))})


def explorer_selection(loaded: LoadedWorkspace) -> tuple[int | None, str]:
    """(test index, layer) the explorer last showed in this session for this workspace: (None, default layer)
    when it has not been opened (other pages start from it)."""
    saved = st.session_state.get(_VIEW_KEY)
    if saved is None or saved[0] != loaded.key:
        return None, loaded.default_layer
    view = saved[1]
    sample = view.sample if isinstance(view.sample, int) else st.session_state.get(SAMPLE_KEY)
    layer = view.layer if view.layer in loaded.layers else loaded.default_layer
    return (int(sample) if isinstance(sample, int) else None), layer


# --------------------------------------------------------------------------------------------- callbacks
def select_sample(index: int) -> None:
    st.session_state[SAMPLE_KEY] = int(index)
    st.session_state[SOURCE_KEY] = "test"


def reset_sample() -> None:
    """A new seed or filter shows a new gallery: select its first image."""
    st.session_state[SAMPLE_KEY] = None
    st.session_state[SOURCE_KEY] = "test"


def shuffle() -> None:
    st.session_state[WIDGET_KEYS["seed"]] = secrets.randbelow(100_000)
    reset_sample()


def select_layer(layer: str) -> None:
    st.session_state[WIDGET_KEYS["layer"]] = layer


def on_upload() -> None:
    st.session_state[SOURCE_KEY] = "upload" if st.session_state.get(UPLOAD_KEY) is not None else "test"


def show_upload() -> None:
    st.session_state[SOURCE_KEY] = "upload"


# --------------------------------------------------------------------------------------------- gallery
def filter_label(value: str, class_names: list[str]) -> str:
    if value.startswith(CLASS_FILTER_PREFIX):
        return f"Class: {class_names[int(value[len(CLASS_FILTER_PREFIX):])]}"
    return {FILTER_ALL: "All", FILTER_CORRECT: "Correct only", FILTER_WRONG: "Misclassified only"}[value]


@st.cache_data(show_spinner=False, max_entries=32)
def gallery_thumbnails(model_id: str, workspace_key: str, indices: tuple[int, ...], correct: tuple[bool, ...],
                       _loaded: LoadedWorkspace) -> list[bytes]:
    """PNG bytes of the framed thumbnails, encoded once: re-encoding 20 images cost ~40 ms on every rerun."""
    test_set = _loaded.workspace.test_set
    return [figures.png_bytes(figures.thumbnail(test_set.image(i), ok)) for i, ok in zip(indices, correct, strict=True)]


def render_gallery_controls(class_names: list[str]) -> None:
    seed_col, shuffle_col, filter_col = st.columns([1, 1, 1.5], vertical_alignment="bottom")
    seed_col.number_input("Seed", min_value=0, max_value=2**32 - 1, step=1, key=WIDGET_KEYS["seed"],
                          on_change=reset_sample, help="The 20 images are drawn at random with this seed.")
    shuffle_col.button("Shuffle", icon=":material/shuffle:", on_click=shuffle, width="stretch",
                       help="Draw 20 other test images (a new random seed)")
    filter_col.selectbox("Show", filter_options(len(class_names)), key=WIDGET_KEYS["filter"],
                         format_func=lambda v: filter_label(v, class_names), on_change=reset_sample)


def render_gallery(loaded: LoadedWorkspace, predictions: compute.TestPredictions, indices: np.ndarray,
                   selected: int | None) -> None:
    class_names = loaded.class_names
    correct = predictions.correct
    st.caption(f"The model gets {int(correct.sum())} of {len(correct)} test images right "
               f"({predictions.accuracy:.1%}). Green ✓ correct · red ✗ misclassified, as true → predicted.")
    if len(indices) == 0:
        st.info("No test image matches this filter (for 'Misclassified only': the model gets every test image "
                "right).")
        return
    thumbs = gallery_thumbnails(loaded.model_id, loaded.key, tuple(int(i) for i in indices),
                                tuple(bool(correct[i]) for i in indices), loaded)
    grid = st.grid(5, gap="xsmall", min_column_width=64)
    for index, thumb in zip(indices, thumbs, strict=True):
        index = int(index)
        true_name, pred_name = class_names[predictions.labels[index]], class_names[predictions.predicted[index]]
        ok = bool(correct[index])
        # Two lines for every cell, so the buttons of a row line up.
        caption = f":green[✓ {true_name}]  \n:gray[correct]" if ok else f":red[✗ {true_name}]  \n→ {pred_name}"
        with grid.cell():
            st.image(thumb, width="stretch", caption=caption)
            st.button(
                f"#{index}", key=f"explorer.pick.{index}", on_click=select_sample, args=(index,), width="stretch",
                type="primary" if index == selected else "secondary",
                help=f"Show test image #{index} · true: {true_name} · predicted: {pred_name} "
                     f"({'correct' if ok else 'misclassified'})",
            )
    if selected is not None and selected not in set(int(i) for i in indices):
        st.caption(f"The image on the right (#{selected}) is not among these 20.")


# ------------------------------------------------------------------------------------------- layer strip
@st.cache_resource(show_spinner=False, max_entries=64)
def topk_chart(model_id: str, sample_key: str, target_class: int, _probabilities: np.ndarray,
               _class_names: list[str], _true_label: int | None):
    """The top-5 figure of one (model, sample, explained class), built once: plotly's layout validation made
    building it the largest part of an opacity rerun. A resource (shared, not copied); nothing mutates it."""
    return figures.topk_figure(_probabilities, _class_names, _true_label, target_class)


#: The strip compares where each layer looks, so its overlays keep one opacity whatever the slider says (at
#: opacity 0 every cell would be the same plain image), and re-blending 12-53 pictures on every slider move was
#: most of an opacity rerun.
STRIP_OPACITY = 0.6


@st.cache_data(show_spinner=False, max_entries=16)
def strip_pictures(model_id: str, maps_key: tuple, colormap: str, _small: np.ndarray,
                   _maps: dict[str, np.ndarray]) -> dict[str, bytes]:
    """PNG bytes of every layer's overlay at ``STRIP_OPACITY``, once per (sample, target, method, colormap)."""
    size = _small.shape[:2]
    return {layer: figures.png_bytes(figures.overlay_picture(_small, upsample(cam, size), STRIP_OPACITY, colormap))
            for layer, cam in _maps.items()}


def render_layer_strip(loaded: LoadedWorkspace, pixels: np.ndarray, maps: dict[str, np.ndarray], current: str,
                       colormap: str, maps_key: tuple) -> None:
    """A small overlay per conv layer, shallow to deep; the button under each selects that layer.

    ``maps_key`` identifies ``maps`` (sample key, target class, method) for the cache of the strip's pictures."""
    factor = figures.display_factor(*pixels.shape[:2], target=112)
    small = figures.enlarge(pixels, factor)
    pictures = strip_pictures(loaded.model_id, (*maps_key, small.shape[:2]), colormap, small, maps)
    st.caption(f"Overlays at a fixed opacity of {STRIP_OPACITY}, so every layer's map stays visible whatever the "
               "slider above says.")
    many = len(loaded.layers) > 16
    grid = st.grid("auto", min_column_width=104, gap="small", height=420 if many else "content")
    for layer in loaded.layers:
        channels, height, width = loaded.layer_shapes.get(layer, (0, 0, 0))
        with grid.cell():
            st.image(pictures[layer], width="stretch")
            st.button(layer, key=f"explorer.strip.{layer}", on_click=select_layer, args=(layer,),
                      type="primary" if layer == current else "secondary", width="stretch",
                      help=f"{layer} · output {channels}×{height}×{width}")


# ---------------------------------------------------------------------------------------- downloads, link
def view_payload(loaded: LoadedWorkspace, sample: compute.Sample, view: ViewState, probabilities: np.ndarray,
                 target_class: int, cam: np.ndarray, link: str) -> dict:
    """The view as JSON: ids, top-5, layer, method, target, and the link that reopens it."""
    names = loaded.class_names
    predicted = int(np.argmax(probabilities))
    if sample.is_upload:
        about = {"upload_sha256": sample.key.split(":", 1)[1], "file_name": sample.file_name}
    else:
        about = {"index": sample.index, "item_id": sample.item_id, "true_class": sample.label,
                 "true_label": names[sample.label]}
    return {
        "workspace": loaded.key,
        "model_id": loaded.model_id,
        "sample": about,
        "predicted": {"class": predicted, "label": names[predicted], "probability": float(probabilities[predicted])},
        "top5": [{"class": int(c), "label": names[c], "probability": float(probabilities[c])}
                 for c in np.argsort(-probabilities, kind="stable")[:5]],
        "layer": view.layer,
        "layer_shape": list(loaded.layer_shapes.get(view.layer, ())),
        "map_shape": list(cam.shape),
        "method": view.method,
        "method_title": CAM_METHODS[view.method].title,
        "target": {"mode": view.target if isinstance(view.target, str) else "class", "class": int(target_class),
                   "label": names[target_class]},
        "opacity": view.opacity,
        "colormap": view.colormap,
        "seed": view.seed,
        "filter": view.filter,
        "link": link,
    }


def render_downloads(loaded: LoadedWorkspace, sample: compute.Sample, view: ViewState, probabilities: np.ndarray,
                     target_class: int, cam: np.ndarray, heat: np.ndarray, blended: np.ndarray, link: str) -> None:
    st.markdown("**Downloads**")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{loaded.key}_{sample.item_id or sample.file_name}_{view.layer}_"
                                             f"{view.method}_{loaded.class_names[target_class]}")
    payload = view_payload(loaded, sample, view, probabilities, target_class, cam, link)
    downloads = [
        # PNGs are encoded when clicked, not on every rerun (deferred download data)
        ("overlay.png", lambda: figures.png_bytes(blended), "_overlay.png", "image/png", "The overlay as shown"),
        ("heatmap.png", lambda: figures.png_bytes(heat), "_heatmap.png", "image/png", "The coloured heatmap as shown"),
        ("map.npy", figures.npy_bytes(cam), "_map.npy", "application/octet-stream",
         f"The raw {cam.shape[0]}×{cam.shape[1]} float32 map in [0, 1], at the layer's resolution"),
        ("view.json", figures.view_json(payload), "_view.json", "application/json",
         "Ids, top-5, layer, method, target and the link of this view"),
    ]
    for i, (text, data, suffix, mime, help_text) in enumerate(downloads):
        st.download_button(text, data, file_name=stem + suffix, mime=mime, on_click="ignore",
                           icon=":material/download:", width="stretch", key=f"explorer.download.{i}", help=help_text)
    st.markdown("**Share this view**")
    st.code(link, language=None, wrap_lines=False)  # one line with a copy button; the URL bar has it too
    if sample.is_upload:
        st.caption("Uploaded images stay in your browser session: the link opens on a test image.")
