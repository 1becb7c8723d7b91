"""Activation maps: what each channel of a Conv2d layer responds to in one test image (raw outputs, no gradients).

One cached forward per image gives every layer, so switching layer, channel count or statistic recomputes nothing.
"""

import numpy as np
import streamlit as st

from dashboard import activations_view as view
from dashboard import compute, explorer, figures, views_compute
from dashboard.shell import current
from gradcam_core import softmax

loaded = current()
test_set = loaded.workspace.test_set
class_names = loaded.class_names
explorer_sample, explorer_layer = explorer.explorer_selection(loaded)
view.reset_for_workspace(loaded.key, explorer_sample if explorer_sample is not None else 0, explorer_layer,
                         len(test_set))
state = st.session_state
KEYS = view.KEYS

st.title("Activation maps", anchor=False)
st.caption("The raw response of every channel of a conv layer to one test image, strongest first — no gradient "
           "weighting, so this is what the layer sees, not what the decision used.")


def layer_label(layer: str) -> str:
    channels, height, width = loaded.layer_shapes.get(layer, (0, 0, 0))
    return f"{layer} · {channels}×{height}×{width}"


sample_col, layer_col, count_col, stat_col = st.columns([1.1, 2.2, 2, 1.4], vertical_alignment="bottom")
index = sample_col.number_input("Test image #", min_value=0, max_value=len(test_set) - 1, step=1, key=KEYS["sample"],
                                help="Starts on the explorer's image (the first test image if none was opened)")
layer = layer_col.selectbox("Layer", loaded.layers, key=KEYS["layer"], format_func=layer_label,
                            help="Every Conv2d of the model, with its output shape channels×height×width")
channels_total = loaded.layer_shapes.get(layer, (0, 0, 0))[0]
count = count_col.slider("Channels shown", 8, 64, step=4, key=KEYS["count"])
statistic = stat_col.segmented_control("Rank by", list(view.STATISTICS), key=KEYS["statistic"], required=True,
                                       format_func=lambda s: view.STATISTICS[s].split()[0])

sample = compute.test_sample(loaded, int(index))
sample_input = compute.test_input(loaded.model_id, sample.key, sample.index, loaded)
with st.spinner("Running the model once for this image (every layer at once)…", show_time=True):
    activations = views_compute.sample_activations(loaded.model_id, sample.key, sample.index, loaded)
    probabilities = softmax(compute.sample_logits(loaded.model_id, sample.key, loaded, sample_input.tensor))
predicted = int(np.argmax(probabilities))
activation = activations[layer]
grid = view.channel_grid(activation, count, statistic)
if state.get(KEYS["channel"]) not in set(range(activation.shape[0])):
    state[KEYS["channel"]] = int(grid.channels[0])

verdict = ":green-badge[✓ correct]" if predicted == sample.label else ":red-badge[✗ misclassified]"
head_col, link_col = st.columns([4, 1.3], vertical_alignment="center")
head_col.markdown(f"#### Test image #{sample.index} · true **{class_names[sample.label]}** · predicted "
                  f"**{class_names[predicted]}** ({probabilities[predicted]:.1%}) {verdict}")
if link_col.button(f"Open #{sample.index} in the explorer", icon=":material/open_in_new:", width="stretch",
                   key="activations.open", help=f"Grad-CAM of this image at {layer}"):
    explorer.open_in_explorer(loaded, sample.index, layer)

pixels = sample_input.pixels
shown = figures.enlarge(pixels, figures.display_factor(*pixels.shape[:2], target=224))
picked_col, mean_col = st.columns(2, border=True)
with picked_col:
    channel = st.selectbox(
        "Channel", range(activation.shape[0]), key=KEYS["channel"],
        format_func=lambda c: f"channel {c} · mean {activation[c].mean():.3g} · max {activation[c].max():.3g}",
        help="Or press a channel's button in the grid below")
    alone = view.display_maps(activation[channel][None])[0]
    left, right = st.columns(2)
    left.image(view.cell_picture(alone, shown.shape[0]), width="stretch",
               caption=f"channel {channel} · {activation.shape[1]}×{activation.shape[2]} · scaled to its own max")
    right.image(figures.overlay_picture(shown, alone, 0.55, view.GRID_COLORMAP), width="stretch",
                caption=f"channel {channel} over the image")
with mean_col:
    st.markdown(f"**Mean over all {activation.shape[0]} channels**")
    average = view.mean_map(activation)
    left, right = st.columns(2)
    left.image(view.cell_picture(average, shown.shape[0]), width="stretch",
               caption="channel mean · min-max scaled")
    right.image(figures.overlay_picture(shown, average, 0.55, view.GRID_COLORMAP), width="stretch",
                caption="channel mean over the image")

st.markdown(f"##### Top {len(grid.channels)} of {channels_total} channels of `{layer}` by "
            f"{view.STATISTICS[statistic].lower()}")
st.caption(f"One colour scale for the whole grid: black-blue 0 (or negative) → yellow {grid.scale:.3g}, the "
           "strongest response shown. Press a channel to enlarge it above.")
cells = st.grid("auto", min_column_width=92, gap="small")
for rank, (c, value, picture) in enumerate(zip(grid.channels, grid.values, grid.pictures, strict=True), start=1):
    with cells.cell():
        st.image(view.cell_picture(picture), width="stretch", caption=f"{rank}. {statistic} {value:.3g}")
        st.button(f"ch {int(c)}", key=f"activations.pick.{int(c)}", on_click=view.pick_channel, args=(int(c),),
                  width="stretch", type="primary" if int(c) == channel else "secondary")
