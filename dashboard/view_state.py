"""The explorer's view, as it lives in the URL: parsed and validated from ``st.query_params``, written back.

Pure Python (no streamlit): the page reads ``st.query_params`` and hands them here. Every value from a URL is
checked against the loaded workspace; a bad one falls back to its default with a warning the page shows, so a
stale or hand-edited link never crashes the page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from dashboard.sampling import CLASS_FILTER_PREFIX, FILTER_ALL, FILTER_CORRECT, FILTER_WRONG, class_filter
from gradcam_core import COLORMAPS, METHOD_NAMES
from gradcam_core.layers import suggest

WORKSPACE_PARAM = "ws"
VIEW_PARAMS = ("seed", "filter", "sample", "layer", "method", "target", "opacity", "colormap")
TARGET_PREDICTED, TARGET_TRUE = "pred", "true"
UPLOAD_PREFIX = "upload:"
DEFAULT_METHOD = "gradcam"
DEFAULT_COLORMAP = "jet"
DEFAULT_OPACITY = 0.5
MAX_SEED = 2**32 - 1


@dataclass
class ViewOptions:
    """What a valid view can hold for the loaded workspace."""

    layers: Sequence[str]
    default_layer: str
    class_names: Sequence[str]
    num_test: int
    methods: Sequence[str] = METHOD_NAMES
    colormaps: Sequence[str] = field(default_factory=lambda: list(COLORMAPS))


@dataclass
class ViewState:
    layer: str
    seed: int = 0
    filter: str = FILTER_ALL
    sample: int | str | None = None  # test index, "upload:<sha256 prefix>", or None: the gallery's first image
    method: str = DEFAULT_METHOD
    target: str | int = TARGET_PREDICTED  # "pred", "true" or a class index
    opacity: float = DEFAULT_OPACITY
    colormap: str = DEFAULT_COLORMAP

    def as_dict(self) -> dict:
        return asdict(self)


def default_state(options: ViewOptions) -> ViewState:
    layer = options.default_layer if options.default_layer in options.layers else options.layers[-1]
    return ViewState(layer=layer)


def _class_index(value: str, class_names: Sequence[str]) -> int | None:
    """A class given as an index ("3") or a name ("circle")."""
    value = value.strip()
    if value.lstrip("-").isdigit():
        index = int(value)
        return index if 0 <= index < len(class_names) else None
    return list(class_names).index(value) if value in class_names else None


def _first(value) -> str:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else ""
    return str(value)


def parse_query_params(params: Mapping[str, object], options: ViewOptions) -> tuple[ViewState, list[str]]:
    """The view a link asks for, and one warning per value that had to fall back to its default."""
    state = default_state(options)
    warnings: list[str] = []
    raw = {key: _first(params[key]) for key in VIEW_PARAMS if key in params}

    def fallback(key: str, why: str, default) -> None:
        warnings.append(f"The link's {key} {raw[key]!r} {why}; showing {default!r} instead.")

    if "seed" in raw:
        try:
            seed = int(raw["seed"])
            if not 0 <= seed <= MAX_SEED:
                raise ValueError
            state.seed = seed
        except ValueError:
            fallback("seed", f"is not a whole number between 0 and {MAX_SEED}", state.seed)

    if "filter" in raw:
        value = raw["filter"]
        if value in (FILTER_ALL, FILTER_CORRECT, FILTER_WRONG):
            state.filter = value
        elif value.startswith(CLASS_FILTER_PREFIX) and (
            index := _class_index(value[len(CLASS_FILTER_PREFIX):], options.class_names)
        ) is not None:
            state.filter = class_filter(index)
        else:
            fallback("filter", "is not 'all', 'correct', 'misclassified' or 'class:<class>' for this model",
                     state.filter)

    if "sample" in raw:
        value = raw["sample"]
        if value.startswith(UPLOAD_PREFIX):
            warnings.append(
                "The link points to an uploaded image, which lives only in the browser session that uploaded "
                "it; showing a test image instead (upload the image again to see it)."
            )
        else:
            try:
                index = int(value)
                if not 0 <= index < options.num_test:
                    raise ValueError
                state.sample = index
            except ValueError:
                warnings.append(
                    f"The link's sample {value!r} is not a test image index (0 to {options.num_test - 1}); "
                    "showing the gallery's first image instead."
                )

    if "layer" in raw:
        value = raw["layer"]
        if value in options.layers:
            state.layer = value
        else:
            hints = suggest(value, list(options.layers))
            hint = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
            fallback("layer", f"is not a Conv2d layer of this model{hint}", state.layer)

    if "method" in raw:
        value = raw["method"].lower()
        if value in options.methods:
            state.method = value
        else:
            fallback("method", f"is not one of {', '.join(options.methods)}", state.method)

    if "target" in raw:
        value = raw["target"]
        if value in (TARGET_PREDICTED, TARGET_TRUE):
            state.target = value
        elif (index := _class_index(value, options.class_names)) is not None:
            state.target = index
        else:
            fallback("target", f"is not 'pred', 'true' or a class of this model (0 to {len(options.class_names) - 1})",
                     state.target)

    if "opacity" in raw:
        try:
            opacity = float(raw["opacity"])
            if not (math.isfinite(opacity) and 0.0 <= opacity <= 1.0):
                raise ValueError
            state.opacity = round(opacity, 2)
        except ValueError:
            fallback("opacity", "is not a number between 0 and 1", state.opacity)

    if "colormap" in raw:
        value = raw["colormap"].lower()
        if value in options.colormaps:
            state.colormap = value
        else:
            fallback("colormap", f"is not one of {', '.join(options.colormaps)}", state.colormap)

    return state, warnings


def to_query_params(state: ViewState) -> dict[str, str]:
    """Every view parameter as a string, so a shared link is complete (not only the non-default values)."""
    return {
        "seed": str(state.seed),
        "filter": state.filter,
        "sample": "" if state.sample is None else str(state.sample),
        "layer": state.layer,
        "method": state.method,
        "target": str(state.target),
        "opacity": f"{state.opacity:g}",
        "colormap": state.colormap,
    }
