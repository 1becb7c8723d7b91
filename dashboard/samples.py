"""The image a page shows — a test image or the user's upload — as the model sees it, cached by a key that is the
same across sessions ("test:<workspace>:<index>:<item id>" or "upload:<sha256>").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import streamlit as st
import torch
from PIL import Image

from dashboard.workspaces import LoadedWorkspace
from gradcam_core import denormalise
from gradcam_core.images import ImageLoadError, load_image


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


@dataclass(frozen=True)
class UploadedImage:
    """The user's uploaded file, kept in the session so every page can show it after the uploader is gone."""

    name: str
    data: bytes = field(repr=False)

    @cached_property
    def sha256(self) -> str:
        return upload_sha256(self.data)


def open_test_image(loaded: LoadedWorkspace, index: int) -> tuple[Sample, SampleInput]:
    sample = test_sample(loaded, index)
    return sample, test_input(loaded.model_id, sample.key, int(index), loaded)


def open_upload(loaded: LoadedWorkspace, upload: UploadedImage) -> tuple[Sample, SampleInput]:
    """The upload through the workspace's transform; ``UploadError`` says what is wrong with the file."""
    inputs = upload_input(loaded.model_id, upload.sha256, upload.data, upload.name, loaded)
    return upload_sample(upload.data, upload.name), inputs
