"""The report as ONE self-contained HTML file: pictures inline as ``data:`` URIs, styles inline, no script, no web
font, no link that loads anything. A Content-Security-Policy in the page itself forbids every request but
``data:`` images, so even a mistake here cannot make the file reach the network. Light colours throughout and
print CSS (a page per finding, colours kept), so "Print → Save as PDF" gives a clean document.

Pure string building over ``report.findings`` records and numpy counts (no torch): every text that comes from a
user, a workspace file or a model (title, note, class and layer names, file names) goes through ``_e``.
"""

from __future__ import annotations

import base64
import html
import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from report.findings import ComparedModel, Finding, Pictures, TopClass

#: A confusion table with more classes than this is unreadable: the report lists the most frequent confusions.
MAX_CONFUSION_TABLE = 30
MOST_CONFUSED = 15
MAX_LISTED_CLASSES = 60
_CORRECT, _WRONG = (47, 158, 68), (224, 49, 49)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class ModelCard:
    """What the report says about the model (built from a ``models.Workspace`` by ``report.build``)."""

    workspace: str
    title: str
    description: str
    model_id: str
    source: str
    class_names: tuple[str, ...]
    test_images: int
    recorded_accuracy: float | None = None
    confusion: np.ndarray | None = None  # (C, C) counts, rows true, columns predicted
    predictions_from: str = ""
    checkpoint_date: str = ""
    warning: str = ""

    @property
    def measured_accuracy(self) -> float | None:
        if self.confusion is None or self.confusion.sum() == 0:
            return None
        return float(np.trace(self.confusion) / self.confusion.sum())


STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #212529; background: #fff; max-width: 980px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 0 0 8px; }
h3 { font-size: 15px; margin: 12px 0 6px; }
.muted, figcaption, caption { color: #5c636a; font-size: 12px; } caption { text-align: left; }
section { margin: 0 0 28px; }
table { border-collapse: collapse; }
.card th { text-align: left; padding: 3px 14px 3px 0; vertical-align: top; white-space: nowrap; }
.card td { padding: 3px 0; }
.warning { border-left: 4px solid #e8590c; background: #fff4e6; padding: 6px 10px; margin: 8px 0; }
.confusion td, .confusion th { border: 1px solid #dee2e6; padding: 2px 6px; text-align: center; font-size: 12px; }
.confusion th { background: #f8f9fa; font-weight: 600; }
.confusion th.true { text-align: right; }
.finding { border-top: 2px solid #dee2e6; padding-top: 12px; }
.pictures { display: grid; grid-template-columns: repeat(3, 1fr); gap: 10px; margin: 6px 0; }
figure { margin: 0; } figure img { width: 100%; height: auto; display: block; border: 1px solid #dee2e6;
                                   image-rendering: pixelated; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0; }
.facts dt { font-weight: 600; } .facts dd { margin: 0; }
.top5 td, .top5 th { padding: 1px 6px 1px 0; font-size: 13px; }
.top5 th { text-align: left; font-weight: normal; white-space: nowrap; }
.top5 .bar { width: 180px; } .top5 .bar span { display: block; height: 12px; background: #adb5bd; }
.top5 tr.true .bar span { background: rgb(47, 158, 68); } .top5 tr.wrong .bar span { background: rgb(224, 49, 49); }
.top5 .p { text-align: right; font-variant-numeric: tabular-nums; }
.note { white-space: pre-wrap; background: #f8f9fa; border-left: 4px solid #4263eb; padding: 6px 10px; margin: 8px 0; }
.side { margin: 8px 0; }
.details { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; }
code { font-size: 12px; word-break: break-all; }
footer { color: #5c636a; font-size: 12px; border-top: 1px solid #dee2e6; padding-top: 6px; }
@page { size: A4; margin: 14mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 12px; }
  .finding { break-before: page; border-top: none; }
  .pictures, .details, .note, figure, tr { break-inside: avoid; }
}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


# ---------------------------------------------------------------------------------------------- pieces
def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _img(data: bytes, alt: str) -> str:
    width, height = png_size(data)
    return (f'<img src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}" alt="{_e(alt)}" '
            f'width="{width}" height="{height}">')


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _class_list(names: Sequence[str]) -> str:
    shown = ", ".join(_e(n) for n in names[:MAX_LISTED_CLASSES])
    more = f", … and {len(names) - MAX_LISTED_CLASSES} more" if len(names) > MAX_LISTED_CLASSES else ""
    return f"{len(names)}: {shown}{more}"


def _accuracy_text(card: ModelCard) -> str:
    measured = card.measured_accuracy
    counted = int(card.confusion.sum()) if card.confusion is not None else 0
    measured_text = (f"{_percent(measured)} of the {counted} labelled test images (from {_e(card.predictions_from)};"
                     " the confusion matrix below)")
    if card.recorded_accuracy is None:
        return measured_text if measured is not None else "n/a (the test images have no labels)"
    recorded = f"{_percent(card.recorded_accuracy)} (recorded with the checkpoint)"
    if measured is None or abs(measured - card.recorded_accuracy) < 5e-4:
        return recorded
    return f"{recorded}; {measured_text}"


def model_card_html(card: ModelCard) -> str:
    rows = [("Workspace", f"{_e(card.title)} <span class='muted'>({_e(card.workspace)})</span>"),
            ("Model id", f"<code>{_e(card.model_id)}</code>"), ("Source", _e(card.source)),
            ("Classes", _class_list(card.class_names)), ("Test images", str(card.test_images)),
            ("Test accuracy", _accuracy_text(card))]
    if card.checkpoint_date:
        rows.append(("Checkpoint date", _e(card.checkpoint_date)))
    body = "".join(f"<tr><th scope='row'>{name}</th><td>{value}</td></tr>" for name, value in rows)
    warning = f"<p class='warning'>⚠ {_e(card.warning)}</p>" if card.warning else ""
    description = f"<p>{_e(card.description)}</p>" if card.description else ""
    return f"<section class='model'><h2>Model</h2>{warning}{description}<table class='card'>{body}</table></section>"


def _cell_colour(fraction: float, diagonal: bool) -> str:
    base = np.array(_CORRECT if diagonal else _WRONG, dtype=np.float64)
    rgb = np.rint(255 * (1 - fraction) + base * fraction).astype(int)
    text = "#fff" if fraction > 0.55 else "#212529"
    return f"background: rgb({rgb[0]}, {rgb[1]}, {rgb[2]}); color: {text}"


def _confusion_table(confusion: np.ndarray, names: Sequence[str]) -> str:
    rows_total = confusion.sum(axis=1)
    head = "".join(f"<th scope='col'>{_e(n)}</th>" for n in names)
    rows = []
    for true, name in enumerate(names):
        cells = []
        for pred in range(len(names)):
            count = int(confusion[true, pred])
            fraction = count / rows_total[true] if rows_total[true] else 0.0
            cells.append(f"<td style='{_cell_colour(fraction, true == pred)}' "
                         f"title='true {_e(name)}, predicted {_e(names[pred])}: {count}'>{count}</td>")
        rows.append(f"<tr><th scope='row' class='true'>{_e(name)}</th>{''.join(cells)}</tr>")
    return (f"<table class='confusion'><caption>Rows: true class · columns: predicted class · colour: share of "
            f"the row (green correct, red wrong)</caption><tr><th></th>{head}</tr>{''.join(rows)}</table>")


def _most_confused(confusion: np.ndarray, names: Sequence[str]) -> str:
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:MOST_CONFUSED]
    rows = "".join(
        f"<tr><td>{_e(names[t])}</td><td>{_e(names[p])}</td><td>{int(off[t, p])}</td></tr>"
        for t, p in zip(*np.unravel_index(order, off.shape), strict=True) if off[t, p] > 0)
    return (f"<table class='confusion'><caption>{len(names)} classes: the {MOST_CONFUSED} most frequent confusions"
            f"</caption><tr><th>true</th><th>predicted</th><th>images</th></tr>{rows}</table>")


def confusion_html(card: ModelCard) -> str:
    if card.confusion is None:
        return ""
    names = card.class_names
    table = (_confusion_table(card.confusion, names) if len(names) <= MAX_CONFUSION_TABLE
             else _most_confused(card.confusion, names))
    return f"<section class='confusion-matrix'><h2>Confusion matrix</h2>{table}</section>"


# ---------------------------------------------------------------------------------------------- findings
def _top5_html(top5: Sequence[TopClass], true_class: int | None, target: int | None) -> str:
    if not top5:
        return "<p class='muted'>Top-5 not recorded.</p>"
    rows = []
    for rank, top in enumerate(top5):
        kind = "true" if top.index == true_class else ("wrong" if rank == 0 and true_class is not None else "")
        tags = [t for t, on in (("true", top.index == true_class), ("explained", top.index == target)) if on]
        label = _e(top.name) + (f" <span class='muted'>({', '.join(tags)})</span>" if tags else "")
        rows.append(f"<tr class='{kind}'><th scope='row'>{label}</th><td class='bar'><span style='width: "
                    f"{100 * top.probability:.1f}%'></span></td><td class='p'>{top.probability:.1%}</td></tr>")
    return f"<table class='top5'><caption>Top-{len(top5)} predictions</caption>{''.join(rows)}</table>"


def _pictures_html(pictures: Pictures | None, what: str, opacity: float, colormap: str) -> str:
    if pictures is None:
        return "<p class='muted'>Pictures not recorded.</p>"
    captions = {"original": "Original, as the model sees it", "heatmap": f"Heatmap ({colormap})",
                "overlay": f"Overlay, opacity {opacity:.2f}"}
    figures = "".join(f"<figure>{_img(data, f'{name} of {what}')}<figcaption>{_e(captions[name])}</figcaption>"
                      "</figure>" for name, data in pictures.items())
    return f"<div class='pictures'>{figures}</div>"


def _class_name(index: int | None, names: Sequence[str], top5: Sequence[TopClass]) -> str:
    if index is None:
        return "?"
    if index < len(names):
        return names[index]
    return next((t.name for t in top5 if t.index == index), f"class {index}")


@dataclass(frozen=True)
class _Methods:
    titles: Mapping[str, str]  # method name -> title shown ("gradcam" -> "Grad-CAM")
    class_free: Collection[str]  # methods whose map does not depend on the target class (Eigen-CAM)


def _target_text(mode: str, index: int | None, names: Sequence[str], top5: Sequence[TopClass]) -> str:
    name = _e(_class_name(index, names, top5))
    text = {"pred": f"the predicted class, {name}", "true": f"the true class, {name}"}.get(mode, f"class {name}")
    return text + (f" ({index})" if index is not None else "")


def _facts(pairs: Sequence[tuple[str, str]]) -> str:
    return "<dl class='facts'>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _verdict(finding: Finding, names: Sequence[str]) -> str:
    true = finding.sample.true_class
    if true is None or not finding.top5:
        return ""
    predicted = finding.top5[0]
    if predicted.index == true:
        return f" · true {_e(_class_name(true, names, ()))} · <b style='color: rgb{_CORRECT}'>✓ correct</b>"
    return (f" · true {_e(_class_name(true, names, ()))} · <b style='color: rgb{_WRONG}'>✗ predicted "
            f"{_e(predicted.name)}</b>")


def _side_html(heading: str, side: Finding | ComparedModel, finding: Finding, names: Sequence[str],
               methods: _Methods) -> str:
    title = methods.titles.get(finding.method, finding.method)
    class_free = finding.method in methods.class_free
    target = (f"not used: {_e(title)} does not depend on the class" if class_free
              else _target_text(side.target_mode, side.target_class, names, side.top5))
    facts = _facts([("Layer", f"<code>{_e(side.layer)}</code>"), ("Method", _e(title)), ("Target", target),
                    ("Model id", f"<code>{_e(side.model_id or '—')}</code>")])
    explained = None if class_free else side.target_class
    return (f"<div class='side'>{heading}"
            f"{_pictures_html(side.pictures, finding.sample.describe(), finding.opacity, finding.colormap)}"
            f"<div class='details'>{facts}{_top5_html(side.top5, finding.sample.true_class, explained)}</div></div>")


def finding_html(number: int, finding: Finding, names: Sequence[str], methods: _Methods) -> str:
    described = finding.sample.describe()
    head = f"{number}. {_e(described[0].upper() + described[1:])}{_verdict(finding, names)}"
    parts = [f"<section class='finding' id='finding-{number}'><h2>{head}</h2>"]
    if finding.note:
        parts.append(f"<div class='note'>{_e(finding.note)}</div>")
    if finding.compare is None:
        parts.append(_side_html("", finding, finding, names, methods))
    else:
        other = finding.compare
        parts.append(_side_html(f"<h3>{_e(finding.workspace)}</h3>", finding, finding, names, methods))
        parts.append(_side_html(f"<h3>{_e(other.workspace)}</h3>", other, finding, [], methods))
    extra = [f"created {_e(finding.created)}" if finding.created else "",
             f"reopen in the dashboard: <code>{_e(finding.link)}</code>" if finding.link else ""]
    if any(extra):
        parts.append(f"<p class='muted'>{' · '.join(x for x in extra if x)}</p>")
    parts.append("</section>")
    return "".join(parts)


def render_report(title: str, card: ModelCard, findings: Sequence[Finding], created: str,
                  method_titles: Mapping[str, str] | None = None, class_free_methods: Collection[str] = ()) -> str:
    """The whole HTML document (a str): header, model card, confusion matrix, then each finding in order.

    ``method_titles`` maps a method name to the title shown; ``class_free_methods`` are those whose map does not
    depend on the target class (the report then says the target is not used)."""
    methods = _Methods(method_titles or {}, frozenset(class_free_methods))
    names = list(card.class_names)
    body = "".join(finding_html(n, f, names, methods) for n, f in enumerate(findings, 1))
    intro = (f"<header><h1>{_e(title)}</h1><p class='muted'>Built {_e(created)} · {len(findings)} finding"
             f"{'' if len(findings) == 1 else 's'} · model {_e(card.model_id)}</p></header>")
    empty = "" if findings else "<p class='muted'>No findings were pinned.</p>"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"{intro}{model_card_html(card)}{confusion_html(card)}{body}{empty}"
        "<footer>Grad-CAM report · one self-contained file: every picture is embedded, nothing is loaded from the "
        "network.</footer></body></html>\n"
    )
