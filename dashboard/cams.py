"""Every layer's maps of one image, cached: ONE engine call gives every CAM layer for all gradient methods and one
target class, so switching layer or method, and moving the opacity or colormap, recompute nothing. A new image's
first call (``explain_predicted``) explains its predicted class and gives its logits in the same pass. Cache keys
are ids and strings (model id, sample key, target); the workspace and tensors travel as ``_``-prefixed arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from dashboard.samples import Sample
from dashboard.workspaces import LoadedWorkspace
from gradcam_core import CAM_METHODS, METHOD_NAMES


@st.cache_data(show_spinner=False, max_entries=256)
def sample_logits(model_id: str, sample_key: str, _loaded: LoadedWorkspace, _tensor: torch.Tensor) -> np.ndarray:
    """(num_classes,) logits of one image: a single cheap forward, so the view never waits for the test split."""
    with _loaded.lock:
        return _loaded.engine.predict(_tensor)[0]


GRADIENT_METHODS = tuple(m for m in METHOD_NAMES if CAM_METHODS[m].needs_gradients)
#: The methods the explorer computes at every layer of an image. Score-CAM (``needs_model``: one forward per
#: channel) is left out here: it is computed for one layer on demand.
SWEEP_METHODS = tuple(m for m in METHOD_NAMES if not getattr(CAM_METHODS[m], "needs_model", False))


@dataclass
class SampleCams:
    """Some methods' maps at every layer for one image (and one target class, for gradient methods)."""

    target: int | None  # None for gradient-free methods: their maps do not depend on the class
    cams: dict[str, dict[str, np.ndarray]]  # method -> layer -> (h, w) float32 in [0, 1]


def _package(result, target: int | None) -> SampleCams:
    cams = {method: {layer: np.ascontiguousarray(maps[0]) for layer, maps in per.items()}
            for method, per in result.cams.items()}
    return SampleCams(target=target, cams=cams)


@st.cache_data(show_spinner=False, max_entries=64)
def explain_sample(model_id: str, sample_key: str, target: int, _loaded: LoadedWorkspace,
                   _tensor: torch.Tensor) -> SampleCams:
    """Every gradient-based method at every layer of the picker (Conv2d, then transformer blocks) for one image
    and one target: one forward, one backward.

    Keyed by (model id, sample key, target): switching layer or between these methods, or moving the
    opacity/colormap, reuses it. The misclassified comparison asks for the predicted and the true class as two
    entries, which on a CPU was faster than the engine's batched-over-targets backward for K=2 when measured.
    """
    with _loaded.lock:
        result = _loaded.engine.explain(_tensor, layers=_loaded.layers, targets=int(target), methods=GRADIENT_METHODS)
    return _package(result, int(target))


@dataclass
class FirstPass:
    """What one forward and one backward give for a new image: its logits, and every gradient method's maps for
    the class it predicts (the explorer's default target)."""

    logits: np.ndarray  # (num_classes,) float32
    maps: SampleCams

    @property
    def predicted(self) -> int:
        return int(self.maps.target)


@st.cache_data(show_spinner=False, max_entries=64)
def explain_predicted(model_id: str, sample_key: str, _loaded: LoadedWorkspace, _tensor: torch.Tensor
                      ) -> FirstPass:
    """The first pass over a new image: ``explain(targets=None)`` explains the predicted class and returns the
    logits too, so the explorer's first heatmap needs no separate forward for the prediction."""
    with _loaded.lock:
        result = _loaded.engine.explain(_tensor, layers=_loaded.layers, targets=None, methods=GRADIENT_METHODS)
    return FirstPass(logits=np.asarray(result.logits[0]), maps=_package(result, int(result.targets[0])))


@st.cache_data(show_spinner=False, max_entries=32)
def explain_without_gradients(model_id: str, sample_key: str, method: str, _loaded: LoadedWorkspace,
                              _tensor: torch.Tensor) -> SampleCams:
    """A gradient-free method (Eigen-CAM) at every layer for one image, computed only when picked and once per
    image: it does not depend on the class, so it is cached per (image, method) rather than per target, and a
    first paint never waits for its per-layer work (Eigen-CAM's eigendecompositions were the slowest part of a
    ResNet-50 pass when measured). One method per call: a perturbation method added later must not be computed
    at every layer because another gradient-free method was picked."""
    result = _loaded.engine.explain(_tensor, layers=_loaded.layers, methods=(method,))
    return _package(result, None)


def layer_maps(loaded: LoadedWorkspace, sample: Sample, tensor: torch.Tensor, method: str,
               target: int, predicted: int | None = None) -> dict[str, np.ndarray]:
    """``method``'s map at every layer for ``target`` (cached; computes on a miss). ``predicted``: the image's
    predicted class, when known; its maps come from ``explain_predicted``."""
    if CAM_METHODS[method].needs_gradients:
        if predicted is not None and int(target) == int(predicted):
            return explain_predicted(loaded.model_id, sample.key, loaded, tensor).maps.cams[method]
        return explain_sample(loaded.model_id, sample.key, int(target), loaded, tensor).cams[method]
    return explain_without_gradients(loaded.model_id, sample.key, method, loaded, tensor).cams[method]
