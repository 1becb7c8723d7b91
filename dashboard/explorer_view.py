"""The explorer's right column — one image explained at every layer — and the explorer's view state.

The view is one fragment (``VIEW_FRAGMENT``). Its picture is the browser-side CAM viewer (``dashboard.cam_viewer``):
it gets the image and every layer's map for the method and target once, and Layer, Opacity and Colormap change in
the browser with no round trip. The viewer reports its view back (debounced; a new Method at once), which reruns
this fragment alone: the session state, the URL, the downloads and the layer strip follow, and a new method's
maps are computed. The Target class stays a Streamlit widget; a new one also reruns this fragment alone.

The view is seeded once per session from the URL (``restore_view``, validated by ``explorer_link``), starts from
defaults in a new workspace (``dashboard.state``), and is written back to the URL after every run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlencode, urlsplit

import numpy as np
import streamlit as st

from dashboard import explorer_panels, figures
from dashboard.cam_viewer import ViewerState, cam_viewer
from dashboard.cam_viewer.pictures import viewer_pictures
from dashboard.cams import GRADIENT_METHODS, SWEEP_METHODS, explain_predicted, layer_maps, sample_logits
from dashboard.explorer_gallery import VIEW_FRAGMENT, first_gallery_image
from dashboard.explorer_link import (
    DEFAULT_METHOD,
    TARGET_PREDICTED,
    TARGET_TRUE,
    UPLOAD_PREFIX,
    WORKSPACE_PARAM,
    ViewChoice,
    ViewOptions,
    ViewState,
    default_state,
    parse_query_params,
    to_query_params,
)
from dashboard.faithfulness_view import render_explorer_faithfulness
from dashboard.samples import Sample, SampleInput, UploadError, open_test_image, open_upload
from dashboard.scorecam_view import EXPLORER_METHODS, SCORECAM, depends_on_class, scorecam_maps
from dashboard.shell import LINK_ICON, set_query_params
from dashboard.state import ExplorerState as E
from dashboard.state import SavedView
from dashboard.workspaces import LoadedWorkspace
from gradcam_core import CAM_METHODS, COLORMAPS, colorize, softmax, upsample

EXPLORER_PAGE = "pages/explorer.py"
VIEWER_KEY = "explorer.viewer"
METHOD_TITLES = {name: CAM_METHODS[name].title for name in EXPLORER_METHODS}
_WITHOUT_GRADIENTS = [CAM_METHODS[m].title for m in SWEEP_METHODS if m not in GRADIENT_METHODS]
METHOD_HELP = (f"The {len(GRADIENT_METHODS)} gradient methods come from one pass, so switching among them is free; "
               f"{', '.join(_WITHOUT_GRADIENTS)} {'is' if len(_WITHOUT_GRADIENTS) == 1 else 'are'} computed once per "
               "image when you pick it; Score-CAM (one forward per channel) is computed for the shown layer only.")


# ------------------------------------------------------------------------------------------ view state
def view_options(loaded: LoadedWorkspace) -> ViewOptions:
    return ViewOptions(layers=loaded.layers, default_layer=loaded.default_layer, class_names=loaded.class_names,
                       num_test=len(loaded.workspace.test_set))


def _saved_view(loaded: LoadedWorkspace) -> ViewState | None:
    saved = E.saved_view.get()
    return saved.view if saved is not None and saved.workspace == loaded.key else None


def restore_view(loaded: LoadedWorkspace) -> list[str]:
    """Seed the widgets' state before they are drawn; returns warnings about values the URL got wrong."""
    view, warnings = _saved_view(loaded), []
    if view is None:
        if not E.link_read.get():  # the first explorer run of this session: the shared link decides
            view, warnings = parse_query_params(st.query_params.to_dict(), view_options(loaded))
            E.link_read.set(True)
        else:  # a new workspace: its layers and classes differ, start from its defaults
            view = default_state(view_options(loaded))
        for key in E.view_widgets().values():
            key.clear()
        E.sample.set(view.sample if isinstance(view.sample, int) else None)
        E.source.set("test")
        E.saved_view.set(SavedView(loaded.key, view))
    for field, key in E.view_widgets().items():
        key.setdefault(getattr(view, field))
    E.sample.setdefault(None)
    E.source.setdefault("test")
    return warnings


def open_in_explorer(loaded: LoadedWorkspace, index: int | None, layer: str | None = None) -> None:
    """Show test image ``index`` (None: the explorer's upload) and ``layer``, when given, in the explorer.

    For other pages: call it when their "open in the explorer" button was pressed (not from a callback:
    ``st.switch_page`` ends the run). The explorer's other settings stay as the user left them.
    """
    view = _saved_view(loaded)
    if view is None:  # the explorer was not open yet in this workspace: its defaults, not another page's URL
        view = default_state(view_options(loaded))
        for key in E.view_widgets().values():
            key.clear()
    if layer is not None and layer in loaded.layers:
        view = replace(view, layer=layer)
        E.layer.set(layer)
    upload = index is None
    if upload and E.upload.get() is None:
        raise ValueError("open_in_explorer(index=None) shows the explorer's upload, and this session has none")
    E.saved_view.set(SavedView(loaded.key, replace(view, sample=None if upload else int(index))))
    E.link_read.set(True)
    E.source.set("upload" if upload else "test")
    if not upload:
        E.sample.set(int(index))
    params = {WORKSPACE_PARAM: loaded.key, **({} if upload else {"sample": str(int(index))})}
    st.switch_page(EXPLORER_PAGE, query_params=params)


@dataclass(frozen=True)
class Selection:
    """What the explorer last showed in this workspace, for other pages to start from."""

    index: int | None  # test index; None when not opened yet or when it showed an upload
    layer: str
    upload: bool = False


def explorer_selection(loaded: LoadedWorkspace) -> Selection:
    view = _saved_view(loaded)
    if view is None:
        return Selection(None, loaded.default_layer)
    layer = view.layer if view.layer in loaded.layers else loaded.default_layer
    if isinstance(view.sample, str) and view.sample.startswith(UPLOAD_PREFIX) and E.upload.get() is not None:
        return Selection(None, layer, upload=True)
    sample = view.sample if isinstance(view.sample, int) else E.sample.get()
    return Selection(int(sample) if isinstance(sample, int) else None, layer)


def display_settings(loaded: LoadedWorkspace) -> tuple[float, str]:
    """(opacity, colormap) the user chose in the explorer, for the overlays of other pages."""
    view = _saved_view(loaded) or default_state(view_options(loaded))
    return float(view.opacity), view.colormap


# ------------------------------------------------------------------------------------- the shown image
@dataclass(frozen=True)
class Shown:
    """The image in the view with the model's answer."""

    sample: Sample
    inputs: SampleInput
    probabilities: np.ndarray  # (num_classes,) float32

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def misclassified(self) -> bool:
        return self.sample.label is not None and self.sample.label != self.predicted


def _test_index(loaded: LoadedWorkspace) -> int:
    """The selected test index; a new gallery's first image when none is (or the old one is out of range)."""
    test_set = loaded.workspace.test_set
    index = E.sample.get()
    if index is None or not 0 <= index < len(test_set):
        index = first_gallery_image(loaded)
        E.sample.set(index)
    return int(index)


def shown_image(loaded: LoadedWorkspace, method: str) -> Shown:
    """The upload when the user chose it (and it can be used), else the selected test image, with the model's
    answer: for a gradient method from the first pass that also explains the predicted class (one forward and
    one backward in all), else from a plain forward."""
    upload = E.upload.get()
    opened = None
    if E.source.get() == "upload" and upload is not None:
        try:
            opened = open_upload(loaded, upload)
        except UploadError as err:
            st.error(f"**Could not use {upload.name}.** {err}", icon=":material/block:")
            E.upload.set(None)
    if opened is None:
        E.source.set("test")
        opened = open_test_image(loaded, _test_index(loaded))
    sample, inputs = opened
    if CAM_METHODS[method].needs_gradients:
        with st.spinner("Explaining the predicted class at every layer (all gradient methods at once)…",
                        show_time=True):
            logits = explain_predicted(loaded.model_id, sample.key, loaded, inputs.tensor).logits
    else:
        logits = sample_logits(loaded.model_id, sample.key, loaded, inputs.tensor)
    return Shown(sample, inputs, softmax(logits))


# ------------------------------------------------------------------------------------------ the view
def render_heading(loaded: LoadedWorkspace, shown: Shown) -> None:
    names, sample, p = loaded.class_names, shown.sample, shown.probabilities
    if sample.is_upload:
        st.markdown(f"#### Uploaded image · {sample.file_name}")
        st.markdown(f"Predicted **{names[shown.predicted]}** ({p[shown.predicted]:.1%}) · no true label")
        return
    verdict = ":red-badge[✗ misclassified]" if shown.misclassified else ":green-badge[✓ correct]"
    st.markdown(f"#### Test image #{sample.index} · `{sample.item_id}`")
    st.markdown(f"True **{names[sample.label]}** · predicted **{names[shown.predicted]}** "
                f"({p[shown.predicted]:.1%}) {verdict}")


def viewer_method() -> str:
    """The method the session holds (the viewer's Method control reports it)."""
    return E.method.get() if E.method.get() in CAM_METHODS else DEFAULT_METHOD


def render_target(loaded: LoadedWorkspace, shown: Shown) -> ViewChoice:
    """The Target class picker — the one view control that stays a Streamlit widget — and the view as the session
    holds it (layer, opacity, colormap and method are the viewer's controls; they arrive with its reports)."""
    names, label = loaded.class_names, shown.sample.label
    target_options: list = [TARGET_PREDICTED, *([] if shown.sample.is_upload else [TARGET_TRUE]), *range(len(names))]
    if E.target.get() not in target_options:
        E.target.set(TARGET_PREDICTED)
    method = viewer_method()
    layer = E.layer.get() if E.layer.get() in loaded.layers else loaded.default_layer
    uses_target = depends_on_class(method)

    def target_label(value) -> str:
        if value == TARGET_PREDICTED:
            return f"Predicted: {names[shown.predicted]}"
        return f"True class: {names[label]}" if value == TARGET_TRUE else f"{value}: {names[value]}"

    target_col, note_col = st.columns([2, 3], vertical_alignment="bottom")
    target = target_col.selectbox(
        "Target class", target_options, key=E.target, format_func=target_label, disabled=not uses_target,
        help="The class whose score is explained. Type to search." if uses_target else
        f"{CAM_METHODS[method].title} does not use a target class: its map is the same for every class.")
    if method == SCORECAM:  # one layer at a time: the viewer holds the shown layer's map only
        note_col.caption("Score-CAM runs the model once per channel, so it is computed for one layer at a time: pick "
                         "another layer in the layer strip below to compute it there.")
    else:
        note_col.caption("Layer, opacity and colormap change in your browser at once; a method or a target class "
                         "is computed on the server (the gradient methods in one pass per class).")
    target_class = shown.predicted if target == TARGET_PREDICTED else label if target == TARGET_TRUE else int(target)
    return ViewChoice(method, layer, target, target_class, float(E.opacity.get()), E.colormap.get())


def maps_for(loaded: LoadedWorkspace, shown: Shown, method: str, class_index: int) -> dict[str, np.ndarray]:
    """``method``'s map at every layer (cached; one engine call on a miss, with a spinner that says which)."""
    if method == SCORECAM:  # the shown layer only, on demand, with progress
        return scorecam_maps(loaded, shown.sample, shown.inputs.tensor, class_index, E.layer.get())
    title = CAM_METHODS[method].title
    if CAM_METHODS[method].needs_gradients:
        text = f"Computing every layer's maps for '{loaded.class_names[class_index]}' (all gradient methods at once)…"
    else:
        text = f"Computing {title} at every layer (once per image: it does not depend on the class)…"
    with st.spinner(text, show_time=True):
        return layer_maps(loaded, shown.sample, shown.inputs.tensor, method, class_index, shown.predicted)


def apply_viewer_view(view: ViewerState) -> None:
    """A report of the viewer (a callback, before the rerun it causes): the session's view becomes what the user
    picked there, so the URL, the downloads and the layer strip follow, and a new method's maps get computed."""
    E.layer.set(view.layer)
    E.opacity.set(view.opacity)
    E.colormap.set(view.colormap)
    E.method.set(view.method)


def draw_viewer(loaded: LoadedWorkspace, shown: Shown, choice: ViewChoice, maps: dict[str, np.ndarray]
                ) -> ViewChoice:
    """Original, heatmap (with its colour scale) and overlay in the browser-side viewer; returns the choice with
    the layer, opacity and colormap the viewer shows."""
    sample = shown.sample
    shown_view = cam_viewer(
        image=shown.inputs.pixels, maps=maps, layer=choice.layer, opacity=choice.opacity, colormap=choice.colormap,
        luts=COLORMAPS, sample=sample.link_value if sample.is_upload else sample.index,
        sample_label=f"uploaded image {sample.file_name}" if sample.is_upload else None,
        method=choice.method, methods=METHOD_TITLES, method_help=METHOD_HELP,
        target=loaded.class_names[choice.target_class] if choice.uses_target else None,
        layer_labels={layer: loaded.layer_label(layer) for layer in maps}, scale=display_scale(shown),
        key=VIEWER_KEY, on_change=apply_viewer_view)
    return replace(choice, layer=shown_view.layer, opacity=shown_view.opacity, colormap=shown_view.colormap)


def display_scale(shown: Shown) -> int:
    """The integer enlargement of the pictures (a 64 px input is shown at 256 px with crisp pixels)."""
    return figures.display_factor(*shown.inputs.pixels.shape[:2])


def shown_pictures(shown: Shown, cam: np.ndarray, choice: ViewChoice) -> tuple[np.ndarray, np.ndarray]:
    """(heatmap, overlay) exactly as the viewer draws them (for the downloads)."""
    return viewer_pictures(shown.inputs.pixels, cam, COLORMAPS[choice.colormap], choice.opacity, display_scale(shown))


def render_empty_map_note(loaded: LoadedWorkspace, choice: ViewChoice, cam: np.ndarray) -> None:
    """An all-zero map is drawn as the colormap's lowest colour; say what that means instead of leaving a plain
    square unexplained."""
    if np.any(cam > 0):
        return
    if choice.uses_target:
        st.info(f"At `{choice.layer}`, this layer gives no positive evidence for the class "
                f"**{loaded.class_names[choice.target_class]}**: the map is zero everywhere, so the heatmap is one "
                "colour. Try a deeper layer or another method.", icon=":material/info:")
    else:
        st.info(f"At `{choice.layer}`, {CAM_METHODS[choice.method].title}'s map is zero everywhere (no part of the "
                "image stands out in this layer), so the heatmap is one colour.", icon=":material/info:")


def render_class_comparison(loaded: LoadedWorkspace, shown: Shown, choice: ViewChoice) -> None:
    """For a misclassified image: the predicted and the true class's maps side by side."""
    names, predicted, label = loaded.class_names, shown.predicted, shown.sample.label
    title = CAM_METHODS[choice.method].title
    st.markdown(f"##### Why **{names[predicted]}** and not **{names[label]}**? {title} at `{choice.layer}`, "
                "one map per class")
    if not choice.uses_target:
        st.caption(f"{title} does not depend on the class, so both maps would be the same: pick a gradient-based "
                   "method to compare the classes.")
        return
    pixels = shown.inputs.pixels
    enlarged = figures.enlarge(pixels, figures.display_factor(*pixels.shape[:2]))
    for column, (class_index, role) in zip(st.columns(2, border=True), ((predicted, "predicted"), (label, "true")),
                                           strict=True):
        class_map = upsample(maps_for(loaded, shown, choice.method, class_index)[choice.layer], enlarged.shape[:2])
        with column:
            heat_part, overlay_part = st.columns(2)
            heat_part.image(colorize(class_map, choice.colormap), width="stretch",
                            caption=f"heatmap · {role}: {names[class_index]} ({shown.probabilities[class_index]:.1%})")
            overlay_part.image(figures.overlay_picture(enlarged, class_map, choice.opacity, choice.colormap),
                               width="stretch", caption=f"overlay · {role}: {names[class_index]}")


def share_link(params: dict[str, str]) -> str:
    page_url = urlsplit(st.context.url or "http://localhost:8501/")
    return f"{page_url.scheme}://{page_url.netloc}{page_url.path}?{urlencode(params)}"


@st.fragment(key=VIEW_FRAGMENT)
def view_fragment(loaded: LoadedWorkspace) -> None:
    """The shown image explained: heading, target, viewer, top-5, downloads, class comparison, layer strip."""
    shown = shown_image(loaded, viewer_method())
    render_heading(loaded, shown)
    choice = render_target(loaded, shown)
    maps = maps_for(loaded, shown, choice.method, choice.target_class)
    choice = draw_viewer(loaded, shown, choice, maps)
    cam = maps[choice.layer]
    render_empty_map_note(loaded, choice, cam)
    render_explorer_faithfulness(loaded, shown.sample, shown.inputs.tensor, choice, cam)
    sample = shown.sample
    view = ViewState(layer=choice.layer, seed=int(E.seed.get()), filter=E.filter.get(),
                     sample=sample.link_value if sample.is_upload else sample.index, method=choice.method,
                     target=choice.target, opacity=choice.opacity, colormap=choice.colormap)
    params = {WORKSPACE_PARAM: loaded.key, **to_query_params(view)}
    explained = choice.target_class if choice.uses_target else None
    chart_col, info_col = st.columns([3, 2], gap="medium")
    chart_col.plotly_chart(explorer_panels.topk_chart(loaded.model_id, sample.key, explained, shown.probabilities,
                                                         loaded.class_names, sample.label),
                           config={"displayModeBar": False}, key="explorer.top5")
    with info_col:
        explorer_panels.render_downloads(loaded, sample, view, shown.probabilities, choice.target_class, cam,
                                         lambda: shown_pictures(shown, cam, choice), share_link(params))
    if shown.misclassified:
        render_class_comparison(loaded, shown, choice)
    explorer_panels.render_layer_strip(loaded, shown.inputs.pixels, maps, choice, sample.key)
    set_query_params(params)
    E.saved_view.set(SavedView(loaded.key, view))


def render_page_header(loaded: LoadedWorkspace, link_warnings: list[str]) -> None:
    st.title("Grad-CAM explorer", anchor=False)
    st.caption(f"**{loaded.workspace.title}**: where does the model look when it decides? Pick an image on the left, "
               "then a layer, a method and a target class.")
    for warning in link_warnings:
        st.warning(warning, icon=LINK_ICON)
