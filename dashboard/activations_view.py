"""The activation-maps page's parts: which image and layer it starts on, one cached forward for every layer, the
ranked channel grid, and its pictures.

Raw responses of a Conv2d layer for one image (a test image or the explorer's upload), no gradient weighting:
channels ranked by a spatial statistic (``analysis.channels.rank_channels``), shown on one colour scale so a
brighter cell is a stronger response. Picking a channel reruns only the channel fragment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from analysis.channels import channel_mean_map, rank_channels
from dashboard import figures
from dashboard.explorer_view import explorer_selection, open_in_explorer
from dashboard.samples import Sample, SampleInput, UploadError, open_test_image, open_upload
from dashboard.state import ActivationsState as A
from dashboard.state import ExplorerState
from dashboard.workspaces import LoadedWorkspace

GRID_COLORMAP = "viridis"
STATISTICS = {"mean": "Mean activation", "max": "Max activation"}
SOURCES = {"test": "Test image", "upload": "Your upload"}


@st.cache_data(show_spinner=False, max_entries=4)
def sample_activations(model_id: str, sample_key: str, _loaded: LoadedWorkspace,
                       _tensor: torch.Tensor) -> dict[str, np.ndarray]:
    """layer -> (C, h, w) float32 raw Conv2d output (no gradient weighting) of one image, all layers from one
    forward. Bounded to 4 images: a ResNet-50's activations of one 224 px image are about 40 MB, and a
    recomputation is one forward pass."""
    captured = _loaded.engine.activations(_tensor, None)
    return {layer: np.ascontiguousarray(maps[0]) for layer, maps in captured.items()}


def display_maps(maps: np.ndarray) -> np.ndarray:
    """Channel maps (K, h, w) -> [0, 1] on ONE scale for the whole grid (negative responses as 0), so a brighter
    cell is a stronger response; an all-zero grid stays zero."""
    clipped = np.clip(np.asarray(maps, dtype=np.float32), 0.0, None)
    top = float(clipped.max()) if clipped.size else 0.0
    return clipped / top if top > 0 else clipped


@dataclass
class ChannelGrid:
    """The channels shown, strongest first, with their statistic and their maps scaled for display."""

    channels: np.ndarray  # (K,) int64
    values: np.ndarray  # (K,) float32
    pictures: np.ndarray  # (K, h, w) float32 in [0, 1], one scale for the grid
    scale: float  # the raw activation that maps to 1.0


def channel_grid(activation: np.ndarray, count: int, statistic: str = "mean") -> ChannelGrid:
    channels, values = rank_channels(activation, statistic, top=count)
    chosen = np.asarray(activation)[channels]
    top = float(np.clip(chosen, 0, None).max()) if chosen.size else 0.0
    return ChannelGrid(channels=channels, values=values, pictures=display_maps(chosen), scale=top)


def mean_map(activation: np.ndarray) -> np.ndarray:
    """The channel-mean map, min-max scaled to [0, 1] for display (all-equal stays zero)."""
    raw = channel_mean_map(activation)
    low, high = float(raw.min()), float(raw.max())
    return (raw - low) / (high - low) if high > low else np.zeros_like(raw)


def cell_picture(picture: np.ndarray, size: int = 96) -> np.ndarray:
    """One channel map as a crisp colour tile (nearest-neighbour, like the explorer's small images)."""
    return figures.heatmap_picture(picture, (size, size), GRID_COLORMAP)


def seed_state(loaded: LoadedWorkspace) -> None:
    """Start from the explorer's image (its upload too) and layer; keep what the user picked here since."""
    selection = explorer_selection(loaded)
    num_test = len(loaded.workspace.test_set)
    if not isinstance(A.sample.get(), int) or not 0 <= A.sample.get() < num_test:
        A.sample.set(selection.index if selection.index is not None else 0)
    if A.source.get() == "upload" and ExplorerState.upload.get() is None:
        A.source.set("test")
    A.source.setdefault("upload" if selection.upload else "test")
    A.layer.setdefault(selection.layer)
    A.count.setdefault(A.count.default)
    A.statistic.setdefault(A.statistic.default)


def pick_channel(channel: int) -> None:
    A.channel.set(int(channel))


def shown_image(loaded: LoadedWorkspace) -> tuple[Sample, SampleInput]:
    """The explorer's upload when chosen (and usable), else the chosen test image."""
    upload = ExplorerState.upload.get()
    if A.source.get() == "upload" and upload is not None:
        try:
            return open_upload(loaded, upload)
        except UploadError as err:
            st.error(f"**Could not use {upload.name}.** {err}", icon=":material/block:")
            A.source.set("test")
    return open_test_image(loaded, int(A.sample.get()))


def render_heading(loaded: LoadedWorkspace, sample: Sample, probabilities: np.ndarray, layer: str) -> None:
    names, predicted = loaded.class_names, int(np.argmax(probabilities))
    head_col, link_col = st.columns([4, 1.3], vertical_alignment="center")
    guess = f"predicted **{names[predicted]}** ({probabilities[predicted]:.1%})"
    if sample.is_upload:
        head_col.markdown(f"#### Uploaded image · {sample.file_name} · {guess}")
    else:
        verdict = ":green-badge[✓ correct]" if predicted == sample.label else ":red-badge[✗ misclassified]"
        head_col.markdown(f"#### Test image #{sample.index} · true **{names[sample.label]}** · {guess} {verdict}")
    what = "the upload" if sample.is_upload else f"#{sample.index}"
    if link_col.button(f"Open {what} in the explorer", icon=":material/open_in_new:", width="stretch",
                       key="activations.open", help=f"Grad-CAM of this image at {layer}"):
        open_in_explorer(loaded, sample.index, layer)


def render_channel(activation: np.ndarray, pixels: np.ndarray) -> int:
    """The picked channel and the channel mean, large and over the image; returns the picked channel."""
    shown = figures.enlarge(pixels, figures.display_factor(*pixels.shape[:2], target=224))
    if A.channel.get() not in set(range(activation.shape[0])):
        A.channel.set(int(rank_channels(activation, A.statistic.get(), top=1)[0][0]))
    picked_col, mean_col = st.columns(2, border=True)
    with picked_col:
        channel = st.selectbox(
            "Channel", range(activation.shape[0]), key=A.channel,
            format_func=lambda c: f"channel {c} · mean {activation[c].mean():.3g} · max {activation[c].max():.3g}",
            help="Or press a channel's button in the grid below")
        alone = display_maps(activation[channel][None])[0]
        _picture_pair(shown, alone, f"channel {channel} · {activation.shape[1]}×{activation.shape[2]} · scaled to "
                      "its own max", f"channel {channel} over the image")
    with mean_col:
        st.markdown(f"**Mean over all {activation.shape[0]} channels**")
        _picture_pair(shown, mean_map(activation), "channel mean · min-max scaled", "channel mean over the image")
    return int(channel)


def _picture_pair(shown: np.ndarray, picture: np.ndarray, caption: str, overlay_caption: str) -> None:
    left, right = st.columns(2)
    left.image(cell_picture(picture, shown.shape[0]), width="stretch", caption=caption)
    right.image(figures.overlay_picture(shown, picture, 0.55, GRID_COLORMAP), width="stretch", caption=overlay_caption)


def render_grid(grid: ChannelGrid, layer: str, channels_total: int, statistic: str, picked: int) -> None:
    st.markdown(f"##### Top {len(grid.channels)} of {channels_total} channels of `{layer}` by "
                f"{STATISTICS[statistic].lower()}")
    st.caption(f"One colour scale for the whole grid: black-blue 0 (or negative) → yellow {grid.scale:.3g}, the "
               "strongest response shown. Press a channel to enlarge it above.")
    cells = st.grid("auto", min_column_width=92, gap="small")
    for rank, (c, value, picture) in enumerate(zip(grid.channels, grid.values, grid.pictures, strict=True), start=1):
        with cells.cell():
            st.image(cell_picture(picture), width="stretch", caption=f"{rank}. {statistic} {value:.3g}")
            st.button(f"ch {int(c)}", key=f"activations.pick.{int(c)}", on_click=pick_channel, args=(int(c),),
                      width="stretch", type="primary" if int(c) == picked else "secondary")


@st.fragment
def channels_fragment(activation: np.ndarray, pixels: np.ndarray, layer: str, count: int, statistic: str) -> None:
    """The picked channel and the grid: picking a channel reruns only this (no forward, no page header)."""
    picked = render_channel(activation, pixels)
    render_grid(channel_grid(activation, count, statistic), layer, activation.shape[0], statistic, picked)
