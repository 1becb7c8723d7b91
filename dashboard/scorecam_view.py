"""Score-CAM in the explorer: one layer at a time, on demand, with progress, kept like Eigen-CAM.

Score-CAM runs the model once per channel of a layer and image (128 forwards at the shapes model's head.0, 2048 of
224 px at resnet50's layer4), so the explorer never sweeps it over every layer as it does the other methods:
``scorecam_maps`` returns the shown layer's map only — kept in ``st.cache_data`` per (model id, sample key, target
class, layer); on a miss computed by ``gradcam_core.scorecam.score_cam`` with an ``st.progress`` bar fed by its
``progress`` callback (drawn outside the cache: see ``dashboard.faithfulness_view``).

How the explorer uses this module (its view code stays its own):

- the Method control lists ``EXPLORER_METHODS`` (the every-layer methods, then Score-CAM);
- ``maps_for`` returns ``scorecam_maps(loaded, sample, tensor, target, layer)`` for Score-CAM — a dict with the
  shown layer only — and the layer strip writes ``PER_LAYER_NOTE`` under the layers that have no map;
- Score-CAM explains a class (its masked inputs are scored by the target's logit): ``depends_on_class``.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from dashboard.cams import SWEEP_METHODS
from dashboard.faithfulness_view import progress_bar, require, stored_or_computed
from dashboard.samples import Sample
from dashboard.workspaces import LoadedWorkspace
from gradcam_core import CAM_METHODS
from gradcam_core.scorecam import score_cam

SCORECAM = "scorecam"
#: The explorer's Method control: every method computed at every layer, then Score-CAM (one layer on demand).
EXPLORER_METHODS: tuple[str, ...] = (*SWEEP_METHODS, SCORECAM)
PER_LAYER_NOTE = "Score-CAM is computed per layer: pick this layer to compute it."


def computed_per_layer(method: str) -> bool:
    """True for methods that run the model per channel (Score-CAM): one layer at a time, never a sweep."""
    return bool(getattr(CAM_METHODS[method], "needs_model", False))


def depends_on_class(method: str) -> bool:
    """Whether the method's map changes with the target class: the gradient methods and Score-CAM (its channel
    scores are the target's logit), not Eigen-CAM."""
    return bool(CAM_METHODS[method].needs_gradients or computed_per_layer(method))


@st.cache_data(show_spinner=False, max_entries=64)
def _stored_scorecam(model_id: str, sample_key: str, target: int, layer: str,
                     _value: np.ndarray | None = None) -> np.ndarray:
    return require(_value)


def scorecam_map(loaded: LoadedWorkspace, sample_key: str, tensor: torch.Tensor, target: int,
                 layer: str) -> np.ndarray:
    """Score-CAM of one image at one layer for one class, (h, w) in [0, 1]: kept, or computed now with a bar."""
    channels = loaded.layer_shapes.get(layer, (0,))[0]

    def compute() -> np.ndarray:
        bar, report = progress_bar(f"Score-CAM at {layer}: scoring the image masked by each of its {channels} "
                                   "channels —")
        result = score_cam(loaded.engine, tensor, layer, int(target), progress=report)
        bar.empty()
        return np.ascontiguousarray(result.cams[SCORECAM][layer][0])

    return stored_or_computed(_stored_scorecam, (loaded.model_id, sample_key, int(target), layer), compute)


def scorecam_maps(loaded: LoadedWorkspace, sample: Sample, tensor: torch.Tensor, target: int,
                  layer: str | None) -> dict[str, np.ndarray]:
    """``{layer: map}`` with the shown layer only (the default layer when ``layer`` is not one of the picker's):
    what the explorer's ``maps_for`` returns for Score-CAM instead of every layer's maps."""
    layer = layer if layer in loaded.layers else loaded.default_layer
    return {layer: scorecam_map(loaded, sample.key, tensor, target, layer)}
