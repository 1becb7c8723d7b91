"""The explorer's panels around the pictures: the top-5 chart, the downloads with the share link, the layer strip.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import streamlit as st

from dashboard import figures, report_view
from dashboard.explorer_link import ViewChoice, ViewState
from dashboard.samples import Sample
from dashboard.scorecam_view import PER_LAYER_NOTE
from dashboard.state import ExplorerState as E
from dashboard.workspaces import LoadedWorkspace
from gradcam_core import CAM_METHODS, upsample


@st.cache_resource(show_spinner=False, max_entries=64)
def topk_chart(model_id: str, sample_key: str, target_class: int | None, _probabilities: np.ndarray,
               _class_names: list[str], _true_label: int | None):
    """The top-5 figure of one (model, sample, explained class — None for a method without one), built once:
    plotly's layout validation made building it the largest part of an opacity rerun. A resource (shared, not
    copied); nothing mutates it."""
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


def select_layer(layer: str) -> None:
    E.layer.set(layer)


def render_layer_strip(loaded: LoadedWorkspace, pixels: np.ndarray, maps: dict[str, np.ndarray], choice: ViewChoice,
                       sample_key: str) -> None:
    """A small overlay per conv layer, shallow to deep, in an expander; the button under each selects that layer."""
    title, names = CAM_METHODS[choice.method].title, loaded.class_names
    about = f"for '{names[choice.target_class]}' " if choice.uses_target else ""
    with st.expander(f"Layer strip: {title} {about}at all {len(loaded.layers)} conv layers, shallow → deep (pick "
                     "one to show it above)", expanded=True):
        factor = figures.display_factor(*pixels.shape[:2], target=112)
        small = figures.enlarge(pixels, factor)
        maps_key = (sample_key, choice.target_class if choice.uses_target else None, choice.method, small.shape[:2],
                    tuple(maps))
        pictures = strip_pictures(loaded.model_id, maps_key, choice.colormap, small, maps)
        st.caption(f"Overlays at a fixed opacity of {STRIP_OPACITY}, so every layer's map stays visible whatever the "
                   "slider above says.")
        many = len(loaded.layers) > 16
        grid = st.grid("auto", min_column_width=104, gap="small", height=420 if many else "content")
        for layer in loaded.layers:
            channels, height, width = loaded.layer_shapes.get(layer, (0, 0, 0))
            with grid.cell():
                if layer in pictures:
                    st.image(pictures[layer], width="stretch")
                else:  # a method computed per layer (Score-CAM) has only the layers the user picked
                    st.caption(PER_LAYER_NOTE)
                st.button(layer, key=f"explorer.strip.{layer}", on_click=select_layer, args=(layer,),
                          type="primary" if layer == choice.layer else "secondary", width="stretch",
                          help=f"{layer} · output {channels}×{height}×{width}")


# ---------------------------------------------------------------------------------------- downloads, link
def view_payload(loaded: LoadedWorkspace, sample: Sample, view: ViewState, probabilities: np.ndarray,
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


def render_downloads(loaded: LoadedWorkspace, sample: Sample, view: ViewState, probabilities: np.ndarray,
                     target_class: int, cam: np.ndarray, pictures: Callable[[], tuple[np.ndarray, np.ndarray]],
                     link: str) -> None:
    """The view's files: ``pictures()`` gives (heatmap, overlay) exactly as the viewer shows them."""
    st.markdown("**Downloads**")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{loaded.key}_{sample.item_id or sample.file_name}_{view.layer}_"
                                             f"{view.method}_{loaded.class_names[target_class]}")
    payload = view_payload(loaded, sample, view, probabilities, target_class, cam, link)
    downloads = [
        # PNGs are made and encoded when clicked, not on every rerun (deferred download data)
        ("overlay.png", lambda: figures.png_bytes(pictures()[1]), "_overlay.png", "image/png",
         "The overlay as shown"),
        ("heatmap.png", lambda: figures.png_bytes(pictures()[0]), "_heatmap.png", "image/png",
         "The coloured heatmap as shown"),
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
    report_view.render_add_to_report(loaded, payload, cam)
