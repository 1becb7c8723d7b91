"""The precomputed store of a workspace's whole test set (issue 11): write it, then query it.

    from store import precompute, open_store
    precompute("shapes", "shapes.store")                   # gradcam precompute --workspace shapes --out shapes.store
    store = open_store("shapes.store")
    store.page(RowFilter(outcome="misclassified"), sort="loss", descending=True)   # 20 rows (Arrow)

Reading needs only pyarrow and DuckDB (no torch); ``precompute`` imports torch, and Ray only for ``engine="ray"``.
Layout and columns: ``store.schema``. No streamlit here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from store.reader import ClassSummary, RowFilter, Store, open_store
from store.schema import COLUMN_NAMES, COLUMNS, ROW_SCHEMA, StoreError

if TYPE_CHECKING:
    from store.precompute import PrecomputeSummary


def precompute(workspace: Any, out: Any = None, **options: Any) -> PrecomputeSummary:
    """See ``store.precompute.precompute`` (imported on first call: it needs torch)."""
    from store.precompute import precompute as run

    return run(workspace, out, **options)


__all__ = ["COLUMNS", "COLUMN_NAMES", "ROW_SCHEMA", "ClassSummary", "RowFilter", "Store", "StoreError", "open_store",
           "precompute"]
