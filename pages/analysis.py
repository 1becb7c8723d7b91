"""Misclassification analysis: accuracy, confusion matrix, per-class metrics, the images behind a cell, and
Grad-CAM of a class's correct vs misclassified images side by side (one batched engine call per grid).
"""

import streamlit as st

from analysis.classification import confusion_matrix
from dashboard import analysis_view as view
from dashboard import page_help
from dashboard.predictions import classify_test_split
from dashboard.shell import current

loaded = current()
st.title("Misclassification analysis", anchor=False)
st.caption("Where the model goes wrong on the test split, and whether it looks at different things when it does. "
           "Every image opens in the explorer.")
page_help.show("analysis")

predictions = classify_test_split(loaded)
matrix = confusion_matrix(predictions.labels, predictions.predicted, len(loaded.class_names))
view.seed_state(loaded, matrix)
view.render_summary(loaded, predictions, matrix)
view.cells_fragment(loaded, predictions, matrix)
view.grids_fragment(loaded, predictions)
