"""Grad-CAM explorer: browse 20 seeded test images (or upload one) and see where the model looks, at any layer.

Two fragments: the view (right) draws its pictures in the browser (layer, opacity and colormap change there with
no round trip) and reruns alone for a method, a target class or the viewer's report of its view; picking an image
reruns the view and the gallery (left), never the sidebar. The view is drawn first, so a cold start shows a heatmap
before the gallery's test predictions are read.
"""

import streamlit as st

from dashboard import page_help
from dashboard.explorer_gallery import gallery_fragment
from dashboard.explorer_view import render_page_header, restore_view, view_fragment
from dashboard.shell import current

loaded = current()
render_page_header(loaded, restore_view(loaded))
page_help.show("explorer")
gallery_col, view_col = st.columns([1.7, 3], gap="large")
with view_col:
    view_fragment(loaded)
with gallery_col:
    gallery_fragment(loaded)
