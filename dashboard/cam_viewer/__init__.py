"""The explorer's CAM viewer: a Streamlit components-v2 element that draws original / heatmap / overlay on canvases.

It gets the sample's image and every layer's map for one method and target in one payload (maps as uint8 at the
layer's own resolution, the image as PNG, packed as bytes with a JSON header: ``pack``), so layer, opacity and
colormap change in the browser without a rerun. The browser reports its view back debounced; a change of Method is
reported at once, because other maps need the server.

    view = cam_viewer(image=pixels, maps=maps, layer=..., opacity=..., colormap=..., luts=COLORMAPS,
                      sample=index, method=method, methods=METHOD_TITLES, key="explorer.viewer",
                      on_change=apply_view)

How the view flows. The values the page passes (layer, opacity, colormap, method) are what the server wants; the
browser keeps what the user picked unless the page passes a value that is new both to the page (it differs from
what the page passed last run) and to the viewer (it differs from what the viewer last reported). So a page that
echoes the reported view back never moves the user's view, and a page that sets a layer itself (a layer-strip
click, a shared link) does. ``on_change(view)`` runs in the callback phase, before the page script reruns, so the
page can store the view (and compute the maps of a new method) in the same run. The return value is the view the
viewer shows (or is about to show).

What a report costs. A report reruns the page (or its fragment), and Streamlit sends every element again, except
that a large element (10 KB and more) whose message is byte for byte one the browser holds goes as a reference to
it. So the element's data carries the view only as the server last set it (a new revision), never the reports:
the data, payload included, stays the same across the reruns reports cause, and they resend no picture. The
browser keeps the user's view per viewer slot (``data.view.slot``) in the module, so it survives a remount (a visit
to another page) as well.

DOM contract (shared/DESIGN.md): one ``[data-testid="cam-viewer"]`` whose ``data-sample``, ``data-layer``,
``data-method``, ``data-opacity``, ``data-colormap`` (and ``data-target``) are set after the picture is drawn;
controls with the accessible names Layer, Method, Opacity and Colormap.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from dashboard.cam_viewer.pictures import quantise
from dashboard.figures import display_factor

COMPONENT_NAME = "gradcam_cam_viewer"
REPORT_DEBOUNCE_MS = 250
FIELDS = ("layer", "opacity", "colormap", "method")
_ASSETS = Path(__file__).resolve().parent
_mount = st.components.v2.component(
    COMPONENT_NAME,
    html=(_ASSETS / "viewer.html").read_text(encoding="utf-8"),
    css=(_ASSETS / "viewer.css").read_text(encoding="utf-8"),
    js=(_ASSETS / "viewer.js").read_text(encoding="utf-8"),
)


@dataclass(frozen=True)
class ViewerState:
    """What the viewer shows: the layer, opacity and colormap the user picked there, and the method asked for
    (which may not be drawn yet: its maps come from the server)."""

    layer: str
    opacity: float
    colormap: str
    method: str


def cam_viewer(
    *,
    image: np.ndarray,
    maps: Mapping[str, np.ndarray],
    layer: str,
    opacity: float,
    colormap: str,
    luts: Mapping[str, np.ndarray],
    sample: str | int,
    method: str,
    key: str,
    sample_label: str | None = None,
    methods: Mapping[str, str] | None = None,
    target: str | None = None,
    layer_labels: Mapping[str, str] | None = None,
    scale: int | None = None,
    on_change: Callable[[ViewerState], None] | None = None,
    report_delay_ms: int = REPORT_DEBOUNCE_MS,
    method_help: str = "",
) -> ViewerState:
    """Draw the viewer for one sample, method and target; returns the view it shows.

    image: (H, W, 3) uint8, as the model sees it. maps: layer -> (h, w) map in [0, 1] at the layer's own
    resolution, for ``method`` and the target; every layer the Layer control should offer. luts: colormap name ->
    (256, 3) uint8 table (``gradcam_core.COLORMAPS``). sample_label: how the captions name the sample (default
    "test image #<sample>" for an int, else the sample itself). methods: method name -> title for the Method
    control (the control is read-only without it). target: the explained class, for the caption and ``data-target``.
    layer_labels: layer -> option text (default "name · h×w"). scale: integer enlargement of the picture (default:
    the explorer's ``figures.display_factor``). on_change(view): called before the rerun a browser report causes.
    report_delay_ms: how long the view must rest before the browser reports it (each report is a rerun).
    method_help: the Method control's tooltip.
    """
    image, luts, layer_maps = _checked_image(image), _checked_luts(luts), _checked_maps(maps)
    methods = dict(methods) if methods else {method: method}
    wanted = {"layer": layer, "opacity": round(float(opacity), 2), "colormap": colormap, "method": method}
    _check_view(wanted, layer_maps, luts, methods)
    scale = display_factor(*image.shape[:2]) if scale is None else int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    slot = _settle_view(key, wanted, {"layer": layer_maps, "colormap": luts, "method": methods})
    header = {
        "sample": str(sample),
        "sample_label": sample_label or (f"test image #{sample}" if isinstance(sample, int) else str(sample)),
        "method": method,
        "method_title": methods[method],
        "methods": [[name, title] for name, title in methods.items()],
        "method_help": method_help,
        "target": target,
        "view": published_view(slot),
        "debounce_ms": int(report_delay_ms),
    }
    payload = encode_payload(image, layer_maps, scale, dict(layer_labels or {}))
    data = viewer_message(header, payload, encode_luts(luts))
    _mount(key=key, data=data, on_view_change=lambda: _on_report(key, on_change))
    return ViewerState(**slot["view"])


# ------------------------------------------------------------------------------------------------- view state
def _slot_key(key: str) -> str:
    return f"_cam_viewer.{key}"


def _settle_view(key: str, wanted: dict, choices: Mapping[str, Mapping]) -> dict:
    slot = settle_view(st.session_state.get(_slot_key(key)), wanted, choices)
    st.session_state[_slot_key(key)] = slot
    return slot


def settle_view(slot: dict | None, wanted: dict, choices: Mapping[str, Mapping]) -> dict:
    """This run's slot: the view to show, and the fields the server overrides (under a new revision).

    ``wanted`` is what the page passes; ``slot`` the last run's (None on the first). A field is overridden when
    the page passes a value that differs from what it passed last run and from the view (which holds the
    browser's reports), or when the view's value is no longer among ``choices``. ``published`` is the view as of
    the last override: what the browser is sent (reports do not change it, so the element's data stays the same).
    """
    if slot is None:
        view, revision, fields, published = dict(wanted), 1, list(FIELDS), dict(wanted)
        slot_id = secrets.token_hex(8)
    else:
        view, revision, fields, published = dict(slot["view"]), slot["revision"], slot["fields"], slot["published"]
        slot_id = slot["id"]
        changed = [f for f in FIELDS if wanted[f] != slot["wanted"][f] and wanted[f] != view[f]]
        # A value the viewer cannot show any more (another model's layer) gives way to the page's.
        changed += [f for f in ("layer", "colormap", "method") if f not in changed and view[f] not in choices[f]]
        if changed:
            view.update({f: wanted[f] for f in changed})
            revision, fields, published = revision + 1, changed, dict(view)
    return {"view": view, "wanted": dict(wanted), "revision": revision, "fields": fields, "published": published,
            "id": slot_id, "choices": {name: list(values) for name, values in choices.items()}}


def published_view(slot: dict) -> dict:
    """What the browser is told about the view: the last override, its revision and fields, and the slot's id."""
    return {**slot["published"], "revision": slot["revision"], "fields": slot["fields"], "slot": slot["id"]}


def apply_report(slot: dict, reported: object) -> dict:
    """The view after a browser report: its layer, colormap, method and opacity where the viewer could offer them
    (anything else in the report is ignored)."""
    view = dict(slot["view"])
    if not isinstance(reported, dict):
        return view
    for field in ("layer", "colormap", "method"):
        if reported.get(field) in slot["choices"][field]:
            view[field] = reported[field]
    opacity = reported.get("opacity")
    if isinstance(opacity, int | float) and not isinstance(opacity, bool) and 0.0 <= opacity <= 1.0:
        view["opacity"] = round(float(opacity), 2)
    return view


def _on_report(key: str, on_change: Callable[[ViewerState], None] | None) -> None:
    """Callback of a browser report (runs before the rerun it causes): the report becomes the view."""
    state = st.session_state
    slot = state.get(_slot_key(key))
    if slot is None:
        return
    slot["view"] = apply_report(slot, (state.get(key) or {}).get("view"))
    if on_change is not None:
        on_change(ViewerState(**slot["view"]))


def viewer_state(key: str) -> ViewerState | None:
    """The view the viewer under ``key`` last showed or reported in this session (None before its first run)."""
    slot = st.session_state.get(_slot_key(key))
    return None if slot is None else ViewerState(**slot["view"])


# ------------------------------------------------------------------------------------------------ payload
DATA_VERSION = 2


def encode_payload(image: np.ndarray, maps: Mapping[str, np.ndarray], scale: int,
                   layer_labels: Mapping[str, str] | None = None) -> dict:
    """The picture's data for the browser: the image as PNG bytes and all maps as one uint8 buffer, with the
    layer list; cached by content, so the reruns a report causes do not encode the same picture again."""
    labels = layer_labels or {}
    layers, chunks, offset = [], [], 0
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.shape}|{scale}".encode())
    digest.update(np.ascontiguousarray(image).data)
    for name, cam in maps.items():
        values = quantise(cam)
        h, w = values.shape
        label = labels.get(name, f"{name} · {h}×{w}")
        layers.append([name, label, h, w, offset])
        chunks.append(values.tobytes())
        offset += values.size
        digest.update(json.dumps([name, label, h, w]).encode())
        digest.update(chunks[-1])
    return _encoded(digest.hexdigest(), image, layers, b"".join(chunks), scale)


@st.cache_data(max_entries=32, show_spinner=False)
def _encoded(content_id: str, _image: np.ndarray, _layers: list, _maps: bytes, scale: int) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(_image).save(buffer, format="PNG", compress_level=6)
    height, width = _image.shape[:2]
    return {"id": content_id, "height": height, "width": width, "scale": scale, "layers": _layers,
            "image_png": buffer.getvalue(), "maps": _maps}


def encode_luts(luts: Mapping[str, np.ndarray]) -> dict:
    """The colormaps as one buffer: 768 bytes (256 RGB entries) per name, in ``names`` order."""
    tables = b"".join(np.ascontiguousarray(lut, dtype=np.uint8).tobytes() for lut in luts.values())
    content_id = hashlib.blake2b(json.dumps(list(luts)).encode() + tables, digest_size=8).hexdigest()
    return {"id": content_id, "names": list(luts), "luts": tables}


def pack(header: dict, blobs: Mapping[str, bytes]) -> bytes:
    """One binary message for the browser: a little-endian uint32 length, a UTF-8 JSON header (with
    ``blobs``: name -> [offset, length] after the header), then the blobs. Bytes rather than JSON: no base64, and
    Streamlit forwards bytes as they are (a dict would be probed for dataframes, which imports pandas)."""
    spans, offset = {}, 0
    for name, blob in blobs.items():
        spans[name] = [offset, len(blob)]
        offset += len(blob)
    text = json.dumps({**header, "blobs": spans}, ensure_ascii=False).encode("utf-8")
    return b"".join([len(text).to_bytes(4, "little"), text, *blobs.values()])


def unpack(data: bytes) -> tuple[dict, dict[str, bytes]]:
    """``pack``'s inverse: (header, name -> blob)."""
    size = int.from_bytes(data[:4], "little")
    header = json.loads(data[4:4 + size].decode("utf-8"))
    body = data[4 + size:]
    return header, {name: body[start:start + length] for name, (start, length) in header["blobs"].items()}


def viewer_message(header: dict, payload: dict, colormaps: dict) -> bytes:
    """The element's data: ``header`` (sample, method, view…) with the payload's and colormaps' descriptions, and
    their bytes as blobs."""
    described = {**header, "version": DATA_VERSION,
                 "payload": {k: v for k, v in payload.items() if k not in ("image_png", "maps")},
                 "colormaps": {"id": colormaps["id"], "names": colormaps["names"]}}
    return pack(described, {"image_png": payload["image_png"], "maps": payload["maps"], "luts": colormaps["luts"]})


def payload_bytes(image: np.ndarray, maps: Mapping[str, np.ndarray], luts: Mapping[str, np.ndarray],
                  scale: int = 1) -> dict[str, int]:
    """Sizes in bytes of what one viewer run sends the browser: the whole data and its parts."""
    payload = encode_payload(_checked_image(image), _checked_maps(maps), scale)
    colormaps = encode_luts(_checked_luts(luts))
    return {"image_png": len(payload["image_png"]), "maps": len(payload["maps"]),
            "layers": len(json.dumps(payload["layers"])), "colormaps": len(colormaps["luts"]),
            "total": len(viewer_message({}, payload, colormaps))}


# ------------------------------------------------------------------------------------------------ checks
def _checked_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}; "
                         "gradcam_core.denormalise turns a model input into one")
    return np.ascontiguousarray(image)


def _checked_maps(maps: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not maps:
        raise ValueError("maps is empty: pass every layer's (h, w) map for the method and target shown")
    checked = {}
    for name, cam in maps.items():
        cam = np.asarray(cam)
        if cam.ndim != 2 or 0 in cam.shape:
            raise ValueError(f"the map of layer {name!r} must be (h, w), got shape {cam.shape}; "
                             "take one image's map from res.cams[method][layer][i]")
        checked[str(name)] = cam
    return checked


def _checked_luts(luts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not luts:
        raise ValueError("luts is empty: pass gradcam_core.COLORMAPS (name -> (256, 3) uint8)")
    checked = {}
    for name, lut in luts.items():
        lut = np.asarray(lut)
        if lut.shape != (256, 3) or lut.dtype != np.uint8:
            raise ValueError(f"colormap {name!r} must be a (256, 3) uint8 table, got {lut.dtype} {lut.shape}")
        checked[str(name)] = lut
    return checked


def _check_view(view: dict, layers: Mapping, luts: Mapping, methods: Mapping) -> None:
    _check_choice("layer", view["layer"], layers)
    _check_choice("colormap", view["colormap"], luts)
    _check_choice("method", view["method"], methods)
    if not 0.0 <= view["opacity"] <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {view['opacity']}; 0 shows the image, 1 the heatmap")


def _check_choice(what: str, value: str, choices: Mapping[str, object]) -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), list(choices), n=3)
        known = ", ".join(list(choices)[:8])
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"choose from {known}"
        raise ValueError(f"{what} {value!r} is not among the viewer's {what}s; {hint}")


__all__ = ["REPORT_DEBOUNCE_MS", "ViewerState", "apply_report", "cam_viewer", "encode_payload", "pack",
           "payload_bytes", "published_view", "quantise", "settle_view", "unpack", "viewer_state"]
