"""The embedding page's linked selection: the images of a lasso or box drawn on the map, listed as a gallery
(FiftyOne's linked selection), 20 a page, misclassified and highest loss first; each opens in the explorer.

Points are keyed by test index (``customdata[0]``), so a selection is a set of image indices whatever the traces
and their order. With a store the list is a query over the selected indices (only the shown page comes back);
on a computed t-SNE of a subset it comes from the arrays already in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from analysis.features import FeatureSet
from dashboard.explorer_view import open_in_explorer
from dashboard.gallery import PAGE_SIZE, page_count
from dashboard.store_gallery import TILE_COLUMNS, Tile, render_tiles, tiles_from
from dashboard.store_state import EmbeddingState as S
from dashboard.workspaces import LoadedWorkspace
from store import Store

SELECTION_FRAGMENT = "embedding.selection"


class StoreSelection:
    """Selected test indices, read from a store: counts from one aggregate, tiles one page at a time."""

    def __init__(self, store: Store, indices: Sequence[int]):
        self.store, self.indices = store, [int(i) for i in indices]

    def counts(self) -> tuple[int, int, dict[int, int]]:
        """(selected images with a row, misclassified among them, true class -> count)."""
        table = self.store.query('SELECT label, count(*) AS n, count(*) FILTER (WHERE NOT correct) AS wrong '
                                 'FROM store_rows WHERE "index" IN (SELECT unnest(?::BIGINT[])) GROUP BY label',
                                 [self.indices])
        by_class = dict(zip(table["label"].to_pylist(), table["n"].to_pylist(), strict=True))
        return sum(by_class.values()), int(sum(table["wrong"].to_pylist())), by_class

    def tiles(self, page: int) -> list[Tile]:
        columns = ", ".join(f'"{c}"' for c in TILE_COLUMNS)
        table = self.store.query(
            f'SELECT {columns} FROM store_rows WHERE "index" IN (SELECT unnest(?::BIGINT[])) '
            'ORDER BY correct NULLS LAST, loss DESC NULLS LAST, "index" LIMIT ? OFFSET ?',
            [self.indices, PAGE_SIZE, page * PAGE_SIZE])
        return tiles_from(table)


class FeatureSelection:
    """Selected test indices among the points of a computed t-SNE (their classes are in the FeatureSet)."""

    def __init__(self, features: FeatureSet, indices: Sequence[int]):
        position = {int(i): k for k, i in enumerate(features.indices)}
        self.rows = np.asarray([position[int(i)] for i in indices if int(i) in position], dtype=np.int64)
        self.features = features
        correct = features.correct[self.rows]
        # the same order as a store's: misclassified first, then by confidence (the loss is not known here)
        self.rows = self.rows[np.lexsort((features.indices[self.rows], features.confidence[self.rows], correct))]

    def counts(self) -> tuple[int, int, dict[int, int]]:
        labels = self.features.labels[self.rows]
        classes, counts = np.unique(labels, return_counts=True)
        wrong = int((~self.features.correct[self.rows]).sum())
        return len(self.rows), wrong, dict(zip(classes.tolist(), counts.tolist(), strict=True))

    def tiles(self, page: int) -> list[Tile]:
        f, rows = self.features, self.rows[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
        return [Tile(int(f.indices[r]), int(f.labels[r]), int(f.predicted[r]), float(f.confidence[r]), None, 0.0)
                for r in rows]


def go_to_page(page: int) -> None:
    S.page.set(max(int(page), 0))
    st.rerun([SELECTION_FRAGMENT])


def render_selection(loaded: LoadedWorkspace, selection: StoreSelection | FeatureSelection) -> None:
    """The selected images as a paginated gallery, with what they have in common."""
    names = loaded.class_names
    count, wrong, by_class = selection.counts()
    if count == 0:
        st.info("Draw a lasso or a box around points of the map (or click one) to list those images here; each "
                "opens in the explorer.", icon=":material/gesture_select:")
        return
    common = ", ".join(f"{names[c] if c >= 0 else 'no label'} {n:,}"
                       for c, n in sorted(by_class.items(), key=lambda item: -item[1])[:5])
    st.markdown(f"**{count:,} selected images** · {wrong:,} misclassified ({wrong / count:.0%}) · true classes: "
                f"{common}")
    pages = page_count(count)
    page = min(S.page.get(), pages - 1)
    if pages > 1:
        back, where, forward = st.columns([1, 3, 1], vertical_alignment="center")
        back.button("◀", key="embedding.page.back", disabled=page <= 0, on_click=go_to_page, args=(page - 1,),
                    width="stretch")
        where.caption(f"{page * PAGE_SIZE + 1:,}–{min((page + 1) * PAGE_SIZE, count):,} of {count:,} · misclassified "
                      "first, highest loss first")
        forward.button("▶", key="embedding.page.forward", disabled=page >= pages - 1, on_click=go_to_page,
                       args=(page + 1,), width="stretch")
    render_tiles(loaded, selection.tiles(page), "embedding.pick", on_open=lambda i: open_in_explorer(loaded, i),
                 columns=10)


@st.fragment(key=SELECTION_FRAGMENT)
def selection_fragment(loaded: LoadedWorkspace, store: Store | None, features: FeatureSet | None = None) -> None:
    """The list of the selected images: reruns alone when the selection or its page changes."""
    st.subheader("Selected images", anchor=False)
    indices = S.selection.get() or ()
    if store is not None:
        render_selection(loaded, StoreSelection(store, indices))
    elif features is not None:
        render_selection(loaded, FeatureSelection(features, indices))
