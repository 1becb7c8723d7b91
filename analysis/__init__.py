"""Analysis above the engine: what a model does on a whole labelled set, with no streamlit.

- ``analysis.classification``  confusion matrix and per-class metrics (scikit-learn), top confusions, the samples
                               behind a cell, correct/misclassified splits of a class
- ``analysis.embedding``       PCA + t-SNE of penultimate features, and their separability

May import ``gradcam_core`` and ``models``; never streamlit, never the dashboard. Submodules are imported on use
(scikit-learn's metrics alone take about a second to import), so this file imports nothing.
"""
