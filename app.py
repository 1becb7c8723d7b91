"""Grad-CAM dashboard: ``streamlit run app.py [-- --workspace path/to/workspace.toml]``.

Sets up the page, the navigation over pages/ and the sidebar's workspace picker; the chosen page then runs with
the loaded workspace (``dashboard.shell.current()``).
"""

import streamlit as st

from dashboard.shell import apply_style, render_shell

st.set_page_config(page_title="Grad-CAM dashboard", page_icon="🔥", layout="wide", initial_sidebar_state="expanded")

# One line per view.
PAGES = [
    st.Page("pages/explorer.py", title="Grad-CAM explorer", icon="🔥", default=True),
]

page = st.navigation(PAGES)
apply_style()
if render_shell() is not None:
    page.run()
