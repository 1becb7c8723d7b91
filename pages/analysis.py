"""Misclassification analysis: accuracy, confusion matrix, per-class metrics, the images behind a cell, and
Grad-CAM of a class's correct vs misclassified images side by side (one batched engine call per grid).
"""

import numpy as np
import streamlit as st

from analysis.classification import (
    accuracy,
    confusion_matrix,
    per_class_metrics,
    split_correct_misclassified,
    top_confusions,
)
from dashboard import analysis_view as view
from dashboard import compute, explorer, views_compute
from dashboard.shell import current

loaded = current()
test_set = loaded.workspace.test_set
class_names = loaded.class_names
num_classes = len(class_names)
state = st.session_state

st.title("Misclassification analysis", anchor=False)
st.caption("Where the model goes wrong on the test split, and whether it looks at different things when it does. "
           "Every image opens in the explorer.")

with st.spinner(f"Classifying the {len(test_set)} test images (once per model)…", show_time=True):
    predictions = compute.test_predictions(loaded.model_id, loaded.key, loaded)
labels, predicted = predictions.labels, predictions.predicted
matrix = confusion_matrix(labels, predicted, num_classes)
mistakes = top_confusions(matrix, k=1)

if state.get("analysis._workspace") != loaded.key:
    for key in ("analysis.true", "analysis.pred", "analysis.class", "analysis.layer", "analysis._last_cell"):
        state.pop(key, None)
    state["analysis._workspace"] = loaded.key
    worst = mistakes[0] if mistakes else (0, 0, 0)
    state["analysis.true"], state["analysis.pred"] = int(worst[0]), int(worst[1])
    missed = matrix.sum(axis=1) - np.diag(matrix)
    state["analysis.class"] = int(np.argmax(missed))
    state["analysis.layer"] = loaded.default_layer


def open_sample(index: int) -> None:
    explorer.open_in_explorer(loaded, index, state.get("analysis.layer"))


metric_cols = st.columns(4)
metric_cols[0].metric("Test accuracy", f"{accuracy(labels, predicted):.1%}", help="On the whole test split")
metric_cols[1].metric("Test images", f"{len(labels)}")
metric_cols[2].metric("Misclassified", f"{int((labels != predicted).sum())}")
if mistakes:
    t, p, n = mistakes[0]
    metric_cols[3].metric("Most frequent mistake", f"{class_names[t]} → {class_names[p]}", help=f"{n} images")

matrix_col, table_col = st.columns([1.25, 1], gap="large")
with table_col:
    st.markdown("**Per class**")
    st.dataframe(view.metrics_table(per_class_metrics(labels, predicted, num_classes, class_names)),
                 hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("precision", "recall", "F1")})
    st.caption("precision: of the images predicted as the class, the share that are it · recall: of the class's "
               "images, the share found · support: images of the class")

with matrix_col:
    st.markdown("**Confusion matrix** · click a cell to list its images")
    event = st.plotly_chart(
        view.confusion_figure(matrix, class_names, (state["analysis.true"], state["analysis.pred"])),
        on_select="rerun", selection_mode="points", key="analysis.matrix", config={"displayModeBar": False})
    cell = view.selected_cell(event, class_names)
    if cell is not None and cell != state.get("analysis._last_cell"):
        state["analysis.true"], state["analysis.pred"] = cell
        state["analysis._last_cell"] = cell
        st.rerun()  # redraw the highlight on the clicked cell
    state["analysis._last_cell"] = cell

st.subheader("Images of one cell", anchor=False)
true_col, pred_col = st.columns(2)
true_class = true_col.selectbox("True class", range(num_classes), key="analysis.true",
                                format_func=lambda c: f"{c}: {class_names[c]}")
pred_class = pred_col.selectbox("Predicted class", range(num_classes), key="analysis.pred",
                                format_func=lambda c: f"{c}: {class_names[c]}")
shown, total = views_compute.cell_examples(labels, predicted, true_class, pred_class, view.CELL_LIMIT)
if total == 0:
    st.info(f"No test image of class **{class_names[true_class]}** is predicted as **{class_names[pred_class]}**.")
else:
    st.caption(f"{len(shown)} of {total} test images: true **{class_names[true_class]}**, predicted "
               f"**{class_names[pred_class]}**. Press one to open it in the explorer.")
    view.thumbnail_grid(shown, view.thumbnails(test_set, shown, [true_class == pred_class] * len(shown)),
                        [None] * len(shown), "analysis.cell", open_sample, columns=8)

st.subheader("Correct vs misclassified: where does the model look?", anchor=False)
class_col, layer_col, target_col = st.columns([1.2, 2, 1.4])
chosen = class_col.selectbox("Class", range(num_classes), key="analysis.class",
                             format_func=lambda c: f"{c}: {class_names[c]}")
layer = layer_col.selectbox("Grad-CAM layer", loaded.layers, key="analysis.layer",
                            help="The last conv layer by default; a deeper layer is coarser but more semantic")
target = target_col.segmented_control("Explain", ["pred", "true"], key="analysis.target", default="pred",
                                      required=True, format_func={"pred": "Predicted class",
                                                                  "true": "True class"}.get,
                                      help="Predicted: what the model looked at for the answer it gave")
split = split_correct_misclassified(labels, predicted, chosen, limit=view.GRID_LIMIT, seed=0)
for column, (title, picked, count, ok) in zip(
        st.columns(2, border=True, gap="medium"),
        ((f"✓ Correct · {class_names[chosen]}", split.correct, split.n_correct, True),
         (f"✗ Misclassified · {class_names[chosen]}", split.misclassified, split.n_misclassified, False)),
        strict=True):
    with column:
        st.markdown(f"**{title}** · {len(picked)} of {count}")
        if len(picked) == 0:
            st.info("None in the test split." if ok else "The model gets every test image of this class right.")
            continue
        with st.spinner(f"Grad-CAM of {len(picked)} images (one batched pass)…", show_time=True):
            cams = views_compute.grid_cams(loaded.model_id, loaded.key, tuple(int(i) for i in picked), layer,
                                           target, loaded)
        captions = [f"{'' if ok else '→ '}{class_names[predicted[i]]} ({confidence:.0%})"
                    for i, confidence in zip(picked, cams.confidence, strict=True)]
        view.thumbnail_grid(picked, view.overlay_pictures(cams.pixels, cams.cams), captions,
                            f"analysis.{'ok' if ok else 'wrong'}", open_sample)
st.caption(f"Grad-CAM at `{layer}` over each image; captions give the predicted class and the probability of the "
           "explained class. Samples are a seeded random pick when there are more.")
