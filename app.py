"""Grad-CAM dashboard: ``streamlit run app.py [-- --workspace path/to/workspace.toml]``.

Sets up the page, the navigation over pages/ and the sidebar's workspace picker; the chosen page then runs with
the loaded workspace (``dashboard.shell.current()``), and the sidebar's test accuracy is filled in after it.
"""

import streamlit as st

from dashboard.shell import finish_shell, forget_workspace, render_shell, setup_page

setup_page()

# One line per view.
PAGES = [
    st.Page("pages/explorer.py", title="Grad-CAM explorer", icon="🔥", default=True),
    st.Page("pages/activations.py", title="Activation maps", icon=":material/grid_view:"),
    st.Page("pages/tsne.py", title="Embedding (t-SNE)", icon=":material/scatter_plot:"),
    st.Page("pages/analysis.py", title="Misclassification analysis", icon=":material/rule:"),
    st.Page("pages/faithfulness.py", title="Faithfulness", icon=":material/verified:"),
    st.Page("pages/compare.py", title="Compare models", icon=":material/compare:"),
    st.Page("pages/report.py", title="Report", icon=":material/description:"),
]

page = st.navigation(PAGES)
try:
    loaded = render_shell()
    if loaded is not None:
        page.run()
        finish_shell(loaded)
finally:
    forget_workspace()
