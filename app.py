"""Grad-CAM dashboard entry point (placeholder until the explorer page lands)."""

import streamlit as st

st.set_page_config(page_title="Grad-CAM dashboard", page_icon="🔥", layout="wide")
st.title("Grad-CAM dashboard")
st.write("The explorer is being built; the engine lives in `gradcam_core`.")
