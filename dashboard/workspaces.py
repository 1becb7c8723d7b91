"""The workspace picker and the loaded model every page shares.

A workspace's model is loaded once per server process with ``st.cache_resource`` and shared by every browser
session, together with its ``CamEngine`` and that engine's per-model lock: every computation on the model runs
under the lock (the engine takes it too; it is re-entrant). Its precomputed store is checked then too
(``store_source.open_with_store``): a usable store lists an ImageFolder test set, so nothing walks the folder.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from dashboard.argv import workspace_from_argv
from dashboard.store_source import StoreStatus, open_with_store
from gradcam_core import CamEngine, layer_output_shapes, list_cam_layers, list_conv_layers
from models import list_workspaces, load_workspace


@dataclass(eq=False)
class LoadedWorkspace:
    """A workspace ready to explain: the ``models`` Workspace plus what the pages need from its model."""

    key: str  # what the picker and the URL use: a bundled name or the --workspace path
    workspace: Any  # models.Workspace
    engine: CamEngine
    layers: list[str]  # the picker's layers: every Conv2d, then the token-grid layers (transformer blocks, norms)
    layer_shapes: dict[str, tuple[int, int, int]]  # layer -> (C, H, W) of its output for the input size
    store_status: StoreStatus = field(default_factory=StoreStatus)  # its precomputed store, as found when loaded

    @property
    def lock(self) -> threading.RLock:
        return self.engine.lock

    @property
    def model_id(self) -> str:
        return self.workspace.model_id

    @property
    def class_names(self) -> list[str]:
        return list(self.workspace.class_names)

    @property
    def default_layer(self) -> str:
        default = getattr(self.workspace, "default_layer", None)
        return default if default in self.layers else self.layers[-1]

    def layer_label(self, layer: str) -> str:
        """How a layer picker shows a layer: its name and output shape, "layer4.1.conv2 · 512×7×7"."""
        channels, height, width = self.layer_shapes.get(layer, (0, 0, 0))
        return f"{layer} · {channels}×{height}×{width}"

    @property
    def shortcut(self) -> bool:
        return uses_shortcut(self.workspace)

    def device_label(self) -> str:
        device = self.engine.device
        if device.type == "cuda":
            return f"{device} ({torch.cuda.get_device_name(device)})"
        return str(device)


def workspace_choices(cli_workspace: str | None = None) -> list[str]:
    """The picker's options: the ``--workspace`` file or name first (it is what the user asked for), then the
    bundled workspaces, default first."""
    cli_workspace = workspace_from_argv() if cli_workspace is None else cli_workspace
    bundled = list(list_workspaces())
    if not cli_workspace:
        return bundled
    return [cli_workspace, *(name for name in bundled if name != cli_workspace)]


def workspace_label(key: str) -> str:
    if key.endswith(".toml") or "/" in key or "\\" in key:
        return f"{Path(key).name} (from --workspace)"
    return key


@st.cache_resource(show_spinner=False, max_entries=4)
def load(key: str) -> LoadedWorkspace:
    """Load a workspace's model and test set once per process; raises ``models.WorkspaceError``."""
    workspace = load_workspace(key)
    store_status = open_with_store(workspace)
    engine = CamEngine(workspace.model)
    with engine.lock:
        layers = picker_layers(workspace.model, tuple(workspace.input_size))
        shapes = layer_output_shapes(workspace.model, tuple(workspace.input_size), layers) if layers else {}
    return LoadedWorkspace(key=key, workspace=workspace, engine=engine, layers=layers, layer_shapes=shapes,
                           store_status=store_status)


def picker_layers(model, input_size: tuple[int, int]) -> list[str]:
    """The layer picker's list: every Conv2d first (shallow to deep), then the layers whose output is a token grid
    (transformer blocks and their norms) where the model has them."""
    convs = list_conv_layers(model)
    known = set(convs)
    return convs + [name for name in list_cam_layers(model, input_size) if name not in known]


def uses_shortcut(workspace: Any) -> bool:
    """Whether the workspace says its model is known to rely on a shortcut (so its description is shown as a
    warning): ``workspace.shortcut`` where the record has it, else its notes' "shortcut" or "warning". Metadata
    only: a workspace whose name or description merely mentions the word is not flagged."""
    flag = getattr(workspace, "shortcut", None)
    if flag is not None:
        return bool(flag)
    notes = getattr(workspace, "notes", None) or {}
    return bool(notes.get("shortcut") or notes.get("warning"))
