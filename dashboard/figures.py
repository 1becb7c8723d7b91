"""Pictures and charts built from arrays: no engine calls here, only numpy/PIL/plotly (milliseconds).

Plot builders take arrays and return images or figures (computing and plotting stay apart).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from gradcam_core import COLORMAPS, heatmap_image, overlay

# One definition for the pages and the report (which draws its pictures as the pages do):
from report.compute import DISPLAY_PIXELS as DISPLAY_PIXELS
from report.compute import display_factor as display_factor
from report.compute import enlarge as enlarge

CORRECT_RGB = (47, 158, 68)
WRONG_RGB = (224, 49, 49)
NEUTRAL_RGB = (134, 142, 150)


def heatmap_picture(cam: np.ndarray, size: tuple[int, int], colormap: str) -> np.ndarray:
    return heatmap_image(cam, size, colormap)


def overlay_picture(pixels: np.ndarray, cam: np.ndarray, opacity: float, colormap: str) -> np.ndarray:
    """The map bilinearly upsampled to ``pixels`` and blended over it."""
    return overlay(pixels, cam, float(opacity), colormap)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def thumbnail(image: Image.Image, correct: bool | None, size: int = 96, border: int = 4) -> np.ndarray:
    """A square-ish thumbnail framed green (correct), red (misclassified) or grey (unknown)."""
    image = image.convert("RGB")
    width, height = image.size
    inner = size - 2 * border
    if max(width, height) < inner:
        factor = max(1, inner // max(width, height))
        image = image.resize((width * factor, height * factor), Image.Resampling.NEAREST)
    else:
        image = image.copy()
        image.thumbnail((inner, inner), Image.Resampling.LANCZOS)
    colour = NEUTRAL_RGB if correct is None else (CORRECT_RGB if correct else WRONG_RGB)
    framed = Image.new("RGB", (image.width + 2 * border, image.height + 2 * border), colour)
    framed.paste(image, (border, border))
    return np.asarray(framed)


def colorbar_html(colormap: str) -> str:
    """A horizontal colour scale for a heatmap in [0, 1], as HTML (crisp at any width, text stays readable)."""
    lut = COLORMAPS[colormap]
    stops = ", ".join(f"rgb{tuple(int(v) for v in lut[i])} {i / 255:.0%}" for i in range(0, 256, 17))
    return (
        '<div style="font-size:0.78rem;color:#495057;margin-top:-0.4rem">'
        f'<div style="height:12px;border-radius:3px;background:linear-gradient(to right, {stops});"></div>'
        '<div style="display:flex;justify-content:space-between">'
        "<span>0</span><span>relevance, scaled to [0, 1] per map</span><span>1</span></div></div>"
    )


def topk_figure(
    probabilities: np.ndarray,
    class_names: Sequence[str],
    true_label: int | None,
    target: int | None = None,
    k: int = 5,
) -> go.Figure:
    """Horizontal bars of the k most probable classes, best on top; the true class is marked (and added with
    its rank when it is not among them)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-probabilities, kind="stable")
    shown = [int(c) for c in order[: min(k, len(order))]]
    rank = {int(c): r + 1 for r, c in enumerate(order)}
    if true_label is not None and int(true_label) not in shown:
        shown.append(int(true_label))
    labels, colours, texts = [], [], []
    for c in shown:
        name = str(class_names[c])
        tags = []
        if c == true_label:
            tags.append("true" if rank[c] <= k else f"true, rank {rank[c]}")
        if c == target:
            tags.append("explained")
        labels.append(f"{name}  ({', '.join(tags)})" if tags else name)
        if true_label is None:
            colours.append("#d9480f" if rank[c] == 1 else "#adb5bd")
        elif c == true_label:
            colours.append(f"rgb{CORRECT_RGB}")
        else:
            colours.append(f"rgb{WRONG_RGB}" if rank[c] == 1 else "#adb5bd")
        texts.append(f"{probabilities[c]:.1%}")
    figure = go.Figure(go.Bar(
        x=[probabilities[c] for c in shown], y=labels, orientation="h", marker_color=colours, text=texts,
        textposition="outside", cliponaxis=False, hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    ))
    figure.update_layout(
        height=70 + 34 * len(shown), margin={"l": 8, "r": 48, "t": 36, "b": 8},
        title={"text": f"Top-{min(k, len(order))} predictions", "font": {"size": 15}},
        xaxis={"range": [0, 1.0], "tickformat": ".0%", "fixedrange": True, "title": None},
        # "category": class names such as "3" must not become a numeric axis (digits)
        yaxis={"type": "category", "autorange": "reversed", "fixedrange": True, "automargin": True,
               "tickfont": {"size": 13}},
        font={"size": 13},
        showlegend=False, bargap=0.35,
    )
    return figure


def view_json(payload: dict) -> bytes:
    return json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8")
