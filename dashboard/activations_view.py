"""The activation-maps page's pieces: which sample and layer it starts on, the ranked channel grid, pictures.

Raw responses of a Conv2d layer for one test image, no gradient weighting: channels ranked by a spatial statistic
(``analysis.channels.rank_channels``), shown on one colour scale so a brighter cell is a stronger response.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from analysis.channels import channel_mean_map, rank_channels
from dashboard import figures
from dashboard.views_compute import display_maps

KEYS = {
    "sample": "activations.sample",
    "layer": "activations.layer",
    "count": "activations.count",
    "statistic": "activations.statistic",
    "channel": "activations.channel",
    "workspace": "activations._workspace",
}
GRID_COLORMAP = "viridis"
STATISTICS = {"mean": "Mean activation", "max": "Max activation"}


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


def reset_for_workspace(workspace_key: str, sample: int, layer: str, num_test: int) -> None:
    """Seed the page's widgets from the explorer's selection on the first visit, and again after the workspace
    changed (its layers and test images differ)."""
    state = st.session_state
    if state.get(KEYS["workspace"]) != workspace_key:
        for key in KEYS.values():
            state.pop(key, None)
        state[KEYS["workspace"]] = workspace_key
    if not isinstance(state.get(KEYS["sample"]), int) or not 0 <= state[KEYS["sample"]] < num_test:
        state[KEYS["sample"]] = int(sample)
    state.setdefault(KEYS["layer"], layer)
    state.setdefault(KEYS["count"], 16)
    state.setdefault(KEYS["statistic"], "mean")


def pick_channel(channel: int) -> None:
    st.session_state[KEYS["channel"]] = int(channel)
