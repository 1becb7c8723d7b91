"""The t-SNE page's pieces: the scatter figure and reading a clicked point from a plotly selection.

Figures are built from arrays (no engine calls here).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

COLOR_MODES = {"true": "True class", "pred": "Predicted class", "outcome": "Correct / misclassified"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
           "#756bb1", "#636363"]
CORRECT_COLOR, WRONG_COLOR = "#2f9e44", "#e03131"


def scatter_figure(xy: np.ndarray, indices: np.ndarray, labels: np.ndarray, predicted: np.ndarray,
                   confidence: np.ndarray, class_names: Sequence[str], color_by: str,
                   highlight: int | None = None) -> go.Figure:
    """One trace per colour group (a clickable legend); misclassified points are crosses in every mode.

    Every point carries its test index as ``customdata[0]``, which ``selected_index`` reads back.
    """
    xy = np.asarray(xy)
    correct = labels == predicted
    names = np.asarray(list(class_names), dtype=object)
    hover = [f"#{i} · true <b>{names[t]}</b><br>predicted <b>{names[p]}</b> ({c:.1%})"
             + ("" if t == p else "<br><b>misclassified</b>")
             for i, t, p, c in zip(indices, labels, predicted, confidence, strict=True)]
    hover = np.asarray(hover, dtype=object)
    if color_by == "outcome":
        groups = [("correct", correct, CORRECT_COLOR), ("misclassified", ~correct, WRONG_COLOR)]
    else:
        key = labels if color_by == "true" else predicted
        groups = [(str(names[k]), key == k, PALETTE[k % len(PALETTE)]) for k in range(len(names)) if (key == k).any()]
    figure = go.Figure()
    for name, mask, colour in groups:
        # Correct points first: the legend shows the first point's symbol, and the crosses are drawn on top.
        members = np.flatnonzero(mask)
        members = members[np.argsort(~correct[members], kind="stable")]
        figure.add_trace(go.Scatter(
            x=xy[members, 0], y=xy[members, 1], mode="markers", name=name,
            marker={"color": colour, "size": np.where(correct[members], 6, 10),
                    "symbol": np.where(correct[members], "circle", "x"), "line": {"width": 0}, "opacity": 0.8},
            customdata=np.asarray(indices)[members][:, None], hovertext=hover[members], hoverinfo="text",
        ))
    if highlight is not None and highlight in set(int(i) for i in indices):
        at = int(np.flatnonzero(np.asarray(indices) == highlight)[0])
        figure.add_trace(go.Scatter(x=[xy[at, 0]], y=[xy[at, 1]], mode="markers", name=f"#{highlight}",
                                    marker={"size": 18, "color": "rgba(0,0,0,0)", "line": {"width": 2.5,
                                                                                           "color": "black"}},
                                    customdata=[[highlight]], hoverinfo="skip"))
    figure.update_layout(
        height=620, margin={"l": 10, "r": 10, "t": 30, "b": 10}, clickmode="event+select", dragmode="pan",
        legend={"title": {"text": COLOR_MODES[color_by]}, "itemsizing": "constant"},
        xaxis={"showticklabels": False, "title": None, "zeroline": False},
        yaxis={"showticklabels": False, "title": None, "zeroline": False, "scaleanchor": "x"},
        title={"text": "t-SNE of penultimate features · ✕ = misclassified · click a point to pick it",
               "font": {"size": 14}},
    )
    return figure


def selected_index(event) -> int | None:
    """The test index of the first clicked/selected point of a ``st.plotly_chart(on_select="rerun")`` event."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points or []:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)) and data:
            data = data[0]
        try:
            return int(data)
        except (TypeError, ValueError):
            continue
    return None
