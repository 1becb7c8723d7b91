"""Every page's one-line "what am I looking at", for someone who has never seen a heatmap: hidden behind a small
help button under the page title, so it costs an expert nothing but a glance.

One line per page script: ``page_help.show("explorer")`` right after the page's title. A new page passes its own
text, ``page_help.show("mine", ("the plain line", "the expert's line"))``, or adds it to ``PAGE_HELP`` (a test
checks that every page script calls ``show`` once, with a known name or its own text).
"""

from __future__ import annotations

import streamlit as st

#: page name -> (the one line for a non-expert, a second line with the detail an expert asks about)
PAGE_HELP: dict[str, tuple[str, str]] = {
    "explorer": (
        "The coloured overlay shows which parts of the picture pushed the model towards its answer: red and yellow "
        "mattered most, blue hardly at all.",
        "Grad-CAM weighs a layer's feature maps by the gradient of the chosen class score; deeper layers give "
        "coarser, more class-specific maps. The map is scaled to [0, 1] per image, so compare shapes, not "
        "absolute heat, between images.",
    ),
    "activations": (
        "Each small square is one of the model's feature detectors: bright where it reacted to this picture, "
        "whether or not that reaction mattered for the answer.",
        "Raw channel outputs of one layer (no gradients), ranked by the chosen statistic; use the explorer to see "
        "which of them the decision used.",
    ),
    "embedding": (
        "Each dot is a test picture; pictures the model finds alike sit close together, so a tight cluster of one "
        "colour is a class the model tells apart well.",
        "t-SNE of the penultimate features (after PCA to 50 dimensions): distances between clusters and cluster "
        "sizes carry little meaning; neighbourhoods do.",
    ),
    "analysis": (
        "Where the model gets it wrong: each square counts test pictures of one true class (row) given one answer "
        "(column); the diagonal is what it gets right.",
        "Confusion matrix and per-class precision / recall on the test split, then Grad-CAM of a class's correct "
        "and misclassified images side by side.",
    ),
    "compare": (
        "The same picture shown to two models, and where each one looks: if one looks at the object and the other "
        "at something beside it, the second one learned a shortcut.",
        "Each model explains its own prediction at its own layer; the difference map is A minus B. Over a seeded "
        "sample: prediction agreement, Spearman correlation of the two maps and the share of each map's energy "
        "inside the object mask or on the marker.",
    ),
    "report": (
        "The views you pinned with \"Add to report\", in the order you choose, with your notes; download them as one "
        "file that opens in any browser, offline.",
        "The HTML embeds every picture as a data: URI, with inline styles and a Content-Security-Policy that allows "
        "no request; \"Download findings (JSON)\" rebuilds the same report with `gradcam report`.",
    ),
    "faithfulness": (
        "Does the heatmap point at what the model really uses? We hide the most highlighted pixels first: if the "
        "model's confidence drops fast, the heatmap told the truth.",
        "Deletion and insertion curves (area under the target's softmax probability as the most salient pixels "
        "are removed or revealed); lower deletion and higher insertion AUC mean a more faithful map.",
    ),
}

LABEL = "What am I looking at?"


def show(page: str, text: tuple[str, str] | None = None) -> None:
    """The page's help button (under its title): the one line, then the expert's line in smaller type. ``text``:
    (plain line, expert's line) for a page whose text is not in ``PAGE_HELP``."""
    if text is None and page not in PAGE_HELP:
        raise KeyError(f"no help text for page {page!r}; pass it, page_help.show({page!r}, (plain, expert)), or add "
                       f"it to PAGE_HELP in dashboard/page_help.py (pages with help: {', '.join(PAGE_HELP)})")
    plain, expert = text if text is not None else PAGE_HELP[page]
    with st.popover(LABEL, icon=":material/help:", type="tertiary", help="A one-line explanation of this page"):
        st.markdown(plain)
        st.caption(expert)
