"""Cached wrappers around the engine. Cache keys are ids and strings (model id, workspace key, sample key,
target classes); the loaded workspace and tensors travel as ``_``-prefixed arguments, which are not hashed.

- ``test_predictions``: the whole test split in one cached batched forward (correct/misclassified marks).
- ``explain_sample``:   every layer x every method for one sample and a few targets from ONE engine call, so
                        switching layer or method, and moving the opacity/colormap, recompute nothing.
- ``test_input`` / ``upload_input``: the model-ready tensor and the picture the model sees.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from PIL import Image

from analysis.forward import forward_image_set
from dashboard.workspaces import LoadedWorkspace
from gradcam_core import CAM_METHODS, METHOD_NAMES, denormalise
from gradcam_core.images import ImageLoadError, load_image


@dataclass
class TestPredictions:
    """The predicted class of every test image. Only the argmax is kept: ``st.cache_data`` hands every rerun a
    copy, and (N, num_classes) logits of a 50 000-image, 1000-class split would be 200 MB per rerun."""

    predicted: np.ndarray  # (N,) int64
    labels: np.ndarray  # (N,) int64

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.labels) else float("nan")


@st.cache_data(show_spinner=False, max_entries=8)
def test_predictions(model_id: str, workspace_key: str, _loaded: LoadedWorkspace) -> TestPredictions:
    """Predicted class of every test image: from the logits shipped with a bundled checkpoint, else batched
    no-grad forwards under the model's lock."""
    test_set = _loaded.workspace.test_set
    labels = np.asarray(test_set.labels, dtype=np.int64)
    shipped = getattr(_loaded.workspace, "test_logits", None)
    if shipped is not None:
        return TestPredictions(predicted=np.asarray(shipped).argmax(axis=1).astype(np.int64), labels=labels)
    return TestPredictions(predicted=forward_image_set(_loaded.engine, test_set).predicted, labels=labels)


# ------------------------------------------------------------------------------------------------ samples
@dataclass(frozen=True)
class Sample:
    """One image the explorer can show: a test image or an upload."""

    key: str  # cache key, stable across sessions: "test:<workspace>:<index>:<item id>" or "upload:<sha256>"
    label: int | None  # true class; None for an upload
    index: int | None = None  # test index
    item_id: str = ""
    file_name: str = ""

    @property
    def is_upload(self) -> bool:
        return self.index is None

    @property
    def link_value(self) -> str:
        """What ``?sample=`` holds for it."""
        return f"upload:{self.key.split(':', 1)[1][:12]}" if self.is_upload else str(self.index)


def test_sample(loaded: LoadedWorkspace, index: int) -> Sample:
    test_set = loaded.workspace.test_set
    item_id = str(test_set.item_id(index))
    return Sample(key=f"test:{loaded.key}:{index}:{item_id}", label=int(test_set.label(index)), index=int(index),
                  item_id=item_id)


@dataclass
class SampleInput:
    tensor: torch.Tensor  # (1, 3, H, W), normalised for the model
    pixels: np.ndarray  # (H, W, 3) uint8: the input as the model sees it (after the workspace's transform)


def _pixels(loaded: LoadedWorkspace, tensor: torch.Tensor) -> np.ndarray:
    workspace = loaded.workspace
    return denormalise(tensor[0], workspace.mean, workspace.std)


@st.cache_data(show_spinner=False, max_entries=64)  # an ImageNet-size input is 0.75 MB; remaking one costs ms
def test_input(model_id: str, sample_key: str, index: int, _loaded: LoadedWorkspace) -> SampleInput:
    tensor = _loaded.workspace.test_set.tensors([index]).float()
    return SampleInput(tensor=tensor, pixels=_pixels(_loaded, tensor))


class UploadError(ValueError):
    """An uploaded file the dashboard cannot explain; the message says why, for the user."""


def decode_image(data: bytes, file_name: str = "the file") -> Image.Image:
    """Bytes of an image file -> upright RGB PIL image, via the project's one safe decoder
    (``gradcam_core.images.load_image``); ``UploadError`` says what is wrong with the file."""
    max_bytes = int(st.get_option("server.maxUploadSize")) * 1024 * 1024
    try:
        return load_image(data, name=file_name, max_bytes=max_bytes)
    except ImageLoadError as err:
        raise UploadError(str(err)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # a header Pillow chokes on before decoding
        raise UploadError(f"'{file_name}' is truncated or corrupt and could not be read ({err}); re-export or "
                          "re-download it.") from None


def upload_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload_sample(data: bytes, file_name: str) -> Sample:
    return Sample(key=f"upload:{upload_sha256(data)}", label=None, file_name=file_name)


def prepare_upload(loaded: LoadedWorkspace, data: bytes, file_name: str = "the file") -> SampleInput:
    """An uploaded file through the workspace's own transform; ``UploadError`` for anything unusable."""
    image = decode_image(data, file_name)
    try:
        tensor = loaded.workspace.transform(image)
    except Exception as err:  # a user's transform can fail in any way; the message is what matters
        raise UploadError(f"the workspace's transform could not process {file_name}: {err}") from None
    if not torch.is_tensor(tensor) or tensor.ndim != 3 or tensor.shape[0] != 3:
        shape = tuple(tensor.shape) if torch.is_tensor(tensor) else type(tensor).__name__
        raise UploadError(f"the workspace's transform returned {shape} for {file_name}, expected a (3, H, W) tensor.")
    tensor = tensor[None].float()
    if not torch.isfinite(tensor).all():
        raise UploadError(f"{file_name} gave NaN or infinite values after the workspace's transform.")
    return SampleInput(tensor=tensor, pixels=_pixels(loaded, tensor))


@st.cache_data(show_spinner=False, max_entries=16)
def upload_input(model_id: str, sha256: str, _data: bytes, _file_name: str, _loaded: LoadedWorkspace) -> SampleInput:
    """``prepare_upload``, cached by the sha256 of the bytes (raises ``UploadError``, which is not cached)."""
    return prepare_upload(_loaded, _data, _file_name)


@st.cache_data(show_spinner=False, max_entries=256)
def sample_logits(model_id: str, sample_key: str, _loaded: LoadedWorkspace, _tensor: torch.Tensor) -> np.ndarray:
    """(num_classes,) logits of one image: a single cheap forward, so the view never waits for the test split."""
    with _loaded.lock:
        return _loaded.engine.predict(_tensor)[0]


# ------------------------------------------------------------------------------------------------ CAMs
GRADIENT_METHODS = tuple(m for m in METHOD_NAMES if CAM_METHODS[m].needs_gradients)
GRADIENT_FREE_METHODS = tuple(m for m in METHOD_NAMES if not CAM_METHODS[m].needs_gradients)


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
    """Every gradient-based method at every Conv2d for one image and one target: one forward, one backward.

    Keyed by (model id, sample key, target): switching layer or between these methods, or moving the
    opacity/colormap, reuses it. The misclassified comparison asks for the predicted and the true class as two
    entries, which on a CPU was faster than the engine's batched-over-targets backward for K=2 when measured.
    """
    with _loaded.lock:
        result = _loaded.engine.explain(_tensor, layers=None, targets=int(target), methods=GRADIENT_METHODS)
    return _package(result, int(target))


@st.cache_data(show_spinner=False, max_entries=32)
def explain_without_gradients(model_id: str, sample_key: str, _loaded: LoadedWorkspace,
                              _tensor: torch.Tensor) -> SampleCams:
    """Eigen-CAM at every Conv2d for one image, computed only when picked and once per image: it does not depend
    on the class, so it is cached per image rather than per (image, target), and a first paint never waits for
    its per-layer eigendecompositions (which were the slowest part of a ResNet-50 pass when measured)."""
    with _loaded.lock:
        result = _loaded.engine.explain(_tensor, layers=None, methods=GRADIENT_FREE_METHODS)
    return _package(result, None)


def layer_maps(loaded: LoadedWorkspace, sample: Sample, tensor: torch.Tensor, method: str,
               target: int) -> dict[str, np.ndarray]:
    """``method``'s map at every layer for ``target`` (cached; computes on a miss)."""
    if CAM_METHODS[method].needs_gradients:
        return explain_sample(loaded.model_id, sample.key, int(target), loaded, tensor).cams[method]
    return explain_without_gradients(loaded.model_id, sample.key, loaded, tensor).cams[method]
