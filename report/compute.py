"""Findings against their model: check each one, recompute what it lacks (pictures, top-5) from its view with the
engine, and summarise the model on its test set (accuracy, confusion matrix) for the model card.

The pictures are the explorer's: the input as the model sees it (``denormalise``), enlarged by an integer factor to
about ``DISPLAY_PIXELS`` with crisp pixels, the map bilinearly upsampled to that size (``upsample``), coloured
(``colorize``) and blended (``overlay``). A finding pinned in the dashboard and the same view recomputed here give
the same PNGs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gradcam_core import CAM_METHODS, COLORMAPS, CamEngine, colorize, denormalise, list_conv_layers, overlay, upsample
from gradcam_core import softmax as softmax_np
from gradcam_core.layers import suggest
from report.findings import ComparedModel, Finding, Pictures, TopClass, field_error

#: The pages and the report show a picture at about this many pixels on its longer side (dashboard.figures uses it).
DISPLAY_PIXELS = 288
PREDICT_BATCH = 128


# -------------------------------------------------------------------------------------------- pictures
def display_factor(height: int, width: int, target: int = DISPLAY_PIXELS) -> int:
    """Integer upscaling for small inputs (a 64 px image is shown at 256 px with crisp pixels)."""
    return max(1, round(target / max(height, width)))


def enlarge(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor."""
    if factor <= 1:
        return pixels
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB of PNG bytes."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def view_pictures(pixels: np.ndarray, cam: np.ndarray, opacity: float, colormap: str,
                  display_pixels: int = DISPLAY_PIXELS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(original, heatmap, overlay) uint8 RGB as the explorer draws them, from the (H, W, 3) input as the model
    sees it and a (h, w) map in [0, 1]."""
    shown = enlarge(pixels, display_factor(*pixels.shape[:2], display_pixels))
    cam_shown = upsample(cam, shown.shape[:2])
    return shown, colorize(cam_shown, colormap), overlay(shown, cam_shown, float(opacity), colormap)


def pictures_from_arrays(original: np.ndarray, heatmap: np.ndarray, overlay_: np.ndarray) -> Pictures:
    """A finding's pictures from the three uint8 RGB arrays a page shows (what "Add to report" pins)."""
    return Pictures(original=png_bytes(original), heatmap=png_bytes(heatmap), overlay=png_bytes(overlay_))


def top_classes(probabilities: np.ndarray, class_names: Sequence[str], k: int = 5) -> tuple[TopClass, ...]:
    """The k most probable classes, best first (ties in class order, as the explorer's chart)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-probabilities, kind="stable")[:k]
    return tuple(TopClass(int(c), str(class_names[c]), float(probabilities[c])) for c in order)


# ----------------------------------------------------------------------------------------------- checks
def _names_workspace(name: str, workspace: Any, key: str | None) -> bool:
    """Whether a finding's ``workspace`` names this workspace: its name, the key it was opened with, or a path
    to the same TOML file."""
    if name in {workspace.name, key}:
        return True
    toml = workspace.toml_path
    return toml is not None and name.lower().endswith(".toml") and Path(name).resolve() == Path(toml).resolve()


def _check_model(where: str, prefix: str, name: str, model_id: str, workspace: Any, key: str | None) -> None:
    if model_id and model_id != workspace.model_id:
        raise field_error(where, prefix + "model_id",
                          f"{model_id!r} is not the model of workspace {workspace.name!r} ({workspace.model_id!r}), "
                          "so its pictures and top-5 came from another model",
                          "the model the report is built for: build the report with the workspace the finding was "
                          "pinned in, or remove model_id, top5 and pictures to recompute it with this model")
    if not model_id and not _names_workspace(name, workspace, key):
        raise field_error(where, prefix + "workspace", f"{name!r} is not the workspace {workspace.name!r}",
                          f"{workspace.name!r} (or its model_id {workspace.model_id!r}): a report covers one "
                          "workspace; build one report per workspace")


def _check_layer(where: str, field: str, layer: str, model: torch.nn.Module) -> None:
    if layer and layer in dict(model.named_modules()):
        return
    conv = list_conv_layers(model)
    hints = suggest(layer, conv)
    hint = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
    raise field_error(where, field, f"layer {layer!r} is not in the model ({type(model).__name__}){hint}",
                      f"one of its layers, e.g. the Conv2d layers {', '.join(conv[-3:])} "
                      "(gradcam explain --workspace W --list-layers lists them all)")


def _check_class(where: str, field: str, value: int | None, class_names: Sequence[str]) -> None:
    if value is not None and value >= len(class_names):
        raise field_error(where, field, f"class {value} is out of range: the model has {len(class_names)} classes",
                          f"a class index from 0 to {len(class_names) - 1}")


def _check_sample(where: str, finding: Finding, workspace: Any) -> None:
    sample = finding.sample
    if sample.is_upload:
        return
    test_set = workspace.test_set
    if sample.index >= len(test_set):
        raise field_error(where, "sample.index", f"test image {sample.index} is out of range: the test set of "
                          f"{workspace.name!r} has {len(test_set)} images", f"an index from 0 to {len(test_set) - 1}")
    if sample.item_id and sample.item_id != str(test_set.item_id(sample.index)):
        raise field_error(where, "sample.item_id", f"{sample.item_id!r} is not test image {sample.index}, which is "
                          f"{test_set.item_id(sample.index)!r}: the test set changed since the finding was pinned",
                          "the item id of that index (or remove item_id to use the index alone)")
    label = int(test_set.label(sample.index))
    if sample.true_class is not None and sample.true_class != label:
        raise field_error(where, "sample.true_class", f"{sample.true_class} but test image {sample.index} is of "
                          f"class {label} ({workspace.class_names[label]})", "its class, or no true_class")


def check_finding(finding: Finding, workspace: Any, where: str = "finding", workspace_key: str | None = None) -> None:
    """Raise ``FindingError`` (naming ``where`` and the field) unless the finding fits the workspace's model."""
    _check_model(where, "", finding.workspace, finding.model_id, workspace, workspace_key)
    _check_layer(where, "layer", finding.layer, workspace.model)
    if finding.method not in CAM_METHODS:
        raise field_error(where, "method", f"got {finding.method!r}", f"one of {', '.join(CAM_METHODS)}")
    if finding.colormap not in COLORMAPS:
        raise field_error(where, "colormap", f"got {finding.colormap!r}", f"one of {', '.join(COLORMAPS)}")
    _check_sample(where, finding, workspace)
    _check_class(where, "target.class", finding.target_class, workspace.class_names)
    for position, top in enumerate(finding.top5):
        _check_class(where, f"top5[{position}].class", top.index, workspace.class_names)


# ------------------------------------------------------------------------------------------- recomputing
@dataclass
class _Explained:
    pictures: Pictures
    top5: tuple[TopClass, ...]
    target_class: int


def explain_view(engine: CamEngine, workspace: Any, tensor: torch.Tensor, layer: str, method: str,
                 target: int | None, opacity: float, colormap: str,
                 display_pixels: int = DISPLAY_PIXELS) -> _Explained:
    """One view of one image (1, 3, H, W): its pictures, top-5 and the class explained (target None = predicted)."""
    result = engine.explain(tensor, layers=[layer], targets=target, methods=(method,))
    cam = result.cams[method][layer][0]
    pixels = denormalise(tensor[0], workspace.mean, workspace.std)
    pictures = pictures_from_arrays(*view_pictures(pixels, cam, opacity, colormap, display_pixels))
    return _Explained(pictures, top_classes(softmax_np(result.logits[0]), workspace.class_names),
                      int(result.targets[0]))


def _target(mode: str, class_index: int | None, true_class: int | None) -> int | None:
    return None if mode == "pred" else true_class if mode == "true" else class_index


class _Models:
    """Engines and second workspaces, made once per ``complete_findings`` call."""

    def __init__(self, workspace: Any, engine: CamEngine | None, load_workspace: Callable[[str], Any] | None,
                 device: str | None):
        self.primary, self.device = workspace, device
        self.engines: dict[str, CamEngine] = {} if engine is None else {workspace.model_id: engine}
        self.workspaces: dict[str, Any] = {}
        self.load_workspace = load_workspace

    def engine(self, workspace: Any) -> CamEngine:
        if workspace.model_id not in self.engines:
            self.engines[workspace.model_id] = CamEngine(workspace.model, device=self.device)
        return self.engines[workspace.model_id]

    def other(self, where: str, name: str) -> Any:
        if name not in self.workspaces:
            load = self.load_workspace
            if load is None:
                from models import load_workspace as load
            try:
                self.workspaces[name] = load(name)
            except ValueError as error:  # models.WorkspaceError is a ValueError
                raise field_error(where, "compare.workspace", f"{name!r} could not be opened: {error}",
                                  "a bundled workspace name or the path of a .toml workspace file") from None
        return self.workspaces[name]


def _explain_or_explain_why(where: str, field: str, run: Callable[[], _Explained]) -> _Explained:
    try:
        return run()
    except ValueError as error:  # the engine's messages say what was wrong with the layer or target
        raise field_error(where, field, f"the engine could not explain this view: {error}",
                          "a view the model can explain") from None


def recompute_finding(finding: Finding, workspace: Any, models: _Models | None = None, where: str = "finding",
                      display_pixels: int = DISPLAY_PIXELS) -> Finding:
    """The finding with its pictures and top-5 computed from its view (the primary model's side)."""
    if finding.sample.is_upload:
        raise field_error(where, "pictures", f"missing for {finding.sample.describe()} "
                          f"(sha256 {finding.sample.upload_sha256[:12]}…), whose image is not in the findings file",
                          "the pictures pinned in the dashboard: an upload cannot be recomputed")
    models = models or _Models(workspace, None, None, None)
    sample = finding.sample
    true_class = int(workspace.test_set.label(sample.index))
    tensor = workspace.test_set.tensors([sample.index]).float()
    explained = _explain_or_explain_why(where, "layer", lambda: explain_view(
        models.engine(workspace), workspace, tensor, finding.layer, finding.method,
        _target(finding.target_mode, finding.target_class, true_class), finding.opacity, finding.colormap,
        display_pixels))
    return replace(finding, model_id=workspace.model_id, target_class=explained.target_class, top5=explained.top5,
                   pictures=finding.pictures or explained.pictures,
                   sample=replace(sample, item_id=sample.item_id or str(workspace.test_set.item_id(sample.index)),
                                  true_class=true_class))


def _recompute_compared(finding: Finding, workspace: Any, models: _Models, where: str,
                        display_pixels: int) -> ComparedModel:
    other_side = finding.compare
    other = models.other(where, other_side.workspace)
    _check_model(where, "compare.", other_side.workspace, other_side.model_id, other, other_side.workspace)
    _check_layer(where, "compare.layer", other_side.layer, other.model)
    _check_class(where, "compare.target.class", other_side.target_class, other.class_names)
    if finding.sample.is_upload:
        raise field_error(where, "compare.pictures", "missing for an uploaded image, whose image is not in the "
                          "findings file", "the pictures pinned in the dashboard: an upload cannot be recomputed")
    true_name = workspace.class_names[int(workspace.test_set.label(finding.sample.index))]
    true_class = other.class_names.index(true_name) if true_name in other.class_names else None
    if other_side.target_mode == "true" and true_class is None:
        raise field_error(where, "compare.target.mode", f'"true", but the second model has no class {true_name!r}',
                          '"pred" or "class"')
    # The same image, through the second model's own transform (it may expect another size or normalisation).
    tensor = other.transform(workspace.test_set.image(finding.sample.index))[None].float()
    explained = _explain_or_explain_why(where, "compare.layer", lambda: explain_view(
        models.engine(other), other, tensor, other_side.layer, finding.method,
        _target(other_side.target_mode, other_side.target_class, true_class), finding.opacity, finding.colormap,
        display_pixels))
    return replace(other_side, model_id=other.model_id, target_class=explained.target_class, top5=explained.top5,
                   pictures=other_side.pictures or explained.pictures)


def _needs_recompute(finding: Finding, side: Finding | ComparedModel) -> bool:
    """Pictures missing, or top-5 missing where it can be computed (an upload's image is not in the file)."""
    return side.pictures is None or (not side.top5 and not finding.sample.is_upload)


def complete_findings(findings: Sequence[Finding], workspace: Any, *, workspace_key: str | None = None,
                      engine: CamEngine | None = None, load_workspace: Callable[[str], Any] | None = None,
                      device: str | None = None, display_pixels: int = DISPLAY_PIXELS) -> list[Finding]:
    """Check every finding against the workspace's model and recompute the pictures and top-5 of those that lack
    them (a comparison's second model is opened with ``load_workspace``, default ``models.load_workspace``).

    Raises ``FindingError`` naming the finding ("finding 2 of 3") and the field. Findings that carry their
    pictures are kept as they are: they are what the user saw.
    """
    models = _Models(workspace, engine, load_workspace, device)
    completed = []
    for number, finding in enumerate(findings, 1):
        where = f"finding {number} of {len(findings)}"
        check_finding(finding, workspace, where, workspace_key)
        if _needs_recompute(finding, finding):
            finding = recompute_finding(finding, workspace, models, where, display_pixels)
        if finding.compare is not None and _needs_recompute(finding, finding.compare):
            finding = replace(finding, compare=_recompute_compared(finding, workspace, models, where, display_pixels))
        completed.append(finding)
    return completed


# ---------------------------------------------------------------------------------------- model summary
@dataclass(frozen=True)
class ModelSummary:
    """The model on its test set, for the model card."""

    recorded_accuracy: float | None  # from the checkpoint's card (Workspace.test_accuracy)
    confusion: np.ndarray | None  # (C, C) counts over the labelled test images; rows true, columns predicted
    predictions_from: str  # where the predictions behind ``confusion`` came from, for the reader


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows the true class, columns the predicted one."""
    flat = np.asarray(labels, np.int64) * num_classes + np.asarray(predicted, np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _predict_test_set(workspace: Any, engine: CamEngine) -> np.ndarray:
    test_set = workspace.test_set
    parts = [np.zeros(0, np.int64)]
    for start in range(0, len(test_set), PREDICT_BATCH):
        batch = test_set.tensors(list(range(start, min(start + PREDICT_BATCH, len(test_set))))).float()
        parts.append(engine.predict(batch, batch_size=PREDICT_BATCH).argmax(axis=1).astype(np.int64))
    return np.concatenate(parts)


def summarise_model(workspace: Any, predicted: np.ndarray | None = None, engine: CamEngine | None = None,
                    device: str | None = None) -> ModelSummary:
    """Accuracy and confusion matrix on the test set: from ``predicted`` (the dashboard's cached predictions)
    when given, else the logits shipped with a bundled checkpoint, else one batched no-grad forward per 128
    test images."""
    labels = np.asarray(workspace.test_set.labels, dtype=np.int64)
    num_classes = len(workspace.class_names)
    if predicted is not None:
        predicted, source = np.asarray(predicted, dtype=np.int64), "the dashboard's predictions"
        if predicted.shape != labels.shape:
            raise ValueError(f"predicted has shape {predicted.shape} but the test set has {len(labels)} images; "
                             "pass one predicted class per test image")
    elif getattr(workspace, "test_logits", None) is not None:
        predicted, source = np.asarray(workspace.test_logits).argmax(axis=1), "the logits shipped with the checkpoint"
    else:
        engine = engine or CamEngine(workspace.model, device=device)
        predicted, source = _predict_test_set(workspace, engine), f"classifying the {len(labels)} test images"
    labelled = labels >= 0
    confusion = confusion_matrix(labels[labelled], predicted[labelled], num_classes) if labelled.any() else None
    return ModelSummary(recorded_accuracy=workspace.test_accuracy, confusion=confusion, predictions_from=source)


def method_titles() -> Mapping[str, str]:
    return {name: method.title for name, method in CAM_METHODS.items()}


def class_free_methods() -> set[str]:
    """Methods whose map does not depend on the target class: neither gradients nor the model's score are used
    (Eigen-CAM: the first principal component of the activations). Score-CAM has no gradient but uses the score."""
    return {name for name, method in CAM_METHODS.items()
            if not method.needs_gradients and not getattr(method, "needs_model", False)}
