"""t-SNE of the test split: penultimate features (input of the final classifier) -> PCA 50 -> seeded t-SNE.

Nothing long runs on opening the page: a stored embedding is drawn at once; otherwise the page says what a
computation will cost and waits for the Compute button (about 12 s for 2,000 images on 2 CPU cores).
"""

import streamlit as st

from dashboard import page_help
from dashboard import tsne_view as view
from dashboard.shell import current
from dashboard.state import TsneState as T

loaded = current()
num_test = len(loaded.workspace.test_set)
view.seed_state(num_test)

st.title("t-SNE of the test set", anchor=False)
st.caption(f"Each point is a test image, placed by its penultimate features (the input of "
           f"`{loaded.workspace.classifier_layer}`), reduced with PCA to 50 dimensions, then t-SNE. Images the model "
           "sees as alike sit together; ✕ marks a misclassified image.")
page_help.show("embedding")

points_col, perplexity_col, color_col = st.columns([1, 1.6, 2.2], vertical_alignment="bottom")
max_points = points_col.number_input(
    "Images (max)", min_value=min(50, num_test), max_value=num_test, step=100, key=T.max_points,
    help=f"The whole test split has {num_test}; fewer are drawn at random (seeded) and computed faster.")
indices = view.subset_indices(num_test, int(max_points))
perplexity = view.perplexity_control(perplexity_col, len(indices))
color_by = color_col.segmented_control("Colour by", list(view.COLOR_MODES), key=T.color, required=True,
                                       format_func=view.COLOR_MODES.get)

features = view.cached_features(loaded, indices)
result = view.peek_embedding(loaded, features, perplexity) if features is not None else None
if result is None:
    view.render_compute_prompt(loaded, indices, perplexity)
else:
    view.render_metrics(loaded, features, result)
    chart_col, side_col = st.columns([3, 1], gap="medium")
    with chart_col:
        view.render_chart(features, result, loaded.class_names, color_by)
    with side_col:
        view.picked_fragment(loaded, features)
