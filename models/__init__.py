"""Models and data for the Grad-CAM dashboard: workspaces (a model plus its test images) from TOML files.

    from models import load_workspace, list_workspaces
    ws = load_workspace("shapes")                 # or a path to a .toml workspace file
    x = ws.test_set.tensors(range(8))             # (8, 3, H, W), normalised for ws.model
    ws.model(x).argmax(1), ws.test_set.labels[:8]

Models come from sources (``models/sources/``: torchvision, python, timm, huggingface, torchscript), chosen by
the TOML's ``[model] source``. No streamlit here: everything is usable from a notebook or a script.
See models/README.md.
"""

from models.checkpoints import checkpoint_sha256
from models.datasets import FolderImageSet, ImageSet
from models.errors import WorkspaceError
from models.sources.torchvision import load_torchvision
from models.transforms import ImageTransform
from models.workspace import (
    DEFAULT_WORKSPACE,
    Workspace,
    list_workspaces,
    load_workspace,
    parse_workspace_file,
)

__all__ = [
    "DEFAULT_WORKSPACE",
    "FolderImageSet",
    "ImageSet",
    "ImageTransform",
    "Workspace",
    "WorkspaceError",
    "checkpoint_sha256",
    "list_workspaces",
    "load_torchvision",
    "load_workspace",
    "parse_workspace_file",
]
