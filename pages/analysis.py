"""Misclassification analysis: accuracy, confusion matrix, per-class metrics, the images behind a cell, and
Grad-CAM of a class's correct vs misclassified images side by side (one batched engine call per grid).

Counts come from one aggregate over the precomputed store (or the rows classified here for a small set); a set too
large to classify without a store shows the ``gradcam precompute`` command instead.
"""

import streamlit as st

from dashboard import analysis_view as view
from dashboard import page_help
from dashboard.predictions import pages_store, store_status, summary, unreadable_files
from dashboard.shell import current
from dashboard.store_gallery import render_unreadable
from dashboard.store_source import big_folder_message

loaded = current()
st.title("Misclassification analysis", anchor=False)
st.caption("Where the model goes wrong on the test split, and whether it looks at different things when it does. "
           "Every image opens in the explorer.")
page_help.show("analysis")

status = store_status(loaded)
if status.problem:
    st.warning(status.problem, icon=":material/database:")
store = pages_store(loaded)
if store is None:
    st.warning(big_folder_message(loaded.workspace, len(loaded.workspace.test_set)), icon=":material/speed:")
else:
    found = summary(loaded, store)
    view.seed_state(loaded, found.confusion)
    view.render_summary(loaded, found)
    view.cells_fragment(loaded, store, found)
    view.grids_fragment(loaded, store, found)
render_unreadable(unreadable_files(loaded, store))
