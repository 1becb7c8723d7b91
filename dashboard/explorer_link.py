"""The explorer's view, as it lives in the URL: parsed and validated from ``st.query_params``, written back.

Pure Python (no streamlit): the page reads ``st.query_params`` and hands them here. Every value from a URL is
checked against the loaded workspace; a bad one falls back to its default with a warning the page shows, so a
stale or hand-edited link never crashes the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from dashboard.gallery import CLASS_FILTER_PREFIX, FILTER_ALL, FILTER_CORRECT, FILTER_WRONG, class_filter
from gradcam_core import CAM_METHODS, COLORMAPS, METHOD_NAMES
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
    methods: Sequence[str] = tuple(m for m in METHOD_NAMES if not getattr(CAM_METHODS[m], "needs_model", False))
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


@dataclass(frozen=True)
class ViewChoice:
    """The view's controls as read this run."""

    method: str
    layer: str
    target: str | int  # "pred", "true" or a class index, as in the URL
    target_class: int  # the class whose score is explained
    opacity: float
    colormap: str

    @property
    def uses_target(self) -> bool:
        return CAM_METHODS[self.method].needs_gradients


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


class _Refused(ValueError):
    """A link value that cannot be used; ``warning`` is what the page says about it."""

    def __init__(self, why: str, warning: str | None = None):
        super().__init__(why)
        self.why, self.warning = why, warning


def _seed(value: str, options: ViewOptions) -> int:
    try:
        seed = int(value)
    except ValueError:
        seed = -1
    if not 0 <= seed <= MAX_SEED:
        raise _Refused(f"is not a whole number between 0 and {MAX_SEED}")
    return seed


def _filter(value: str, options: ViewOptions) -> str:
    if value in (FILTER_ALL, FILTER_CORRECT, FILTER_WRONG):
        return value
    if value.startswith(CLASS_FILTER_PREFIX):
        index = _class_index(value[len(CLASS_FILTER_PREFIX):], options.class_names)
        if index is not None:
            return class_filter(index)
    raise _Refused("is not 'all', 'correct', 'misclassified' or 'class:<class>' for this model")


def _sample(value: str, options: ViewOptions) -> int:
    if value.startswith(UPLOAD_PREFIX):
        raise _Refused("is an upload", "The link points to an uploaded image, which lives only in the browser "
                       "session that uploaded it; showing a test image instead (upload the image again to see it).")
    index = int(value) if value.lstrip("-").isdigit() else -1
    if not 0 <= index < options.num_test:
        raise _Refused("is not a test image", f"The link's sample {value!r} is not a test image index (0 to "
                       f"{options.num_test - 1}); showing the gallery's first image instead.")
    return index


def _layer(value: str, options: ViewOptions) -> str:
    if value in options.layers:
        return value
    hints = suggest(value, list(options.layers))
    hint = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
    raise _Refused(f"is not a Conv2d layer of this model{hint}")


def _method(value: str, options: ViewOptions) -> str:
    if value.lower() in options.methods:
        return value.lower()
    raise _Refused(f"is not one of {', '.join(options.methods)}")


def _target(value: str, options: ViewOptions) -> str | int:
    if value in (TARGET_PREDICTED, TARGET_TRUE):
        return value
    index = _class_index(value, options.class_names)
    if index is None:
        raise _Refused(f"is not 'pred', 'true' or a class of this model (0 to {len(options.class_names) - 1})")
    return index


def _opacity(value: str, options: ViewOptions) -> float:
    try:
        opacity = float(value)
    except ValueError:
        opacity = math.nan
    if not (math.isfinite(opacity) and 0.0 <= opacity <= 1.0):
        raise _Refused("is not a number between 0 and 1")
    return round(opacity, 2)


def _colormap(value: str, options: ViewOptions) -> str:
    if value.lower() in options.colormaps:
        return value.lower()
    raise _Refused(f"is not one of {', '.join(options.colormaps)}")


#: One parser per link parameter, in VIEW_PARAMS order: the value to use, or ``_Refused`` saying why not.
_PARSERS: dict[str, Callable[[str, ViewOptions], object]] = {
    "seed": _seed, "filter": _filter, "sample": _sample, "layer": _layer, "method": _method, "target": _target,
    "opacity": _opacity, "colormap": _colormap,
}


def parse_query_params(params: Mapping[str, object], options: ViewOptions) -> tuple[ViewState, list[str]]:
    """The view a link asks for, and one warning per value that had to fall back to its default."""
    state = default_state(options)
    warnings: list[str] = []
    for key in VIEW_PARAMS:
        if key not in params:
            continue
        raw = _first(params[key])
        try:
            setattr(state, key, _PARSERS[key](raw, options))
        except _Refused as refused:
            warnings.append(refused.warning or
                            f"The link's {key} {raw!r} {refused.why}; showing {getattr(state, key)!r} instead.")
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
