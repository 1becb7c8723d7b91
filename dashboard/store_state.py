"""Session state of the store-backed parts: the gallery's sort, page and score filters, the embedding page's
selection. Like every ``PageState`` (``dashboard/state.py``), reset when the workspace changes."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.gallery import SORT_DRAW
from dashboard.state import Key, PageState


class GalleryState(PageState):
    sort = Key[str]("explorer.sort", SORT_DRAW)  # the sort selectbox: a key of gallery.SORT_MODES
    page = Key[int]("explorer.page", 0)  # 0-based page of a sorted gallery
    confidence = Key[tuple[float, float]]("explorer.confidence", (0.0, 1.0))  # range slider
    max_margin = Key[float]("explorer.max_margin", 1.0)
    min_loss = Key[float]("explorer.min_loss", 0.0)
    saved = Key[dict]("explorer._gallery")  # the widgets' values, to re-seed them after a visit to another page
    link_read = Key[bool]("explorer._gallery_link_read", False, keep=True)  # sort/page read from the URL once

    @classmethod
    def widgets(cls) -> list[Key]:
        return [cls.sort, cls.confidence, cls.max_margin, cls.min_loss]


class EmbeddingState(PageState):
    color = Key[str]("embedding.color", "true")
    max_points = Key[int]("embedding.max_points")
    selection = Key[tuple[int, ...]]("embedding._selection", ())  # test indices selected in the map
    page = Key[int]("embedding.page", 0)


def restore_widgets(keys: list[Key], saved: Key[dict]) -> None:
    """Give widgets Streamlit dropped (their page was not drawn) the values they last had."""
    values: dict[str, Any] = saved.get() or {}
    for key in keys:
        if not key.is_set() and str(key) in values:
            key.set(values[str(key)])


def save_widgets(keys: list[Key], saved: Key[dict]) -> None:
    saved.set({str(key): st.session_state[str(key)] for key in keys if key.is_set()})
