"""Models and data for the Grad-CAM dashboard: the registry, bundled workspaces, torchvision and your own models.

    from models import load_workspace, list_workspaces
    ws = load_workspace("shapes")                 # or a path to a .toml workspace file
    x = ws.test_set.tensors(range(8))             # (8, 3, H, W), normalised for ws.model
    ws.model(x).argmax(1), ws.test_set.labels[:8]

No streamlit here: everything is usable from a notebook or a script. See models/README.md.
"""

from models.checkpoints import checkpoint_sha256
from models.datasets import ImageSet
from models.errors import WorkspaceError
from models.registry import MODEL_REGISTRY, get_entry, list_models
from models.torchvision_models import load_torchvision
from models.workspace import DEFAULT_WORKSPACE, Workspace, list_workspaces, load_workspace

__all__ = [
    "DEFAULT_WORKSPACE",
    "MODEL_REGISTRY",
    "ImageSet",
    "Workspace",
    "WorkspaceError",
    "checkpoint_sha256",
    "get_entry",
    "list_models",
    "list_workspaces",
    "load_torchvision",
    "load_workspace",
]
