"""Embedding of the test set: each image placed by its penultimate features (t-SNE), coloured by class or outcome.

With a precomputed store the map is drawn at once from the store (up to 100,000 points, WebGL) and a lasso or box
lists the selected images; without one, nothing long runs on opening the page: a stored t-SNE of a subset is drawn
at once, otherwise the page says what a computation will cost and waits for the Compute button.
"""

import streamlit as st

from dashboard import page_help
from dashboard import tsne_view as view
from dashboard.predictions import store_status, too_big
from dashboard.shell import current
from dashboard.store_embedding import render_store_map
from dashboard.store_source import precompute_command

loaded = current()
st.title("Embedding of the test set", anchor=False)
page_help.show("embedding")
status = store_status(loaded)
if status.problem:
    st.warning(status.problem, icon=":material/database:")
if status.usable and status.store.has_map:
    render_store_map(loaded, status.store)
else:
    if status.usable:
        st.info("The precomputed store has no 2-D map yet (its run stopped before the map stage); finish it with "
                f"`{precompute_command(loaded.workspace)}`. Meanwhile a t-SNE of a subset can be computed here.",
                icon=":material/scatter_plot:")
    elif too_big(loaded):
        st.info(f"A map of all {len(loaded.workspace.test_set):,} images comes with a precomputed store: "
                f"`{precompute_command(loaded.workspace)}`. Meanwhile a t-SNE of a subset can be computed here.",
                icon=":material/scatter_plot:")
    view.render_subset_page(loaded)
