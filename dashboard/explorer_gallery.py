"""The explorer's left column: the gallery of test images, its controls, and the upload.

It is the explorer's outer fragment (``GALLERY_FRAGMENT``, ``explorer_fragment``): it lays out the two columns and
draws the view fragment (``explorer_view.VIEW_FRAGMENT``) nested in the right one, then the gallery. Picking an
image, a seed, a filter, a sort, a page or an upload is a widget of this fragment, so Streamlit reruns it — the
view inline, first — and not the sidebar or the page header, with no ``st.rerun`` from a callback (which restarts
the run: about 100 ms more per click when measured). A control of the view reruns the view alone.

The default view is the seeded draw of 20 (``?seed=`` and ``?filter=`` mean what they always meant); the sort
picker turns it into a paginated list sorted by loss, confidence or margin (``?sort=``, ``?page=``), filtered
by outcome, class and score bounds. Both are queries on ``predictions.pages_store`` — the precomputed store, or
the rows classified here for a small set — so only the shown rows are read. A set too large to classify without
a store shows the ``gradcam precompute`` command and a draw from its labels alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import numpy as np
import streamlit as st

from dashboard.gallery import (
    CLASS_FILTER_PREFIX,
    FILTER_ALL,
    FILTER_CORRECT,
    FILTER_WRONG,
    PAGE_SIZE,
    SORT_DRAW,
    SORT_MODES,
    ScoreFilter,
    filter_options,
    lead_index,
    page_count,
    row_filter,
    sample_gallery,
)
from dashboard.predictions import (
    pages_store,
    source_label,
    store_status,
    store_token,
    summary,
    too_big,
    unreadable_files,
)
from dashboard.samples import UploadedImage
from dashboard.shell import set_query_params
from dashboard.state import ExplorerState as E
from dashboard.store_gallery import Tile, render_tiles, render_unreadable, tiles_from
from dashboard.store_source import big_folder_message
from dashboard.store_state import GalleryState as G
from dashboard.store_state import restore_widgets, save_widgets
from dashboard.workspaces import LoadedWorkspace
from gradcam_core.images import MAX_PIXELS
from models import WorkspaceError
from store import Store

GALLERY_FRAGMENT, VIEW_FRAGMENT = "explorer.gallery", "explorer.view"
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]
SORT_PARAM, PAGE_PARAM = "sort", "page"


# --------------------------------------------------------------------------------------------- callbacks
def select_sample(index: int) -> None:
    E.sample.set(int(index))
    E.source.set("test")


def reset_sample() -> None:
    """A new seed, filter or sort shows a new gallery: select its first image."""
    G.page.set(0)
    E.sample.set(None)
    E.source.set("test")


def shuffle() -> None:
    E.seed.set(secrets.randbelow(100_000))
    reset_sample()


def go_to_page(page: int) -> None:
    """Another page of a sorted gallery; the view keeps its image."""
    G.page.set(max(int(page), 0))


def on_upload() -> None:
    file = E.uploader.get()
    E.upload.set(None if file is None else UploadedImage(name=file.name, data=file.getvalue()))
    E.source.set("test" if file is None else "upload")


def show_upload() -> None:
    E.source.set("upload")


# --------------------------------------------------------------------------------------------- state
def score_filter() -> ScoreFilter:
    low, high = G.confidence.get()
    return ScoreFilter(float(low), float(high), float(G.max_margin.get()), float(G.min_loss.get()))


def read_gallery_link() -> None:
    """The first explorer run of a session takes the sort and page from the URL (bad values are ignored)."""
    if G.link_read.get():
        return
    G.link_read.set(True)
    sort, page = st.query_params.get(SORT_PARAM), st.query_params.get(PAGE_PARAM)
    if sort in SORT_MODES:
        G.sort.set(sort)
        G.saved.set({**(G.saved.get() or {}), str(G.sort): sort})
        if page is not None and page.isdigit() and int(page) >= 1:
            G.page.set(int(page) - 1)


def write_gallery_link(sort: str, page: int) -> None:
    """The sort and page in the URL (left out for the default seeded draw, so old links stay as they were)."""
    if sort == SORT_DRAW:
        for param in (SORT_PARAM, PAGE_PARAM):
            if param in st.query_params:
                del st.query_params[param]
        return
    set_query_params({SORT_PARAM: sort, PAGE_PARAM: str(page + 1)})


# --------------------------------------------------------------------------------------------- rows
def gallery_tiles(store: Store, seed: int, filter_name: str, sort: str, page: int,
                  scores: ScoreFilter) -> tuple[list[Tile], int]:
    """(the tiles of this view, how many rows it has in all): the seeded draw, or one page of a sorted list.
    Cached per store content: the view asks for the first image before the gallery draws the same rows."""
    return _gallery_tiles(store_token(store), seed, filter_name, sort, page, scores, store)


@st.cache_data(show_spinner=False, max_entries=64)
def _gallery_tiles(token: str, seed: int, filter_name: str, sort: str, page: int, scores: ScoreFilter,
                   _store: Store) -> tuple[list[Tile], int]:
    store, mode = _store, SORT_MODES[sort]
    if mode.column is None:
        indices = store.sample(seed, filter_name)
        return tiles_from(store.rows(indices)), len(indices)
    where = row_filter(filter_name, scores)
    table = store.page(where, sort=mode.column, descending=mode.descending, offset=page * PAGE_SIZE,
                       limit=PAGE_SIZE)
    return tiles_from(table), store.count(where)


def _readable(loaded: LoadedWorkspace, index: int) -> bool:
    try:
        loaded.workspace.test_set.image(index)
    except WorkspaceError:
        return False
    return True


def first_gallery_image(loaded: LoadedWorkspace) -> int:
    """The image the view shows when none is selected: the gallery's first.

    Without a store, a seeded draw's first image comes from the labels alone (``lead_index``), so the first
    heatmap does not wait for the whole set to be classified; a set too large to classify keeps to the labels.
    (The view runs before the gallery, so a link's sort and page are read here first.)"""
    read_gallery_link()
    seed, filter_name, sort = int(E.seed.get()), E.filter.get(), G.sort.get()
    labels = loaded.workspace.test_set.labels
    store = pages_store(loaded, compute=False)
    if store is None and sort == SORT_DRAW:
        lead = lead_index(labels, seed, filter_name)
        if lead is not None and (too_big(loaded) or _readable(loaded, lead)):
            return lead
    if too_big(loaded):
        return lead_index(labels, seed, FILTER_ALL) or 0
    store = pages_store(loaded)
    tiles, _ = gallery_tiles(store, seed, filter_name, sort, G.page.get(), score_filter())
    return tiles[0].index if tiles else 0


# --------------------------------------------------------------------------------------------- drawing
def filter_label(value: str, class_names: list[str]) -> str:
    if value.startswith(CLASS_FILTER_PREFIX):
        return f"Class: {class_names[int(value[len(CLASS_FILTER_PREFIX):])]}"
    return {FILTER_ALL: "All", FILTER_CORRECT: "Correct only", FILTER_WRONG: "Misclassified only"}[value]


def render_controls(class_names: list[str], can_sort: bool) -> None:
    sort_col, filter_col = st.columns([1.4, 1.5], vertical_alignment="bottom")
    sort_col.selectbox("Order", list(SORT_MODES), key=G.sort, format_func=lambda s: SORT_MODES[s].label,
                       on_change=reset_sample, disabled=not can_sort,
                       help="The seeded draw of 20 (the default), or every matching image sorted by a score, "
                            "20 a page" if can_sort else "Sorting needs the predictions of the whole set: "
                            "precompute the store (see below)")
    filter_col.selectbox("Show", filter_options(len(class_names)), key=E.filter,
                         format_func=lambda v: filter_label(v, class_names), on_change=reset_sample)
    if G.sort.get() == SORT_DRAW:
        seed_col, shuffle_col = st.columns([1, 1], vertical_alignment="bottom")
        seed_col.number_input("Seed", min_value=0, max_value=2**32 - 1, step=1, key=E.seed, on_change=reset_sample,
                              help="The 20 images are drawn at random with this seed.")
        shuffle_col.button("Shuffle", icon=":material/shuffle:", on_click=shuffle, width="stretch",
                           help="Draw 20 other test images (a new random seed)")
    else:
        render_score_filters()


def render_score_filters() -> None:
    for key in (G.confidence, G.max_margin, G.min_loss):
        key.setdefault(key.default)
    scores = score_filter()
    with st.popover("Score filters" + (" (on)" if scores.active else ""), icon=":material/tune:", width="stretch"):
        st.slider("Confidence (probability of the predicted class)", 0.0, 1.0, step=0.01, key=G.confidence,
                  on_change=reset_sample)
        st.slider("Margin at most (best minus second-best probability)", 0.0, 1.0, step=0.01, key=G.max_margin,
                  on_change=reset_sample)
        st.number_input("Loss at least (cross-entropy of the true class)", min_value=0.0, step=0.5,
                        key=G.min_loss, on_change=reset_sample)


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


def render_pager(page: int, total: int) -> None:
    pages = page_count(total)
    back, where, forward = st.columns([1, 2.2, 1], vertical_alignment="center")
    back.button("◀", key="explorer.page.back", disabled=page <= 0, on_click=go_to_page, args=(page - 1,),
                width="stretch", help="Previous 20")
    first = page * PAGE_SIZE + 1 if total else 0
    where.caption(f"{first:,}–{min((page + 1) * PAGE_SIZE, total):,} of {total:,} · page {page + 1} of {pages}")
    forward.button("▶", key="explorer.page.forward", disabled=page >= pages - 1, on_click=go_to_page,
                   args=(page + 1,), width="stretch", help="Next 20")


def render_gallery(loaded: LoadedWorkspace, store: Store, tiles: list[Tile], total: int, selected: int | None) -> None:
    found = summary(loaded, store)
    labelled, right = int(found.confusion.sum()), int(np.trace(found.confusion))
    accuracy = f" ({found.accuracy:.1%})" if found.accuracy is not None else ""
    st.caption(f"The model gets {right:,} of {labelled:,} test images right{accuracy}. Green ✓ correct · red ✗ "
               f"misclassified, as true → predicted. Predictions: {source_label(store)}.")
    sort = G.sort.get()
    if sort != SORT_DRAW:
        render_pager(G.page.get(), total)
    if not tiles:
        st.info("No test image matches this filter (for 'Misclassified only': the model gets every test image "
                "right).")
        return
    render_tiles(loaded, tiles, "explorer.pick", selected=selected, on_pick=select_sample,
                 shows=SORT_MODES[sort].shows)
    if selected is not None and selected not in {t.index for t in tiles}:
        st.caption(f"The image on the right (#{selected}) is not among these {len(tiles)}.")


def render_labels_only(loaded: LoadedWorkspace, selected: int | None) -> None:
    """A set too large to classify without a store: the command, and a seeded draw from the labels alone."""
    workspace = loaded.workspace
    st.warning(big_folder_message(workspace, len(workspace.test_set)), icon=":material/speed:")
    filter_name = E.filter.get()
    if filter_name in (FILTER_CORRECT, FILTER_WRONG):
        st.info("'Correct only' and 'Misclassified only' need the predictions of the whole set.")
        return
    labels = workspace.test_set.labels
    indices = sample_gallery(labels, labels, int(E.seed.get()), filter_name)  # no predictions: a plain draw
    tiles = [Tile(int(i), int(labels[i]), -1, 0.0, None, 0.0) for i in indices]
    st.caption(f"{len(tiles)} test images drawn with this seed from the labels alone: their predictions are not "
               "known until the store is precomputed (click one to explain it).")
    render_tiles(loaded, tiles, "explorer.pick", selected=selected, on_pick=select_sample)


@st.fragment(key=GALLERY_FRAGMENT)
def explorer_fragment(loaded: LoadedWorkspace, view: Callable[[LoadedWorkspace], None]) -> None:
    """The two columns: ``view`` (the view fragment) drawn first on the right, so a cold start shows a heatmap
    before the gallery reads the test predictions, then the gallery on the left."""
    gallery_col, view_col = st.columns([1.7, 3], gap="large")
    with view_col:
        view(loaded)
    with gallery_col:
        render_gallery_column(loaded)


def render_gallery_column(loaded: LoadedWorkspace) -> None:
    st.subheader("Test images", anchor=False)
    read_gallery_link()
    restore_widgets(G.widgets(), G.saved)
    status = store_status(loaded)
    if status.problem:
        st.warning(status.problem, icon=":material/database:")
    big = too_big(loaded)
    if big:
        G.sort.set(SORT_DRAW)
    render_controls(loaded.class_names, can_sort=not big)
    render_uploader()
    selected = E.sample.get() if E.source.get() == "test" else None
    store = None if big else pages_store(loaded)
    if store is None:
        render_labels_only(loaded, selected)
    else:
        sort, page = G.sort.get(), G.page.get()
        tiles, total = gallery_tiles(store, int(E.seed.get()), E.filter.get(), sort, page, score_filter())
        if page >= page_count(total):  # a page that no longer exists (a link, a narrower filter): the last one
            page = page_count(total) - 1
            G.page.set(page)
            tiles, total = gallery_tiles(store, int(E.seed.get()), E.filter.get(), sort, page, score_filter())
        render_gallery(loaded, store, tiles, total, selected)
        write_gallery_link(sort, page)
    render_unreadable(unreadable_files(loaded, store))
    save_widgets(G.widgets(), G.saved)
