"""``source = "torchvision"``: a torchvision architecture with your checkpoint or torchvision's own weights.

    [model]
    arch = "resnet18"                 # any torchvision classification architecture
    checkpoint = "pets.safetensors"   # your state_dict (.safetensors, or .pt/.pth read with weights_only=True)
    # weights = "DEFAULT"             # or torchvision's pretrained weights (ImageNet's 1000 classes)

``weights="DEFAULT"`` (or a weights name such as ``"IMAGENET1K_V1"``) uses the file in torch's cache folder
(``torch.hub.get_dir()/checkpoints``) and downloads it there when it is missing and the network is reachable.
Without network and without the file, ``WorkspaceError`` says which file to put where. No weights at all builds
the architecture with random weights (seeded, without touching the global RNG).
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from models.checkpoints import STATE_DICT_SUFFIXES
from models.errors import WorkspaceError
from models.schema import spec
from models.sources.base import LoadedModel, ModelTable, SourceContext, apply_checkpoint, checkpoint_file
from models.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform

NAME = "torchvision"

DOWNLOAD_TIMEOUT_S = 20
OFFLINE_ENV = "GRADCAM_OFFLINE"  # set to 1 to never try a download


def torchvision_architectures() -> list[str]:
    """Every classification architecture torchvision knows (resnet18, vgg16, convnext_tiny, ...)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def check_arch(arch: str) -> None:
    known = torchvision_architectures()
    if arch not in known:
        import difflib

        close = difflib.get_close_matches(arch, known, n=3)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise WorkspaceError(f"{arch!r} is not a torchvision classification architecture; {hint}"
                             "see torchvision.models.list_models(module=torchvision.models)")


def resolve_weights(arch: str, weights: str):
    """The torchvision ``WeightsEnum`` member for ``weights`` ("DEFAULT" or a member name) of ``arch``."""
    from torchvision.models import get_model_weights

    check_arch(arch)
    enum = get_model_weights(arch)
    if weights == "DEFAULT":
        return enum.DEFAULT
    name = weights.split(".")[-1]
    if name not in enum.__members__:
        raise WorkspaceError(f"{arch} has no weights {weights!r}; choose \"DEFAULT\" or one of "
                             f"{', '.join(repr(m) for m in enum.__members__)}")
    return enum[name]


def weights_cache_path(weight) -> Path:
    """Where torchvision keeps (and looks for) the file of ``weight``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weight.url).path)


def _download(url: str, destination: Path) -> None:
    """Fetch ``url`` into ``destination`` atomically, with a timeout so an offline machine fails fast."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)


def ensure_weights_file(arch: str, weight) -> Path:
    """The cached weights file of ``weight``, downloading it if needed; a clear WorkspaceError when impossible."""
    path = weights_cache_path(weight)
    if path.is_file():
        return path
    how = (f"connect to the internet once and reopen (torchvision downloads it there), or download {weight.url} "
           f"on another machine and copy it to {path} (set TORCH_HOME to use another cache folder); "
           "or use weights=None / your own checkpoint")
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise WorkspaceError(f"pretrained weights {weight!s} for {arch} need the file {path.name!r}, which is not "
                             f"in torch's cache folder {str(path.parent)!r}, and {OFFLINE_ENV} is set so nothing is "
                             f"downloaded; {how}")
    try:
        _download(weight.url, path)
    except OSError as error:  # URLError, timeouts, DNS failures, a read-only cache, ...
        raise WorkspaceError(f"pretrained weights {weight!s} for {arch} need the file {path.name!r}, which is not "
                             f"in torch's cache folder {str(path.parent)!r} and could not be downloaded ({error}); "
                             f"{how}") from error
    return path


def weights_transform(weight) -> ImageTransform:
    """torchvision's ``Weights.transforms()`` (resize the shorter side, centre-crop, normalise) as our transform."""
    preset = weight.transforms()
    crop = int(preset.crop_size[0])
    return ImageTransform((crop, crop), tuple(preset.mean), tuple(preset.std), resize=int(preset.resize_size[0]))


def torchvision_transform(arch: str, weights: str | None = "DEFAULT") -> ImageTransform:
    """The preprocessing of ``weights``; ImageNet's resize-256/crop-224 for None."""
    if weights is None:
        check_arch(arch)
        return ImageTransform((224, 224), IMAGENET_MEAN, IMAGENET_STD, resize=256)
    return weights_transform(resolve_weights(arch, weights))


def build_arch(arch: str, num_classes: int | None = None) -> nn.Module:
    """``arch`` with random weights, the same every time, without touching the global RNG."""
    from torchvision.models import get_model

    check_arch(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return get_model(arch, weights=None, num_classes=num_classes or 1000).eval()


def load_torchvision(arch: str, weights: str | None = "DEFAULT",
                     num_classes: int | None = None) -> tuple[nn.Module, ImageTransform, list[str]]:
    """(model in eval mode on the CPU, transform, class names) for a torchvision architecture.

    weights: "DEFAULT", a weights name of ``arch`` (e.g. "IMAGENET1K_V1"), or None for random weights.
    num_classes: the classifier's size; with pretrained weights it must be None or their category count.
    With weights, the transform and the category names come from the weights' meta (ImageNet's 1000 names);
    with weights=None and num_classes None they are ImageNet's too, else "class 0", "class 1", ...
    """
    from torchvision.models import get_model, get_model_weights

    check_arch(arch)
    if weights is None:
        categories = None
        if num_classes is None or num_classes == 1000:
            categories = list(get_model_weights(arch).DEFAULT.meta.get("categories") or []) or None
        model = build_arch(arch, num_classes)
        names = categories if categories and len(categories) == 1000 else [
            f"class {i}" for i in range(num_classes or 1000)]
        return model, torchvision_transform(arch, None), names
    weight = resolve_weights(arch, weights)
    categories = list(weight.meta["categories"])
    if num_classes is not None and num_classes != len(categories):
        raise WorkspaceError(f"{arch} weights {weight!s} have {len(categories)} classes, not num_classes="
                             f"{num_classes}; to use your own classes, load your fine-tuned checkpoint instead "
                             "(a workspace file with [model] checkpoint = ...)")
    ensure_weights_file(arch, weight)
    model = get_model(arch, weights=weight)
    return model.eval(), weights_transform(weight), categories


# ------------------------------------------------------------------------------------------- the source
@dataclass(frozen=True)
class Table(ModelTable):
    arch: str | None = spec("the torchvision architecture", required=True,
                            expected='a torchvision classification architecture name such as "resnet18"')
    checkpoint: Path | None = spec("your weights (a state_dict)", kind=Path,
                                   expected=f"a file path ({', '.join(STATE_DICT_SUFFIXES)}), relative to the .toml")
    weights: str | None = spec("torchvision's pretrained weights instead of a checkpoint (\"none\": random weights, "
                               "for trying the dashboard out)",
                               expected='"DEFAULT", a weights name such as "IMAGENET1K_V1", or "none"')


def load(table: Table, context: SourceContext) -> LoadedModel:
    try:
        check_arch(table.arch)
    except WorkspaceError as error:
        raise context.error("arch", str(error), "see torchvision.models.list_models()") from None
    if table.checkpoint is not None and table.weights is not None:
        raise context.error("weights", "both checkpoint and weights are set", "use checkpoint for your own weights "
                            'or weights = "DEFAULT" for torchvision\'s pretrained ones, not both')
    if table.weights is not None and table.weights.lower() == "none":
        model, transform, categories = load_torchvision(table.arch, weights=None, num_classes=context.num_classes)
        return LoadedModel(model, None, weights_tag="untrained", preprocessing=transform,
                           class_names=categories if context.num_classes in (None, 1000) else None,
                           class_names_origin="ImageNet's categories", description=f"torchvision {table.arch} "
                           "(random weights)", notes={"untrained": 'weights = "none": random weights'})
    if table.weights is not None:
        model, transform, categories = load_torchvision(table.arch, weights=table.weights)
        weight = resolve_weights(table.arch, table.weights)
        return LoadedModel(model, weights_cache_path(weight), class_names=categories,
                           class_names_origin=f"the {weight!s} weights' categories", preprocessing=transform,
                           description=f"torchvision {table.arch} ({weight!s})")
    if table.checkpoint is None:
        raise context.error("checkpoint", "arch is set but neither checkpoint nor weights",
                            'add checkpoint = "your_weights.pt" (a state_dict) or weights = "DEFAULT"')
    file = checkpoint_file(table.checkpoint, context)
    model = build_arch(table.arch, context.num_classes)
    apply_checkpoint(model, file, context, table.classifier_layer)
    return LoadedModel(model, file, description=f"torchvision {table.arch} + {file.name}")
