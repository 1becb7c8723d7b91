"""Activation maps: what each channel of a Conv2d layer responds to in one image (raw outputs, no gradients).

One cached forward per image gives every layer, so switching layer, channel count or statistic recomputes nothing;
picking a channel reruns only the channel fragment.
"""

import numpy as np
import streamlit as st

from dashboard import activations_view as view
from dashboard import page_help
from dashboard.cams import sample_logits
from dashboard.shell import current
from dashboard.state import ActivationsState as A
from dashboard.state import ExplorerState
from gradcam_core import softmax

loaded = current()
view.seed_state(loaded)
upload = ExplorerState.upload.get()

st.title("Activation maps", anchor=False)
st.caption("The raw response of every channel of a conv layer to one image, strongest first — no gradient "
           "weighting, so this is what the layer sees, not what the decision used.")
page_help.show("activations")

source_col, sample_col, layer_col, count_col, stat_col = st.columns([1.6, 1.1, 2.2, 2, 1.4],
                                                                     vertical_alignment="bottom")
if upload is not None:
    source_col.segmented_control("Image", list(view.SOURCES), key=A.source, required=True,
                                 format_func=view.SOURCES.get, help=f"A test image, or {upload.name} uploaded in "
                                                                    "the explorer")
if A.source.get() == "test":
    sample_col.number_input("Test image #", min_value=0, max_value=len(loaded.workspace.test_set) - 1, step=1,
                            key=A.sample, help="Starts on the explorer's image (the first test image if none was "
                                               "opened)")
layer = layer_col.selectbox("Layer", loaded.layers, key=A.layer, format_func=loaded.layer_label,
                            help="Every Conv2d of the model, with its output shape channels×height×width")
count = count_col.slider("Channels shown", 8, 64, step=4, key=A.count)
statistic = stat_col.segmented_control("Rank by", list(view.STATISTICS), key=A.statistic, required=True,
                                       format_func=lambda s: view.STATISTICS[s].split()[0])

sample, inputs = view.shown_image(loaded)
with st.spinner("Running the model once for this image (every layer at once)…", show_time=True):
    activations = view.sample_activations(loaded.model_id, sample.key, loaded, inputs.tensor)
    probabilities = softmax(sample_logits(loaded.model_id, sample.key, loaded, inputs.tensor))
view.render_heading(loaded, sample, np.asarray(probabilities), layer)
view.channels_fragment(activations[layer], inputs.pixels, layer, int(count), statistic)
