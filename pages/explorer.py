"""Grad-CAM explorer: browse 20 seeded test images (or upload one) and see where the model looks, at any layer.

Order of work: the selected image's maps first (one cached engine call), then the gallery, whose marks need the
whole test split classified (one cached batched forward), so a cold start shows a heatmap before that finishes.
Widgets only select among cached maps; opacity and colormap only re-blend (numpy, milliseconds).
"""

from urllib.parse import urlencode, urlsplit

import numpy as np
import streamlit as st

from dashboard import compute, explorer, figures
from dashboard.explorer import SAMPLE_KEY, SOURCE_KEY, UPLOAD_KEY, WIDGET_KEYS
from dashboard.sampling import lead_index, sample_gallery
from dashboard.shell import LINK_ICON, current, set_query_params
from dashboard.view_state import (
    TARGET_PREDICTED,
    TARGET_TRUE,
    WORKSPACE_PARAM,
    ViewOptions,
    ViewState,
    to_query_params,
)
from gradcam_core import CAM_METHODS, COLORMAPS, METHOD_NAMES, colorize, softmax, upsample
from gradcam_core.images import MAX_PIXELS

loaded = current()
workspace = loaded.workspace
test_set = workspace.test_set
class_names = loaded.class_names
options = ViewOptions(layers=loaded.layers, default_layer=loaded.default_layer, class_names=class_names,
                      num_test=len(test_set))
link_warnings = explorer.restore_view(loaded, options)
state = st.session_state


def classify_test_split() -> compute.TestPredictions:
    with st.spinner(f"Classifying the {len(test_set)} test images (once per model)…", show_time=True):
        return compute.test_predictions(loaded.model_id, loaded.key, loaded)


st.title("Grad-CAM explorer", anchor=False)
st.caption(f"**{workspace.title}**: where does the model look when it decides? Pick an image on the left, then a "
           "layer, a method and a target class.")
for warning in link_warnings:
    st.warning(warning, icon=LINK_ICON)
skipped_files = getattr(test_set, "skipped", None)
if skipped_files:  # an ImageFolder with files that could not be read: left out, and the user is told which
    listing = "\n".join(f"- `{path}`: {why}" for path, why in skipped_files[:10])
    more = f"\n\n…and {len(skipped_files) - 10} more." if len(skipped_files) > 10 else ""
    st.warning(f"**{len(skipped_files)} image file(s) of the test folder could not be read and are left out:**\n\n"
               f"{listing}{more}", icon=":material/warning:")

gallery_col, view_col = st.columns([1.7, 3], gap="large")
with gallery_col:
    st.subheader("Test images", anchor=False)
    explorer.render_gallery_controls(class_names)
    with st.expander("Your own image", icon=":material/upload:", expanded=state.get(UPLOAD_KEY) is not None):
        uploaded = st.file_uploader(
            "Upload an image to explain", type=["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"],
            key=UPLOAD_KEY, on_change=explorer.on_upload,
            help="It goes through the workspace's own transform (resize, normalisation) before the model sees it. "
                 f"Up to {st.get_option('server.maxUploadSize')} MB and {MAX_PIXELS // 1_000_000} megapixels "
                 "(larger images are refused before decoding); big photos are reduced, EXIF rotation applied.",
        )
        if uploaded is not None and state[SOURCE_KEY] != "upload":
            st.button(f"Show {uploaded.name}", icon=":material/image:", on_click=explorer.show_upload,
                      width="stretch")
    gallery_area = st.container()

# ------------------------------------------------------------------------------------- the selected image
seed, gallery_filter = int(state[WIDGET_KEYS["seed"]]), state[WIDGET_KEYS["filter"]]
if state[SAMPLE_KEY] is None or not 0 <= state[SAMPLE_KEY] < len(test_set):
    first = lead_index(test_set.labels, seed, gallery_filter)
    if first is None:  # the filter needs predictions (correct / misclassified only)
        with gallery_area:
            gallery = sample_gallery(test_set.labels, classify_test_split().predicted, seed, gallery_filter)
        first = int(gallery[0]) if len(gallery) else 0
    state[SAMPLE_KEY] = first

sample = sample_input = None
if state[SOURCE_KEY] == "upload" and uploaded is not None:
    data = uploaded.getvalue()
    try:
        sample_input = compute.upload_input(loaded.model_id, compute.upload_sha256(data), data, uploaded.name, loaded)
        sample = compute.upload_sample(data, uploaded.name)
    except compute.UploadError as err:
        with view_col:
            st.error(f"**Could not use {uploaded.name}.** {err}", icon=":material/block:")
        state[SOURCE_KEY] = "test"
if sample is None:
    state[SOURCE_KEY] = "test"
    sample = compute.test_sample(loaded, state[SAMPLE_KEY])
    sample_input = compute.test_input(loaded.model_id, sample.key, sample.index, loaded)
probabilities = softmax(compute.sample_logits(loaded.model_id, sample.key, loaded, sample_input.tensor))
predicted = int(np.argmax(probabilities))
label = sample.label
misclassified = label is not None and label != predicted

# ----------------------------------------------------------------------------------------------- the view
with view_col:
    if sample.is_upload:
        st.markdown(f"#### Uploaded image · {sample.file_name}")
        st.markdown(f"Predicted **{class_names[predicted]}** ({probabilities[predicted]:.1%}) · no true label")
    else:
        verdict = ":red-badge[✗ misclassified]" if misclassified else ":green-badge[✓ correct]"
        st.markdown(f"#### Test image #{sample.index} · `{sample.item_id}`")
        st.markdown(f"True **{class_names[label]}** · predicted **{class_names[predicted]}** "
                    f"({probabilities[predicted]:.1%}) {verdict}")

    target_options: list = [TARGET_PREDICTED, *([] if sample.is_upload else [TARGET_TRUE]), *range(len(class_names))]
    if state[WIDGET_KEYS["target"]] not in target_options:
        state[WIDGET_KEYS["target"]] = TARGET_PREDICTED

    def target_label(value) -> str:
        if value == TARGET_PREDICTED:
            return f"Predicted: {class_names[predicted]}"
        if value == TARGET_TRUE:
            return f"True class: {class_names[label]}"
        return f"{value}: {class_names[value]}"

    def layer_label(layer: str) -> str:
        channels, height, width = loaded.layer_shapes.get(layer, (0, 0, 0))
        return f"{layer} · {channels}×{height}×{width}"

    method = st.segmented_control("Method", METHOD_NAMES, key=WIDGET_KEYS["method"], required=True,
                                  format_func=lambda m: CAM_METHODS[m].title, width="stretch",
                                  help="The five gradient methods come from one pass, so switching among them is "
                                       "free; Eigen-CAM is computed once per image when you pick it.")
    layer_col, target_col, opacity_col, cmap_col = st.columns([2.4, 2, 1.5, 1.1])
    layer = layer_col.selectbox("Layer", loaded.layers, key=WIDGET_KEYS["layer"], format_func=layer_label,
                                help=f"Every Conv2d of the model ({len(loaded.layers)}), shallow to deep, with its "
                                     "output shape channels×height×width. Type to search.")
    target = target_col.selectbox("Target class", target_options, key=WIDGET_KEYS["target"],
                                  format_func=target_label, help="The class whose score is explained. Type to search.")
    opacity = opacity_col.slider("Opacity", 0.0, 1.0, step=0.05, key=WIDGET_KEYS["opacity"],
                                 help="0 shows the image, 1 the heatmap. Moving it recomputes nothing.")
    colormap = cmap_col.selectbox("Colormap", list(COLORMAPS), key=WIDGET_KEYS["colormap"])

    target_class = predicted if target == TARGET_PREDICTED else label if target == TARGET_TRUE else int(target)

    method_title = CAM_METHODS[method].title

    def maps_for(class_index: int) -> dict[str, np.ndarray]:
        if CAM_METHODS[method].needs_gradients:
            text = f"Computing every layer's maps for '{class_names[class_index]}' (all gradient methods at once)…"
        else:
            text = f"Computing {method_title} at every layer (once per image: it does not depend on the class)…"
        with st.spinner(text, show_time=True):
            return compute.layer_maps(loaded, sample, sample_input.tensor, method, class_index)

    maps = maps_for(target_class)
    cam = maps[layer]
    pixels = sample_input.pixels
    height, width = pixels.shape[:2]
    shown = figures.enlarge(pixels, figures.display_factor(height, width))
    cam_shown = upsample(cam, shown.shape[:2])  # once, for both pictures
    heat = colorize(cam_shown, colormap)
    blended = figures.overlay_picture(shown, cam_shown, opacity, colormap)

    original_col, heat_col, overlay_col = st.columns(3)
    with original_col:
        st.markdown("**Original**")
        st.image(shown, width="stretch", caption=f"{height}×{width}, as the model sees it")
    with heat_col:
        st.markdown("**Heatmap**")
        st.image(heat, width="stretch",
                 caption=f"{method_title} · {layer} ({cam.shape[0]}×{cam.shape[1]}) · {class_names[target_class]}")
        st.html(figures.colorbar_html(colormap))
    with overlay_col:
        st.markdown("**Overlay**")
        st.image(blended, width="stretch", caption=f"opacity {opacity:.2f} · {colormap}")

    view = ViewState(
        layer=layer, seed=seed, filter=gallery_filter, sample=sample.link_value if sample.is_upload else sample.index,
        method=method, target=target, opacity=float(opacity), colormap=colormap,
    )
    params = {WORKSPACE_PARAM: loaded.key, **to_query_params(view)}
    page_url = urlsplit(st.context.url or "http://localhost:8501/")
    link = f"{page_url.scheme}://{page_url.netloc}{page_url.path}?{urlencode(params)}"

    chart_col, info_col = st.columns([3, 2], gap="medium")
    chart_col.plotly_chart(explorer.topk_chart(loaded.model_id, sample.key, target_class, probabilities,
                                               class_names, label),
                           config={"displayModeBar": False}, key="explorer.top5")
    with info_col:
        explorer.render_downloads(loaded, sample, view, probabilities, target_class, cam, heat, blended, link)

    if misclassified:
        st.markdown(f"##### Why **{class_names[predicted]}** and not **{class_names[label]}**? "
                    f"{method_title} at `{layer}`, one map per class")
        for column, (class_index, role) in zip(st.columns(2, border=True), ((predicted, "predicted"), (label, "true")),
                                               strict=True):
            class_map = upsample(maps_for(class_index)[layer], shown.shape[:2])  # once, for both pictures
            with column:
                heat_part, overlay_part = st.columns(2)
                heat_part.image(colorize(class_map, colormap), width="stretch",
                                caption=f"heatmap · {role}: {class_names[class_index]} "
                                        f"({probabilities[class_index]:.1%})")
                overlay_part.image(figures.overlay_picture(shown, class_map, opacity, colormap), width="stretch",
                                   caption=f"overlay · {role}: {class_names[class_index]}")
        if not CAM_METHODS[method].needs_gradients:
            st.caption(f"{method_title} does not depend on the class, so both maps are the same: pick a "
                       "gradient-based method to compare the classes.")

    with st.expander(f"Layer strip: {method_title} for '{class_names[target_class]}' at all "
                     f"{len(loaded.layers)} conv layers, shallow → deep (pick one to show it above)", expanded=True):
        explorer.render_layer_strip(loaded, pixels, maps, layer, colormap, maps_key=(sample.key, target_class, method))

# ----------------------------------------------------------------------------------------------- gallery
with gallery_area:
    predictions = classify_test_split()
    gallery = sample_gallery(predictions.labels, predictions.predicted, seed, gallery_filter)
    explorer.render_gallery(loaded, predictions, gallery, None if sample.is_upload else sample.index)

set_query_params(params)
explorer.remember_view(loaded, view)
