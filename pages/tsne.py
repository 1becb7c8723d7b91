"""t-SNE of the test split: penultimate features (input of the final classifier) -> PCA 50 -> seeded t-SNE.

Nothing long runs on opening the page: a cached embedding (memory or disk) is drawn at once; otherwise the page
says what a computation will cost and waits for the Compute button (about 12 s for 2,000 images on 2 CPU cores).
"""

import time

import streamlit as st

from analysis.features import features_key
from dashboard import explorer, figures, tsne_view, views_compute
from dashboard.shell import current

loaded = current()
test_set = loaded.workspace.test_set
class_names = loaded.class_names
num_test = len(test_set)
state = st.session_state

st.title("t-SNE of the test set", anchor=False)
st.caption(f"Each point is a test image, placed by its penultimate features (the input of "
           f"`{loaded.workspace.classifier_layer}`), reduced with PCA to 50 dimensions, then t-SNE. Images the model "
           "sees as alike sit together; ✕ marks a misclassified image.")

if state.get("tsne._workspace") != loaded.key:
    for key in ("tsne.max_points", "tsne.pick", "tsne._last_selection"):
        state.pop(key, None)
    state["tsne._workspace"] = loaded.key
state.setdefault("tsne.max_points", min(num_test, views_compute.DEFAULT_MAX_POINTS))
state.setdefault("tsne.perplexity", 30)
state.setdefault("tsne.color", "true")

points_col, perplexity_col, color_col = st.columns([1, 1.6, 2.2], vertical_alignment="bottom")
max_points = points_col.number_input(
    "Images (max)", min_value=min(50, num_test), max_value=num_test, step=100, key="tsne.max_points",
    help=f"The whole test split has {num_test}; fewer are drawn at random (seeded) and computed faster.")
perplexity = perplexity_col.slider("Perplexity", 5, 100, step=5, key="tsne.perplexity",
                                   help="About how many neighbours each point keeps close; 30 is the usual choice")
color_by = color_col.segmented_control("Colour by", list(tsne_view.COLOR_MODES), key="tsne.color", required=True,
                                       format_func=tsne_view.COLOR_MODES.get)

indices = views_compute.subset_indices(num_test, int(max_points))
features = views_compute.cached_features(loaded, indices)
result = views_compute.peek_embedding(loaded, features, perplexity) if features is not None else None

if result is None:
    estimate = 2.5e-3 * len(indices) + 3.5e-3 * len(indices)  # features + t-SNE, as measured on 2 busy CPU cores
    st.info(f"The t-SNE of these {len(indices)} images with perplexity {perplexity} has not been computed yet "
            f"(about {max(estimate, 2):.0f} s on a CPU). It is then kept in memory and on disk, so it opens at once "
            "next time, also after a restart.", icon=":material/scatter_plot:")
    if st.button(f"Compute the t-SNE of {len(indices)} images", type="primary", icon=":material/play_arrow:",
                 key="tsne.compute"):
        bar = st.progress(0.0, text="Starting…")
        started = time.perf_counter()
        features = views_compute.split_features(loaded, indices,
                                                progress=lambda f, text: bar.progress(0.4 * f, text=text))
        result = views_compute.embedding(loaded, features, perplexity,
                                         progress=lambda f, text: bar.progress(0.4 + 0.6 * f, text=text))
        bar.progress(1.0, text=f"Done in {time.perf_counter() - started:.1f} s")
        st.rerun()  # draw the page again without the button and the note, now from the warm cache
    st.stop()

separation = views_compute.separability(features_key(loaded.workspace, indices), features)
correct = features.correct
metric_cols = st.columns(4)
metric_cols[0].metric("Images", f"{len(indices)}", help=f"of {num_test} test images")
metric_cols[1].metric("k-NN accuracy (features)", f"{separation['knn_accuracy']:.1%}",
                      delta=f"chance {separation['knn_chance']:.1%}", delta_color="off",
                      help=f"Leave-one-out {separation['knn_k']}-nearest-neighbour accuracy in the full feature space "
                           "(not the 2-D picture): how well the classes separate where the classifier reads them")
metric_cols[2].metric("Silhouette (features)", f"{separation['silhouette']:.2f}",
                      help="Mean silhouette of the classes in feature space, -1 … 1: higher = tighter, better "
                           "separated classes")
metric_cols[3].metric("Misclassified", f"{int((~correct).sum())}", help="Among the images shown")
source = {"computed": "just computed", "memory": "from memory", "disk": "from the disk cache"}[result.source]
st.caption(f"t-SNE {source} (computing it took {result.seconds:.1f} s) · perplexity "
           f"{result.params.get('perplexity', perplexity):g} · seed {result.params.get('seed', 0)} · PCA kept "
           f"{result.pca_variance:.0%} of the variance · cache: `{views_compute.cache_dir()}`")

chart_col, side_col = st.columns([3, 1], gap="medium")
with chart_col:
    figure = tsne_view.scatter_figure(result.xy, features.indices, features.labels, features.predicted,
                                      features.confidence, class_names, color_by)
    event = st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="tsne.chart",
                            config={"displayModeBar": True, "displaylogo": False, "scrollZoom": True})
clicked = tsne_view.selected_index(event)
if clicked is not None and clicked != state.get("tsne._last_selection"):
    state["tsne.pick"] = clicked
state["tsne._last_selection"] = clicked
state.setdefault("tsne.pick", int(features.indices[0]))

with side_col:
    st.markdown("**Picked image**")
    pick = st.number_input("Test image #", min_value=0, max_value=num_test - 1, step=1, key="tsne.pick",
                           help="Click a point in the chart, or type a test index")
    position = {int(i): k for k, i in enumerate(features.indices)}.get(int(pick))
    st.image(figures.thumbnail(test_set.image(int(pick)), None if position is None else bool(correct[position]),
                               size=160), width=160)
    if position is not None:
        true_name, pred_name = class_names[features.labels[position]], class_names[features.predicted[position]]
        st.markdown(f"true **{true_name}**  \npredicted **{pred_name}** ({features.confidence[position]:.1%})")
    else:
        st.caption("Not among the images in the chart.")
    if st.button(f"Open #{int(pick)} in the explorer", type="primary", icon=":material/open_in_new:",
                 width="stretch", key="tsne.open"):
        explorer.open_in_explorer(loaded, int(pick))
