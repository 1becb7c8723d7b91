"""Every page's session state, with typed keys, and the one rule that resets it: a new workspace starts afresh.

A ``Key`` is the string Streamlit stores a value under (pass it as a widget's ``key=``) and knows the type and
default of its value. Each page lists its keys in one ``PageState`` class below. When the sidebar's workspace
changes, ``follow_workspace`` (called by the shell, before any page runs) drops every page's keys except those
marked ``keep`` — the old workspace's layers, classes and test images mean nothing in the new one.

Widgets that should survive a shared link (the explorer's view) go through ``st.query_params``
(``dashboard.explorer_link``); this module is only about the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import streamlit as st

from dashboard.explorer_link import DEFAULT_COLORMAP, DEFAULT_METHOD, DEFAULT_OPACITY, TARGET_PREDICTED, ViewState
from dashboard.gallery import FILTER_ALL
from dashboard.samples import UploadedImage

T = TypeVar("T")


class Key(str, Generic[T]):
    """A session-state key: a ``str`` (usable as a widget's ``key=``) with the type and default of its value.

    ``keep``: survives a change of workspace (what the user brought, not what the workspace gave).
    """

    default: Any
    keep: bool

    def __new__(cls, name: str, default: T | None = None, *, keep: bool = False) -> Key[T]:
        key = super().__new__(cls, name)
        key.default, key.keep = default, keep
        return key

    def get(self) -> T:
        return st.session_state.get(str(self), self.default)

    def set(self, value: T) -> None:
        st.session_state[str(self)] = value

    def setdefault(self, value: T) -> T:
        """Set ``value`` unless a value is there already; return what is there."""
        return st.session_state.setdefault(str(self), value)

    def is_set(self) -> bool:
        return str(self) in st.session_state

    def clear(self) -> None:
        st.session_state.pop(str(self), None)


class PageState:
    """One page's keys, as class attributes. Every subclass is reset by ``follow_workspace``."""

    groups: ClassVar[list[type[PageState]]] = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        PageState.groups.append(cls)

    @classmethod
    def all_keys(cls) -> list[Key]:
        return [value for value in vars(cls).values() if isinstance(value, Key)]

    @classmethod
    def clear(cls) -> None:
        for key in cls.all_keys():
            if not key.keep:
                key.clear()


_WORKSPACE = Key[str]("_state.workspace")


def follow_workspace(workspace_key: str) -> bool:
    """Drop every page's state when the workspace differs from the one it was made for; True when it did."""
    previous = _WORKSPACE.get()
    _WORKSPACE.set(workspace_key)
    if previous is None or previous == workspace_key:
        return False
    for group in PageState.groups:
        group.clear()
    return True


@dataclass(frozen=True)
class SavedView:
    """The explorer's view as last drawn, for the workspace it belongs to: it re-seeds the widgets Streamlit
    dropped while another page was open, and tells other pages which image and layer the user was looking at."""

    workspace: str
    view: ViewState


class ExplorerState(PageState):
    seed = Key[int]("explorer.seed", 0)
    filter = Key[str]("explorer.filter", FILTER_ALL)
    layer = Key[str]("explorer.layer")
    method = Key[str]("explorer.method", DEFAULT_METHOD)
    target = Key[str | int]("explorer.target", TARGET_PREDICTED)
    opacity = Key[float]("explorer.opacity", DEFAULT_OPACITY)
    colormap = Key[str]("explorer.colormap", DEFAULT_COLORMAP)
    sample = Key[int | None]("explorer.sample")  # test index; None: the gallery's first image
    source = Key[str]("explorer.source", "test")  # what the view shows: "test" or "upload"
    saved_view = Key[SavedView | None]("explorer._view")
    uploader = Key[Any]("explorer.upload", keep=True)  # the file_uploader widget
    upload = Key[UploadedImage | None]("explorer._upload", keep=True)  # its image, kept when the page is left
    link_read = Key[bool]("explorer._link_read", False, keep=True)  # the URL's view was applied once

    #: ViewState field -> the widget that shows it
    @classmethod
    def view_widgets(cls) -> dict[str, Key]:
        return {"seed": cls.seed, "filter": cls.filter, "layer": cls.layer, "method": cls.method,
                "target": cls.target, "opacity": cls.opacity, "colormap": cls.colormap}


class ActivationsState(PageState):
    source = Key[str]("activations.source", "test")  # "test" or "upload" (the explorer's upload)
    sample = Key[int]("activations.sample")
    layer = Key[str]("activations.layer")
    count = Key[int]("activations.count", 16)
    statistic = Key[str]("activations.statistic", "mean")
    channel = Key[int]("activations.channel")


class TsneState(PageState):
    max_points = Key[int]("tsne.max_points")
    perplexity = Key[int]("tsne.perplexity", 30)
    color = Key[str]("tsne.color", "true")
    pick = Key[int]("tsne.pick")
    last_selection = Key[int | None]("tsne._last_selection")  # the chart click already acted on


class AnalysisState(PageState):
    true_class = Key[int]("analysis.true")
    pred_class = Key[int]("analysis.pred")
    last_cell = Key[tuple[int, int] | None]("analysis._last_cell")  # the matrix click already acted on
    chosen_class = Key[int]("analysis.class")
    layer = Key[str]("analysis.layer")
    target = Key[str]("analysis.target", "pred")


class CompareState(PageState):
    """The "Compare models" page: its own two workspaces, independent of the sidebar's, so nothing is reset when
    the sidebar changes (``keep``)."""

    workspace_a = Key[str]("compare.a", keep=True)
    workspace_b = Key[str]("compare.b", keep=True)
    source = Key[str]("compare.source", keep=True)  # "a" / "b": that workspace's test set; "upload"
    index = Key[int]("compare.index", keep=True)
    layer_a = Key[str]("compare.layer_a", keep=True)
    layer_b = Key[str]("compare.layer_b", keep=True)
    method = Key[str]("compare.method", DEFAULT_METHOD, keep=True)
    target = Key[str | int]("compare.target", "pred", keep=True)
    opacity = Key[float]("compare.opacity", DEFAULT_OPACITY, keep=True)
    colormap = Key[str]("compare.colormap", DEFAULT_COLORMAP, keep=True)
    sample_size = Key[int]("compare.n", keep=True)
    seed = Key[int]("compare.seed", 0, keep=True)
    uploader = Key[Any]("compare.uploader", keep=True)  # the file_uploader widget
    upload = Key[UploadedImage | None]("compare._upload", keep=True)


class ReportState(PageState):
    """The session's report: its id (also in the URL as ``?report=``) outlives a change of workspace, since the
    report holds findings of every workspace and shows those of the current one."""

    report_id = Key[str | None]("report._id", keep=True)
    title = Key[str]("report.title")  # per workspace: its default names the workspace
    open_view = Key[dict | None]("report._open_view", keep=True)  # explorer query params to switch to next run


class FaithfulnessState(PageState):
    count = Key[int]("faithfulness.count", 12)  # images in the seeded sample (~35 s of CPU on shapes)
    seed = Key[int]("faithfulness.seed", 0)
    table = Key[Any]("faithfulness.table")  # the table's row selection (st.dataframe's state)
    sanity_layer = Key[str]("faithfulness.sanity_layer")
    explorer_panel = Key[bool]("faithfulness.explorer_panel", False)  # the explorer's expander: open = compute
