"""Streamlit-side helpers shared by the dashboard's pages (pages/ and app.py sit on top of this package).

This package may import streamlit and everything below it (``analysis``, ``models``, ``gradcam_core``, and the
store and report packages), never ``cli``. Modules:

shared by every page
- ``argv``          the ``--workspace path.toml`` argument of ``streamlit run app.py -- --workspace ...``
- ``workspaces``    the workspace choices and the cached (model, engine) resource every page shares
- ``shell``         what app.py draws for every page (page setup, sidebar picker, workspace facts); ``current()``
- ``state``         every page's session state with typed keys, reset in one place when the workspace changes
- ``samples``       the image a page shows (test image or upload) as the model sees it, cached
- ``cams``          every layer's maps of one image from one cached engine call
- ``predictions``   the test split's predictions (one cached batched forward) and the one test accuracy
- ``figures``       pictures and charts built from arrays (PNG, thumbnails, colour bar, top-5 chart)

one page each (``<page>_view``: the page's parts; the explorer has four)
- ``explorer_view`` the explorer's view fragment and its state (restore from the URL, open from other pages)
- ``explorer_gallery``  its outer fragment (gallery, upload, the view nested);  ``gallery``: the seeded draw
- ``explorer_panels``   its top-5 chart, downloads and layer strip;  ``explorer_link``: its view in the URL
- ``activations_view``, ``tsne_view``, ``analysis_view``
"""
