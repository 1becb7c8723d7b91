"""Grad-CAM explorer: browse 20 seeded test images (or upload one) and see where the model looks, at any layer.

Two fragments: the view (right) draws its pictures in the browser (layer, opacity and colormap change there with
no round trip) and reruns alone for a method, a target class or the viewer's report of its view; it is nested in
the explorer fragment, which also holds the gallery (left), so picking an image reruns both, never the sidebar.
The view is drawn first, so a cold start shows a heatmap before the gallery's test predictions are read.
"""


from dashboard import page_help
from dashboard.explorer_gallery import explorer_fragment
from dashboard.explorer_view import render_page_header, restore_view, view_fragment
from dashboard.shell import current

loaded = current()
render_page_header(loaded, restore_view(loaded))
page_help.show("explorer")
explorer_fragment(loaded, view_fragment)
