"""Compare models: one image shown to two models side by side (prediction, top-5, where each looks, the difference),
then the two over a seeded sample of test images; the page says in plain words what the numbers show.
"""

import streamlit as st

from dashboard import compare_view, page_help
from dashboard.shell import current

loaded = current()
st.title("Compare models", anchor=False)
page_help.show("compare")
compare_view.render_page(loaded)
