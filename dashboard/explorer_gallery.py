"""The explorer's left column: the seeded gallery of test images, its controls, and the upload.

It is one fragment (``GALLERY_FRAGMENT``). Picking an image, a seed, a filter or an upload reruns it and the view
fragment (``explorer_view.VIEW_FRAGMENT``) — not the sidebar, not the page header.
"""

from __future__ import annotations

import secrets

import numpy as np
import streamlit as st

from dashboard import figures
from dashboard.gallery import (
    CLASS_FILTER_PREFIX,
    FILTER_ALL,
    FILTER_CORRECT,
    FILTER_WRONG,
    filter_options,
    sample_gallery,
)
from dashboard.predictions import TestPredictions, classify_test_split
from dashboard.samples import UploadedImage
from dashboard.state import ExplorerState as E
from dashboard.workspaces import LoadedWorkspace
from gradcam_core.images import MAX_PIXELS

GALLERY_FRAGMENT, VIEW_FRAGMENT = "explorer.gallery", "explorer.view"
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]


def rerun_explorer() -> None:
    """From a gallery callback: redraw the gallery (its highlight) and the view, nothing else."""
    st.rerun([GALLERY_FRAGMENT, VIEW_FRAGMENT])


# --------------------------------------------------------------------------------------------- callbacks
def select_sample(index: int) -> None:
    E.sample.set(int(index))
    E.source.set("test")
    rerun_explorer()


def reset_sample() -> None:
    """A new seed or filter shows a new gallery: select its first image."""
    E.sample.set(None)
    E.source.set("test")
    rerun_explorer()


def shuffle() -> None:
    E.seed.set(secrets.randbelow(100_000))
    reset_sample()


def on_upload() -> None:
    file = E.uploader.get()
    E.upload.set(None if file is None else UploadedImage(name=file.name, data=file.getvalue()))
    E.source.set("test" if file is None else "upload")
    rerun_explorer()


def show_upload() -> None:
    E.source.set("upload")
    rerun_explorer()


# --------------------------------------------------------------------------------------------- drawing
def filter_label(value: str, class_names: list[str]) -> str:
    if value.startswith(CLASS_FILTER_PREFIX):
        return f"Class: {class_names[int(value[len(CLASS_FILTER_PREFIX):])]}"
    return {FILTER_ALL: "All", FILTER_CORRECT: "Correct only", FILTER_WRONG: "Misclassified only"}[value]


def render_controls(class_names: list[str]) -> None:
    seed_col, shuffle_col, filter_col = st.columns([1, 1, 1.5], vertical_alignment="bottom")
    seed_col.number_input("Seed", min_value=0, max_value=2**32 - 1, step=1, key=E.seed, on_change=reset_sample,
                          help="The 20 images are drawn at random with this seed.")
    shuffle_col.button("Shuffle", icon=":material/shuffle:", on_click=shuffle, width="stretch",
                       help="Draw 20 other test images (a new random seed)")
    filter_col.selectbox("Show", filter_options(len(class_names)), key=E.filter,
                         format_func=lambda v: filter_label(v, class_names), on_change=reset_sample)


def render_uploader() -> None:
    upload = E.upload.get()
    with st.expander("Your own image", icon=":material/upload:", expanded=upload is not None):
        st.file_uploader(
            "Upload an image to explain", type=UPLOAD_TYPES, key=E.uploader, on_change=on_upload,
            help="It goes through the workspace's own transform (resize, normalisation) before the model sees it. "
                 f"Up to {st.get_option('server.maxUploadSize')} MB and {MAX_PIXELS // 1_000_000} megapixels "
                 "(larger images are refused before decoding); big photos are reduced, EXIF rotation applied.",
        )
        if upload is not None and E.source.get() != "upload":
            st.button(f"Show {upload.name}", icon=":material/image:", on_click=show_upload, width="stretch")


@st.cache_data(show_spinner=False, max_entries=32)
def gallery_thumbnails(model_id: str, workspace_key: str, indices: tuple[int, ...], correct: tuple[bool, ...],
                       _loaded: LoadedWorkspace) -> list[bytes]:
    """PNG bytes of the framed thumbnails, encoded once: re-encoding 20 images cost ~40 ms on every rerun."""
    test_set = _loaded.workspace.test_set
    return [figures.png_bytes(figures.thumbnail(test_set.image(i), ok)) for i, ok in zip(indices, correct, strict=True)]


def render_gallery(loaded: LoadedWorkspace, predictions: TestPredictions, indices: np.ndarray,
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


@st.fragment(key=GALLERY_FRAGMENT)
def gallery_fragment(loaded: LoadedWorkspace) -> None:
    st.subheader("Test images", anchor=False)
    render_controls(loaded.class_names)
    render_uploader()
    predictions = classify_test_split(loaded)
    gallery = sample_gallery(predictions.labels, predictions.predicted, int(E.seed.get()), E.filter.get())
    render_gallery(loaded, predictions, gallery, E.sample.get() if E.source.get() == "test" else None)
