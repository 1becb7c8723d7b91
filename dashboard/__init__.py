"""Streamlit-side helpers shared by the dashboard's pages.

This package may import streamlit; ``gradcam_core`` and ``models`` never do. Modules:

- ``cli``        the ``--workspace path.toml`` argument of ``streamlit run app.py -- --workspace ...``
- ``workspaces`` the workspace choices and the cached (model, engine, lock) resource every page shares
- ``shell``      what app.py draws for every page (page setup, sidebar picker, workspace facts); ``current()``
- ``explorer``   the explorer page's session state and its larger widgets (gallery, layer strip, downloads)
- ``compute``    cached wrappers around the engine: test-set predictions, every-layer CAMs, uploads
- ``sampling``   the seeded 20-image gallery (pure numpy)
- ``view_state`` the explorer's view state: validated from / written to ``st.query_params``
- ``figures``    pictures and charts built from arrays (PNG, thumbnails, colour bar, top-5 chart)
"""
