"""Two models on the same images: the computational core of the "Compare models" page (no streamlit).

    from models import load_workspace
    from analysis.compare import agreement, compare_image
    honest, shortcut = load_workspace("shapes"), load_workspace("shapes-shortcut")
    view = compare_image(honest, shortcut, 479)     # one image: predictions, top-5, maps, difference, numbers
    view.summary()                                  # the story in sentences
    sample = agreement(honest, shortcut)            # the same numbers over a seeded sample of test images

Both models see the *same* image, each through its own transform (input size, crop, normalisation), so two models
with other input sizes can be compared. Each map is put back into the frame of the original image (where the
model's crop was, zero outside it) and upsampled, so the two maps line up pixel for pixel. Numbers are computed in
the "analysis" frame (the image's own size, at most ``ANALYSIS_PIXELS`` on its longer side), by one function for
one image and for a sample alike; pictures are drawn at about ``DISPLAY_PIXELS`` like the explorer's.

The numbers: the Spearman rank correlation of the two maps (1: same ranking of pixels; NaN when a map is constant),
and the *energy* of a map in a region: the region's share of the map's total (the energy-based pointing game of
Score-CAM). A share is best read next to the region's share of the image (``object_area``, ``marker_area``): a 7×7
marker covers 1.2% of a 64×64 image, so 7% of a map on it is six times its fair share.

Which test set an index refers to: ``image_from="a"`` or ``"b"``; by default ``default_image_source``: the test set
of a workspace marked as using a shortcut (``Workspace.shortcut``), because its images carry what the shortcut reads,
else A's. The bundled ``shapes`` and ``shapes-shortcut`` test sets are the same scenes; only the second has the
marker, so by default both models see the marker, and one of them reads it.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from gradcam_core import CamEngine, colorize, overlay, softmax, upsample

#: Images per ``agreement`` by default: for the shapes pair 0.6 s of CPU with one torch thread, 2 s with two (the
#: small convs gain nothing from a second thread), so a few seconds at most on a busy 2-core machine.
DEFAULT_SAMPLE = 200
#: Images per engine call in ``agreement`` (one explain per batch per model).
DEFAULT_BATCH = 64
#: Numbers are computed with the maps at the image's own size, at most this many pixels on the longer side.
ANALYSIS_PIXELS = 256
#: Pictures are drawn at about this many pixels on the longer side (small images enlarged by an integer factor).
DISPLAY_PIXELS = 288
SIDES = ("a", "b")
ProgressFn = Callable[[float, str], None]


def _bwr_lut() -> np.ndarray:
    """matplotlib's "bwr" (blue, white, red; linear segments) as a (256, 3) uint8 table, rounded like
    ``gradcam_core.COLORMAPS``."""
    x = np.linspace(0.0, 1.0, 256)
    rgb = np.stack([np.minimum(1.0, 2 * x), 1.0 - np.abs(2 * x - 1), np.minimum(1.0, 2 - 2 * x)], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


#: Diverging table for the signed difference a − b: blue where B's map is higher, white where equal, red where A's is.
#: (``gradcam_core.COLORMAPS`` holds sequential maps only.)
DIFFERENCE_LUT = _bwr_lut()


class IncompatibleModelsError(ValueError):
    """The two models cannot be shown the same image."""


# ------------------------------------------------------------------------------------------ compatibility
@dataclass(frozen=True)
class Compatibility:
    """What can be compared between two workspaces, and ``notes`` saying so in words for the page."""

    workspace_a: str
    workspace_b: str
    same_classes: bool
    shared_classes: tuple[str, ...]
    input_size_a: tuple[int, int]
    input_size_b: tuple[int, int]
    notes: tuple[str, ...]

    @property
    def same_input_size(self) -> bool:
        return self.input_size_a == self.input_size_b


def input_channels(model: nn.Module) -> int | None:
    """Channels the model's first Conv2d takes (None for a model without one)."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if first is None else int(first.in_channels)


def _names(names: Sequence[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def check_compatible(ws_a: Any, ws_b: Any) -> Compatibility:
    """Whether two workspaces' models can be shown the same image; raise ``IncompatibleModelsError`` if not.

    Different class names: each model explains its own predicted class (a class index would mean different things
    to each). Different input sizes: each model gets the image through its own transform, and the maps are compared
    after upsampling to a common size. Different numbers of input channels: refused.
    """
    channels_a, channels_b = input_channels(ws_a.model), input_channels(ws_b.model)
    if None not in (channels_a, channels_b) and channels_a != channels_b:
        raise IncompatibleModelsError(
            f"model A ({ws_a.name}) takes {channels_a}-channel images and model B ({ws_b.name}) takes {channels_b}-"
            "channel images, so they cannot be shown the same image; compare two models that take the same kind of "
            "input (e.g. two checkpoints of one architecture)")
    names_a, names_b = list(ws_a.class_names), list(ws_b.class_names)
    shared = tuple(n for n in names_a if n in set(names_b))
    notes = []
    if names_a != names_b:
        agree = ("their predictions agree when they name the same class" if shared else
                 "they share no class name, so there is no prediction agreement rate")
        notes.append(f"The models have different classes (A: {len(names_a)}, {_names(names_a)}; B: {len(names_b)}, "
                     f"{_names(names_b)}), so they are compared by prediction only: each explains its own predicted "
                     f"class, and {agree}.")
    size_a, size_b = tuple(ws_a.input_size), tuple(ws_b.input_size)
    if size_a != size_b:
        notes.append(f"A sees {size_a[0]}×{size_a[1]} pixels and B {size_b[0]}×{size_b[1]}: each model gets the image "
                     "through its own transform, and the maps are compared after upsampling to a common size.")
    crops = [w for w, ws in (("A", ws_a), ("B", ws_b)) if getattr(ws.transform, "resize", None)]
    if crops:
        notes.append(f"{' and '.join(crops)} see{'s' if len(crops) == 1 else ''} a centre crop of the image: its map "
                     "is zero outside the crop.")
    return Compatibility(ws_a.name, ws_b.name, names_a == names_b, shared, size_a, size_b, tuple(notes))


def default_image_source(ws_a: Any, ws_b: Any) -> str:
    """Whose test set an index refers to by default: a workspace marked as using a shortcut (its test images carry
    what the shortcut reads), else A's; never an empty set when the other has images."""
    has_images = {"a": len(ws_a.test_set) > 0, "b": len(ws_b.test_set) > 0}
    if getattr(ws_b, "shortcut", False) and not getattr(ws_a, "shortcut", False) and has_images["b"]:
        return "b"
    return "a" if has_images["a"] or not has_images["b"] else "b"


# ----------------------------------------------------------------------------------------------- geometry
def model_view_box(transform: Any, width: int, height: int) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the part of a ``width``×``height`` image the model sees through ``transform``
    (``models.ImageTransform``: the whole image, or the centre crop after resizing the shorter side)."""
    resize, size = getattr(transform, "resize", None), getattr(transform, "input_size", None)
    if resize is None or size is None:
        return 0.0, 0.0, float(width), float(height)
    in_h, in_w = size
    scale = resize / min(width, height)
    new_w, new_h = max(in_w, round(width * scale)), max(in_h, round(height * scale))
    left, top = (new_w - in_w) // 2, (new_h - in_h) // 2
    sx, sy = new_w / width, new_h / height
    return left / sx, top / sy, (left + in_w) / sx, (top + in_h) / sy


def analysis_frame(width: int, height: int, limit: int = ANALYSIS_PIXELS) -> tuple[int, int]:
    """(H, W) the numbers are computed at: the image's own size, scaled down to ``limit`` on its longer side."""
    scale = min(1.0, limit / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def display_frame(width: int, height: int, target: int = DISPLAY_PIXELS) -> tuple[int, int]:
    """(H, W) of the pictures: a small image enlarged by an integer factor (crisp pixels), a large one shrunk."""
    longer = max(width, height)
    if longer <= target:
        factor = max(1, round(target / longer))
        return height * factor, width * factor
    return max(1, round(height * target / longer)), max(1, round(width * target / longer))


def place_maps(cams: np.ndarray, box: Sequence[float], image_size: tuple[int, int],
               frame: tuple[int, int]) -> np.ndarray:
    """(N, h, w) maps of what the model saw (``box`` of an image of ``image_size`` = (W, H)) -> (N, H', W') maps in
    the image's ``frame`` (H', W'), bilinearly upsampled, zero outside the box."""
    cams = np.asarray(cams, dtype=np.float32)
    width, height = image_size
    sx, sy = frame[1] / width, frame[0] / height
    left, top = max(0, round(box[0] * sx)), max(0, round(box[1] * sy))
    right, bottom = min(frame[1], max(left + 1, round(box[2] * sx))), min(frame[0], max(top + 1, round(box[3] * sy)))
    if (left, top, right, bottom) == (0, 0, frame[1], frame[0]):
        return upsample(cams, frame)
    placed = np.zeros((cams.shape[0], *frame), np.float32)
    placed[:, top:bottom, left:right] = upsample(cams, (bottom - top, right - left))
    return placed


def resize_region(region: np.ndarray | None, frame: tuple[int, int]) -> np.ndarray | None:
    """A (H, W) bool region at ``frame`` (nearest neighbour: pixel centres)."""
    if region is None:
        return None
    region = np.asarray(region, dtype=bool)
    if region.shape == tuple(frame):
        return region
    rows = np.minimum(((np.arange(frame[0]) + 0.5) * region.shape[0] / frame[0]).astype(np.int64),
                      region.shape[0] - 1)
    cols = np.minimum(((np.arange(frame[1]) + 0.5) * region.shape[1] / frame[1]).astype(np.int64),
                      region.shape[1] - 1)
    return region[np.ix_(rows, cols)]


def box_region(box: Sequence[int] | None, height: int, width: int) -> np.ndarray | None:
    """(H, W) bool of a (top, left, bottom, right) box (a shapes marker), None for no box."""
    if box is None:
        return None
    region = np.zeros((height, width), bool)
    top, left, bottom, right = (int(v) for v in box)
    region[top:bottom, left:right] = True
    return region


# ------------------------------------------------------------------------------------------------ numbers
def average_ranks(values: np.ndarray) -> np.ndarray:
    """(N, P) ranks 1..P of each row, ties sharing their average rank (``scipy.stats.rankdata(axis=1)``, without
    importing scipy.stats, which costs a second)."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    positions = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    starts = np.ones(values.shape, bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(values.shape, bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, positions, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, positions, values.shape[1] - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(values.shape, np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=1)
    return ranks


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) Spearman rank correlation of each pair of maps (ties share their average rank); NaN where a map is
    constant (an all-zero map ranks nothing)."""
    rx = average_ranks(np.asarray(x).reshape(len(x), -1))
    ry = average_ranks(np.asarray(y).reshape(len(y), -1))
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(axis=1) / denominator
    return np.where(denominator > 0, np.clip(rho, -1.0, 1.0), np.nan)


def energy_share(cam: np.ndarray, region: np.ndarray | None) -> float:
    """The share of a map's total inside ``region`` (NaN without a region or for an all-zero map)."""
    total = float(np.sum(cam, dtype=np.float64))
    if region is None or total <= 0:
        return float("nan")
    return float(np.sum(cam[region], dtype=np.float64)) / total


@dataclass(frozen=True)
class PairNumbers:
    """The numbers of one image: NaN where they do not exist (no mask, no marker, a constant map)."""

    spearman: float
    energy_object: tuple[float, float]  # (A, B)
    energy_marker: tuple[float, float]
    object_area: float
    marker_area: float


def pair_numbers(map_a: np.ndarray, map_b: np.ndarray, object_region: np.ndarray | None,
                 marker_region: np.ndarray | None) -> PairNumbers:
    """The numbers of two (H, W) maps of one image in the same frame as the regions (compare_image and agreement
    both come here, so an image's numbers are the same on either panel)."""
    return PairNumbers(
        spearman=float(spearman_rows(map_a[None], map_b[None])[0]),
        energy_object=(energy_share(map_a, object_region), energy_share(map_b, object_region)),
        energy_marker=(energy_share(map_a, marker_region), energy_share(map_b, marker_region)),
        object_area=float("nan") if object_region is None else float(object_region.mean()),
        marker_area=float("nan") if marker_region is None else float(marker_region.mean()),
    )


# --------------------------------------------------------------------------------------------- the image
@dataclass(frozen=True)
class ImageSample:
    """The compared image: a test image of A's or B's set (``source``), or an upload (``source`` None)."""

    source: str | None
    workspace: str  # name of the workspace whose test set holds it ("" for an upload)
    index: int | None = None
    item_id: str = ""
    true_class: int | None = None  # in the source workspace's classes; None for an upload or an unlabelled image
    true_name: str | None = None
    upload_sha256: str | None = None
    file_name: str = ""

    def describe(self) -> str:
        if self.source is None:
            return f"uploaded image {self.file_name or self.upload_sha256[:12]}"
        return f"test image #{self.index} of {self.workspace}" + (f" ({self.true_name})" if self.true_name else "")


@dataclass(frozen=True)
class _Image:
    sample: ImageSample
    pil: Image.Image
    mask: np.ndarray | None
    marker_box: tuple[int, int, int, int] | None


def _test_image(ws: Any, source: str, index: int) -> _Image:
    test_set = ws.test_set
    if len(test_set) == 0:
        raise ValueError(f"test image {index}: workspace {ws.name!r} has no test images; pick the other "
                         "workspace's test set (image_from) or pass an uploaded image")
    if not 0 <= index < len(test_set):
        raise IndexError(f"test image {index} is out of range: the test set of {ws.name!r} has {len(test_set)} "
                         f"images (0 to {len(test_set) - 1})")
    label = int(test_set.label(index))
    marker = getattr(test_set, "marker_box", None)
    sample = ImageSample(source, ws.name, index, str(test_set.item_id(index)), label if label >= 0 else None,
                         ws.class_names[label] if label >= 0 else None)
    return _Image(sample, test_set.image(index).convert("RGB"), test_set.mask(index),
                  marker(index) if marker is not None else None)


def _png(pixels_or_image: Any) -> bytes:
    image = pixels_or_image if isinstance(pixels_or_image, Image.Image) else Image.fromarray(
        np.asarray(pixels_or_image, np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _resolve_image(ws_a: Any, ws_b: Any, image: Any, image_from: str | None, file_name: str) -> _Image:
    """A test index of A's or B's set, an uploaded file's bytes, or a PIL image."""
    if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
        source = image_from or default_image_source(ws_a, ws_b)
        if source not in SIDES:
            raise ValueError(f"image_from {source!r}: expected 'a' (A's test set) or 'b' (B's test set)")
        return _test_image(ws_a if source == "a" else ws_b, source, int(image))
    if isinstance(image, (bytes, bytearray)):
        from gradcam_core.images import load_image

        pil, sha = load_image(bytes(image), name=file_name or None), hashlib.sha256(bytes(image)).hexdigest()
    elif isinstance(image, Image.Image):
        pil = image.convert("RGB")
        sha = hashlib.sha256(_png(pil)).hexdigest()  # no file: the id of the image as a PNG
    else:
        raise TypeError(f"image must be a test index (int), an uploaded file's bytes or a PIL image, got "
                        f"{type(image).__name__}")
    return _Image(ImageSample(None, "", upload_sha256=sha, file_name=file_name), pil, None, None)


# ------------------------------------------------------------------------------------------- one model
@dataclass(frozen=True)
class ModelSide:
    """One model's view of the image: prediction, the explained class, its map (native and in the picture frame),
    and its numbers (NaN where they do not exist)."""

    workspace: str
    model_id: str
    class_names: tuple[str, ...]
    layer: str
    method: str
    target_mode: str  # "pred" | "true" | "class"
    target_class: int  # the class explained
    probabilities: np.ndarray  # (num_classes,) softmax
    cam: np.ndarray  # (h, w) in [0, 1] at the layer's resolution
    shown_map: np.ndarray  # (H, W) in [0, 1] in the picture frame (zero outside the model's crop)
    energy_object: float
    energy_marker: float

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def predicted_name(self) -> str:
        return self.class_names[self.predicted]

    @property
    def target_name(self) -> str:
        return self.class_names[self.target_class]

    def top5(self, k: int = 5) -> list[tuple[int, str, float]]:
        """(class index, name, probability), best first (ties in class order, as the explorer's chart)."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(int(c), self.class_names[c], float(self.probabilities[c])) for c in order]


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def default_engine(ws: Any) -> CamEngine:
    """An engine on the device the model already is on (never moves the caller's model)."""
    return CamEngine(ws.model, device=_model_device(ws.model))


def side_target(target: Any, ws: Any, which: str, true_name: str | None,
                compatibility: Compatibility) -> tuple[str, int | None]:
    """(mode, class or None for the predicted class) of one model for ``target``: "pred", "true" (the image's true
    class, by name in each model's classes) or a class index (only when both models have the same classes)."""
    label = f"model {which.upper()} ({ws.name})"
    if target is None or target == "pred":
        return "pred", None
    if target == "true":
        if true_name is None:
            raise ValueError("target 'true' needs a labelled test image, and this image has no true class; use "
                             "'pred' (each model's predicted class) or a class index")
        if true_name not in ws.class_names:
            raise ValueError(f"target 'true': {label} has no class {true_name!r} (the image's true class); use "
                             "'pred' (each model explains its own predicted class)")
        return "true", list(ws.class_names).index(true_name)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not compatibility.same_classes:
            raise ValueError(f"target class {target}: the two models have different classes, so a class index means "
                             "a different class to each; use 'pred' (each explains its own predicted class) or 'true'")
        if not 0 <= target < len(ws.class_names):
            raise ValueError(f"target class {target} is out of range: {label} has {len(ws.class_names)} classes "
                             f"(0 to {len(ws.class_names) - 1})")
        return "class", int(target)
    raise ValueError(f"target {target!r}: expected 'pred' (predicted class), 'true' (true class) or a class index")


def explain_batch(engine: CamEngine, ws: Any, which: str, images: torch.Tensor, layer: str, method: str,
                  targets: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits (N, C), explained classes (N,), maps (N, h, w)) from one engine call; an engine error names the
    model it came from."""
    try:
        result = engine.explain(images, layers=[layer], targets=targets, methods=(method,))
    except (ValueError, TypeError) as error:
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(f"model {which.upper()} ({ws.name}): {error}") from None
    return result.logits, np.asarray(result.targets), result.cams[method][layer]


# ------------------------------------------------------------------------------------------- one image
def _percent(value: float) -> str:
    return f"{value:.1%}" if value < 0.1 else f"{value:.0%}"


def _share_text(energy: float, area: float, where: str) -> str | None:
    if np.isnan(energy):
        return None
    return f"{_percent(energy)} of it on the {where} ({_percent(area)} of the image)"


@dataclass(frozen=True)
class ComparisonView:
    """Two models on one image, everything as arrays: ``image`` and both ``shown_map`` in one picture frame,
    ``difference`` = ``a.shown_map - b.shown_map`` in [-1, 1], and the image's numbers (``ModelSide`` has each
    model's energies; NaN where there is no mask, no marker or a constant map)."""

    a: ModelSide
    b: ModelSide
    sample: ImageSample
    method: str
    image: np.ndarray  # (H, W, 3) uint8
    difference: np.ndarray  # (H, W) float32
    spearman: float
    object_area: float
    marker_area: float
    compatibility: Compatibility

    def side(self, which: str) -> ModelSide:
        if which not in SIDES:
            raise ValueError(f"side {which!r}: expected 'a' or 'b'")
        return self.a if which == "a" else self.b

    def pictures(self, which: str, opacity: float = 0.5, colormap: str = "jet") -> tuple[np.ndarray, ...]:
        """(original, heatmap, overlay) uint8 RGB of one model, in the common frame (``gradcam_core.render``)."""
        shown = self.side(which).shown_map
        return self.image, colorize(shown, colormap), overlay(self.image, shown, float(opacity), colormap)

    def difference_picture(self, opacity: float = 0.75) -> np.ndarray:
        """The signed difference in blue-white-red (``DIFFERENCE_LUT``: red where A's map is higher) over a grey
        copy of the image; ``opacity`` 1 shows the difference alone."""
        index = np.rint((np.clip(self.difference, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
        grey = np.rint(self.image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
        return overlay(np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2), DIFFERENCE_LUT[index], float(opacity))

    def summary(self) -> list[str]:
        """The comparison in a few sentences, for the page's caption (and a finding's note)."""
        lines = []
        for which in SIDES:
            side = self.side(which)
            shares = [t for t in (_share_text(side.energy_object, self.object_area, "object"),
                                  _share_text(side.energy_marker, self.marker_area, "marker")) if t]
            about = f" ({side.target_mode} class {side.target_name})" if side.target_class != side.predicted else ""
            lines.append(f"{which.upper()} ({side.workspace}) predicts {side.predicted_name} "
                         f"({side.probabilities[side.predicted]:.0%}); its map{about}"
                         + (f" puts {' and '.join(shares)}." if shares else " has no mask to compare with."))
        rho = "undefined (a map is constant)" if np.isnan(self.spearman) else f"{self.spearman:.2f}"
        lines.append(f"Rank correlation of the two maps: {rho}.")
        return lines

    def finding_payload(self, opacity: float = 0.5, colormap: str = "jet", note: str = "", link: str = "",
                        workspace_keys: tuple[str, str] | None = None) -> dict[str, Any]:
        """The comparison as one ``kind: "compare"`` finding in the findings.json format (report/README.md), with
        the pictures shown here: ``report.pin_view(view.finding_payload(...), note=note)`` pins it.

        The first model is the one whose test set holds the image (A for an upload), since a finding's sample
        index refers to its first workspace's test set. ``workspace_keys``: how the dashboard names the two
        workspaces (bundled name or TOML path), default their names."""
        keys = dict(zip(SIDES, workspace_keys or (self.a.workspace, self.b.workspace), strict=True))
        first, second = ("b", "a") if self.sample.source == "b" else ("a", "b")
        sample = self.sample
        about = ({"upload_sha256": sample.upload_sha256, "file_name": sample.file_name} if sample.source is None
                 else {"index": sample.index, "item_id": sample.item_id, "true_class": sample.true_class})
        payload = self._side_payload(first, keys[first], opacity, colormap)
        payload.update(kind="compare", sample=about, method=self.method, opacity=float(opacity), colormap=colormap,
                       note=note, link=link, compare=self._side_payload(second, keys[second], opacity, colormap))
        return payload

    def _side_payload(self, which: str, key: str, opacity: float, colormap: str) -> dict[str, Any]:
        side = self.side(which)
        pictures = dict(zip(("original", "heatmap", "overlay"), self.pictures(which, opacity, colormap), strict=True))
        return {"workspace": key, "model_id": side.model_id, "layer": side.layer,
                "target": {"mode": side.target_mode, "class": side.target_class},
                "top5": [{"class": c, "label": name, "probability": p} for c, name, p in side.top5()],
                "pictures": {name: base64.b64encode(_png(pixels)).decode("ascii") for name, pixels in pictures.items()}}


def _regions(picked: _Image, frame: tuple[int, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(object mask, marker box) of an image in ``frame``."""
    width, height = picked.pil.size
    return (resize_region(picked.mask, frame),
            resize_region(box_region(picked.marker_box, height, width), frame))


def compare_image(ws_a: Any, ws_b: Any, image: int | bytes | Image.Image, layer_a: str | None = None,
                  layer_b: str | None = None, method: str = "gradcam", target: str | int = "pred",
                  engine_a: CamEngine | None = None, engine_b: CamEngine | None = None, *,
                  image_from: str | None = None, file_name: str = "") -> ComparisonView:
    """Both models on one image: a test index of A's or B's set (``image_from``, default
    ``default_image_source``), an uploaded file's bytes, or a PIL image.

    Each model explains ``target`` ("pred": its own prediction, "true": the image's true class found by name in
    its classes, or a class index when both have the same classes) at its ``layer`` (default its default layer)
    with one engine call. Pass the dashboard's cached engines (they hold the per-model lock)."""
    compatibility = check_compatible(ws_a, ws_b)
    picked = _resolve_image(ws_a, ws_b, image, image_from, file_name)
    width, height = picked.pil.size
    frames = (analysis_frame(width, height), display_frame(width, height))
    object_region, marker_region = _regions(picked, frames[0])
    explained = {}
    for which, ws, engine, layer in (("a", ws_a, engine_a, layer_a), ("b", ws_b, engine_b, layer_b)):
        mode, target_class = side_target(target, ws, which, picked.sample.true_name, compatibility)
        layer = layer or ws.default_layer
        logits, classes, cams = explain_batch(engine or default_engine(ws), ws, which, ws.transform(picked.pil)[None],
                                              layer, method, target_class)
        box = model_view_box(ws.transform, width, height)
        maps = [place_maps(cams, box, (width, height), frame)[0] for frame in frames]
        explained[which] = (ws, layer, mode, int(classes[0]), softmax(logits[0]), cams[0], *maps)
    numbers = pair_numbers(explained["a"][6], explained["b"][6], object_region, marker_region)
    sides = {}
    for position, which in enumerate(SIDES):
        ws, layer, mode, target_class, probabilities, cam, _, shown = explained[which]
        sides[which] = ModelSide(ws.name, ws.model_id, tuple(ws.class_names), layer, method, mode, target_class,
                                 probabilities, cam, shown, numbers.energy_object[position],
                                 numbers.energy_marker[position])
    shown_image = np.asarray(picked.pil.resize(frames[1][::-1], Image.NEAREST if frames[1][0] >= height
                                               else Image.BILINEAR))
    return ComparisonView(sides["a"], sides["b"], picked.sample, method, shown_image,
                          (sides["a"].shown_map - sides["b"].shown_map).astype(np.float32), numbers.spearman,
                          numbers.object_area, numbers.marker_area, compatibility)


# ------------------------------------------------------------------------------------------------ a sample
def sample_indices(size: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct indices of a set of ``size`` (all of them when it is smaller), sorted; the same for the same
    seed."""
    if n < 1:
        raise ValueError(f"n = {n}: the sample needs at least one image")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(size, size=min(n, size), replace=False)).astype(np.int64)


def same_split(ws_a: Any, ws_b: Any, indices: Sequence[int]) -> bool:
    """Whether both test sets hold the same scenes at ``indices``: same length, item ids and true class names."""
    set_a, set_b = ws_a.test_set, ws_b.test_set
    if len(set_a) != len(set_b) or len(set_a) == 0:
        return False

    def name(ws: Any, label: int) -> str | None:
        return ws.class_names[label] if label >= 0 else None

    return all(set_a.item_id(i) == set_b.item_id(i) and name(ws_a, set_a.label(i)) == name(ws_b, set_b.label(i))
               for i in indices)


def _nanmean(values: np.ndarray) -> float | None:
    values = np.asarray(values, np.float64)
    return None if not np.any(~np.isnan(values)) else float(np.nanmean(values))


@dataclass(frozen=True)
class Agreement:
    """Two models on a seeded sample of one test set (``source``: "a" or "b"), both models seeing each image and
    explaining their own predicted class. Per-image arrays (NaN where a number does not exist) and the
    aggregates as properties; ``note`` says where the images came from."""

    workspace_a: str
    workspace_b: str
    class_names_a: tuple[str, ...]
    class_names_b: tuple[str, ...]
    layer_a: str
    layer_b: str
    method: str
    source: str
    seed: int
    same_split: bool
    note: str
    compatibility: Compatibility
    indices: np.ndarray  # (N,) positions in the source test set
    item_ids: tuple[str, ...]
    labels: np.ndarray  # (N,) true class in the source workspace's classes, -1 = none
    true_names: tuple[str | None, ...]
    pred_a: np.ndarray  # (N,) predicted class of A (A's classes)
    pred_b: np.ndarray
    prob_a: np.ndarray  # (N,) softmax probability of that prediction
    prob_b: np.ndarray
    spearman: np.ndarray  # (N,) rank correlation of the two maps
    energy_object_a: np.ndarray  # (N,) share of A's map inside the object mask
    energy_object_b: np.ndarray
    energy_marker_a: np.ndarray  # (N,) share of A's map on the shortcut marker
    energy_marker_b: np.ndarray
    object_area: np.ndarray  # (N,) share of the image the object covers
    marker_area: np.ndarray
    seconds: float

    @property
    def n(self) -> int:
        return len(self.indices)

    @property
    def agree(self) -> np.ndarray:
        """(N,) bool: both models predict the same class (by name, so differently ordered class lists compare)."""
        names_a = np.asarray(self.class_names_a, dtype=object)[self.pred_a]
        names_b = np.asarray(self.class_names_b, dtype=object)[self.pred_b]
        return np.asarray(names_a == names_b, dtype=bool)

    @property
    def agreement_rate(self) -> float | None:
        """Share of images on which the predictions agree; None when the models share no class name."""
        return float(self.agree.mean()) if self.compatibility.shared_classes and self.n else None

    @property
    def spearman_mean(self) -> float | None:
        return _nanmean(self.spearman)

    @property
    def spearman_median(self) -> float | None:
        return None if np.all(np.isnan(self.spearman)) else float(np.nanmedian(self.spearman))

    @property
    def undefined_correlations(self) -> int:
        """Images where a map is constant (e.g. all zero), so no rank correlation exists."""
        return int(np.isnan(self.spearman).sum())

    @property
    def energy_object_mean(self) -> tuple[float | None, float | None]:
        """(A, B) mean share of the map inside the object, over the images with a mask (None: no masks)."""
        return _nanmean(self.energy_object_a), _nanmean(self.energy_object_b)

    @property
    def energy_marker_mean(self) -> tuple[float | None, float | None]:
        """(A, B) mean share of the map on the marker, over the images with one (None: no markers)."""
        return _nanmean(self.energy_marker_a), _nanmean(self.energy_marker_b)

    @property
    def accuracy(self) -> tuple[float | None, float | None]:
        """(A, B) share of the labelled sample images each model classifies right (by class name)."""
        labelled = self.labels >= 0
        if not labelled.any():
            return None, None
        truth = np.asarray(self.true_names, dtype=object)[labelled]
        return tuple(float(np.mean(np.asarray(names, dtype=object)[pred[labelled]] == truth))
                     for names, pred in ((self.class_names_a, self.pred_a), (self.class_names_b, self.pred_b)))

    def table(self) -> dict[str, list]:
        """One row per image, as columns (``pandas.DataFrame(agreement.table())``); NaN where a number does not
        exist."""
        names_a, names_b = self.class_names_a, self.class_names_b
        return {
            "index": self.indices.tolist(), "item_id": list(self.item_ids), "true": list(self.true_names),
            "pred_a": [names_a[p] for p in self.pred_a], "prob_a": self.prob_a.tolist(),
            "pred_b": [names_b[p] for p in self.pred_b], "prob_b": self.prob_b.tolist(),
            "agree": self.agree.tolist(), "spearman": self.spearman.tolist(),
            "energy_object_a": self.energy_object_a.tolist(), "energy_object_b": self.energy_object_b.tolist(),
            "energy_marker_a": self.energy_marker_a.tolist(), "energy_marker_b": self.energy_marker_b.tolist(),
            "object_area": self.object_area.tolist(), "marker_area": self.marker_area.tolist(),
        }

    def csv(self) -> str:
        """``table()`` as CSV text (empty cells where a number does not exist)."""
        columns = self.table()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in zip(*columns.values(), strict=True):
            writer.writerow("" if v is None or (isinstance(v, float) and np.isnan(v)) else
                            f"{v:.6g}" if isinstance(v, float) else v for v in row)
        return out.getvalue()

    def summary(self) -> list[str]:
        """The aggregates in a few sentences, for the page."""
        a, b = self.workspace_a, self.workspace_b
        rate = self.agreement_rate
        lines = [self.note, f"Predictions agree on {_percent(rate)} of the {self.n} images." if rate is not None
                 else "The models share no class, so their predictions cannot agree."]
        if self.spearman_mean is not None:
            lines.append(f"Rank correlation of the maps: mean {self.spearman_mean:.2f}, median "
                         f"{self.spearman_median:.2f}" + (f" ({self.undefined_correlations} images with a constant "
                                                          "map left out)." if self.undefined_correlations else "."))
        for label, (mean_a, mean_b), area in (("inside the object", self.energy_object_mean, self.object_area),
                                              ("on the marker", self.energy_marker_mean, self.marker_area)):
            if mean_a is not None:
                lines.append(f"Share of the map {label} ({_percent(_nanmean(area))} of the image on average): "
                             f"{a} {_percent(mean_a)}, {b} {_percent(mean_b)}.")
        return lines


@dataclass(frozen=True)
class _Row:
    prediction: tuple[int, int]
    probability: tuple[float, float]
    numbers: PairNumbers


def _agreement_batch(test_set: Any, batch: np.ndarray, workspaces: dict[str, Any], engines: dict[str, CamEngine],
                     layers: dict[str, str], method: str) -> list[_Row]:
    """One explain per model for the batch (each its predicted class), then each image's numbers."""
    images = [test_set.image(int(i)).convert("RGB") for i in batch]
    outputs = {}
    for which, ws in workspaces.items():
        tensors = torch.stack([ws.transform(image) for image in images])
        logits, _, cams = explain_batch(engines[which], ws, which, tensors, layers[which], method, None)
        outputs[which] = (softmax(logits, axis=1), cams)
    marker_box = getattr(test_set, "marker_box", None)
    rows = []
    for row, (index, image) in enumerate(zip(batch, images, strict=True)):
        width, height = image.size
        frame = analysis_frame(width, height)
        maps = [place_maps(outputs[w][1][row:row + 1], model_view_box(ws.transform, width, height),
                           (width, height), frame)[0] for w, ws in workspaces.items()]
        marker = box_region(marker_box(int(index)) if marker_box is not None else None, height, width)
        numbers = pair_numbers(*maps, resize_region(test_set.mask(int(index)), frame), resize_region(marker, frame))
        probabilities = [outputs[w][0][row] for w in SIDES]
        predicted = tuple(int(np.argmax(p)) for p in probabilities)
        rows.append(_Row(predicted, tuple(float(p[c]) for p, c in zip(probabilities, predicted, strict=True)),
                         numbers))
    return rows


def _sample_note(ws_source: Any, ws_other: Any, n: int, seed: int, shared: bool, with_marker: bool) -> str:
    images = f"{n} images (seed {seed}) of {ws_source.name}'s test set"
    marker = ", which carry the shortcut marker," if with_marker else ""
    if shared:
        return (f"Both test sets hold the same {len(ws_source.test_set)} scenes; the sample is {images}{marker} and "
                "both models see each image.")
    if len(ws_other.test_set) == 0:
        return f"{ws_other.name} has no test images; the sample is {images}{marker} and both models see each image."
    return (f"The two test sets differ, so the sample is {images} only{marker}; both models see each image "
            f"({ws_other.name}'s own test images are not used).")


def agreement(ws_a: Any, ws_b: Any, n: int = DEFAULT_SAMPLE, seed: int = 0, layer_a: str | None = None,
              layer_b: str | None = None, progress: ProgressFn | None = None, *, method: str = "gradcam",
              image_from: str | None = None, engine_a: CamEngine | None = None, engine_b: CamEngine | None = None,
              batch_size: int = DEFAULT_BATCH) -> Agreement:
    """Both models on ``n`` test images drawn with ``seed`` from one test set (``image_from``, default
    ``default_image_source``), each explaining its own prediction at its layer: one explain per batch per model.

    ``progress(fraction, message)`` is called after each batch (the convention of ``analysis.forward``). The
    shapes pair at the default ``n`` takes well under a second of CPU with one torch thread; ``seconds`` says how
    long it took."""
    started = time.perf_counter()
    compatibility = check_compatible(ws_a, ws_b)
    source = image_from or default_image_source(ws_a, ws_b)
    if source not in SIDES:
        raise ValueError(f"image_from {source!r}: expected 'a' (A's test set) or 'b' (B's test set)")
    test_set = (ws_a if source == "a" else ws_b).test_set
    if len(test_set) == 0:
        raise ValueError(f"neither {ws_a.name!r} nor {ws_b.name!r} has test images to sample; compare them on an "
                         "uploaded image (compare_image) or give one of them a [data] table")
    indices = sample_indices(len(test_set), n, seed)
    workspaces = {"a": ws_a, "b": ws_b}
    layers = {"a": layer_a or ws_a.default_layer, "b": layer_b or ws_b.default_layer}
    engine_a = engine_a or default_engine(ws_a)
    engines = {"a": engine_a, "b": engine_b or (engine_a if ws_b.model is ws_a.model else default_engine(ws_b))}
    rows: list[_Row] = []
    for start in range(0, len(indices), max(1, int(batch_size))):
        batch = indices[start:start + max(1, int(batch_size))]
        rows.extend(_agreement_batch(test_set, batch, workspaces, engines, layers, method))
        if progress is not None:
            progress(len(rows) / len(indices), f"{len(rows)} of {len(indices)} images")
    return _assemble(ws_a, ws_b, compatibility, layers, method, source, seed, indices, rows,
                     time.perf_counter() - started)


def _assemble(ws_a: Any, ws_b: Any, compatibility: Compatibility, layers: dict[str, str], method: str, source: str,
              seed: int, indices: np.ndarray, rows: list[_Row], seconds: float) -> Agreement:
    ws_source, ws_other = (ws_a, ws_b) if source == "a" else (ws_b, ws_a)
    test_set = ws_source.test_set
    labels = np.array([test_set.label(int(i)) for i in indices], np.int64)

    def column(pick: Callable[[_Row], Any], dtype: Any = np.float64) -> np.ndarray:
        return np.array([pick(r) for r in rows], dtype=dtype)

    numbers = [r.numbers for r in rows]
    with_marker = bool(np.any(~np.isnan([x.marker_area for x in numbers])))
    shared = same_split(ws_a, ws_b, indices)
    return Agreement(
        ws_a.name, ws_b.name, tuple(ws_a.class_names), tuple(ws_b.class_names), layers["a"], layers["b"], method,
        source, seed, shared, _sample_note(ws_source, ws_other, len(indices), seed, shared, with_marker),
        compatibility, indices, tuple(str(test_set.item_id(int(i))) for i in indices), labels,
        tuple(ws_source.class_names[c] if c >= 0 else None for c in labels),
        column(lambda r: r.prediction[0], np.int64), column(lambda r: r.prediction[1], np.int64),
        column(lambda r: r.probability[0]), column(lambda r: r.probability[1]),
        column(lambda r: r.numbers.spearman),
        column(lambda r: r.numbers.energy_object[0]), column(lambda r: r.numbers.energy_object[1]),
        column(lambda r: r.numbers.energy_marker[0]), column(lambda r: r.numbers.energy_marker[1]),
        column(lambda r: r.numbers.object_area), column(lambda r: r.numbers.marker_area), seconds)
