"""``source = "timm"``: any model of the timm library, with your checkpoint or timm's cached pretrained weights.

    [model]
    source = "timm"
    name = "convnext_atto"        # timm.create_model(name, pretrained=False, num_classes=...)
    checkpoint = "convnext.pt"    # your state_dict; or pretrained = true (weights already in the local cache)

Preprocessing comes from timm's data config for the model (input size, mean, std, crop, interpolation) unless
the TOML's [preprocessing] says otherwise. Needs the ``timm`` extra: ``pip install -e .[timm]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.schema import spec
from models.sources.base import (
    LoadedModel,
    ModelTable,
    SourceContext,
    apply_checkpoint,
    call_factory,
    checkpoint_file,
    import_optional,
)
from models.transforms import ImageTransform

NAME = "timm"
EXTRA = "timm"
OFFLINE_ENV = "GRADCAM_OFFLINE"


@dataclass(frozen=True)
class Table(ModelTable):
    name: str | None = spec("the timm model name", required=True,
                            expected='a name from timm.list_models(), e.g. "resnet18" or "vit_small_patch16_224"')
    checkpoint: Path | None = spec("your weights (a state_dict saved from the same timm model)", kind=Path,
                                   expected="a .safetensors, .pt or .pth file, relative to the .toml")
    pretrained: bool = spec("use timm's pretrained weights; they must already be in the local Hugging Face / torch "
                            "cache (nothing is downloaded while offline)", kind=bool, default=False,
                            expected="true or false")
    kwargs: dict = spec("extra keyword arguments for timm.create_model", kind=dict, default={},
                        expected="a table, e.g. { img_size = 128 }")


def load(table: Table, context: SourceContext) -> LoadedModel:
    timm = import_optional("timm", "timm", 'source = "timm"')
    if not timm.is_model(table.name.split(".")[0]):
        close = timm.list_models(f"*{table.name.split('_')[0]}*")[:5]
        raise context.error("name", f"timm has no model {table.name!r}",
                            f"pick one of timm.list_models(); similar: {', '.join(close) or 'none'}")
    if table.pretrained and table.checkpoint is not None:
        raise context.error("pretrained", "both pretrained = true and a checkpoint are set",
                            "use one: your checkpoint, or timm's pretrained weights")
    kwargs = dict(table.kwargs)
    if context.num_classes is not None:
        kwargs["num_classes"] = context.num_classes
    if table.pretrained:
        return _load_pretrained(timm, table, context, kwargs)
    model = call_factory(lambda **kw: timm.create_model(table.name, pretrained=False, **kw), kwargs, context,
                         "name", f"timm.create_model({table.name!r})").eval()
    if table.checkpoint is None:
        return LoadedModel(model, None, weights_tag=f"timm-{table.name}-untrained",
                           preprocessing=timm_preprocessing(model), description=f"timm {table.name} (untrained)",
                           notes={"untrained": "neither checkpoint nor pretrained is set: random weights"})
    file = checkpoint_file(table.checkpoint, context)
    apply_checkpoint(model, file, context, table.classifier_layer)
    return LoadedModel(model, file, preprocessing=timm_preprocessing(model),
                       description=f"timm {table.name} + {file.name}")


def _load_pretrained(timm, table: Table, context: SourceContext, kwargs: dict) -> LoadedModel:
    """timm's pretrained weights from the local cache (Hugging Face hub cache, or torch's for URL weights)."""
    cfg = timm.models.get_pretrained_cfg(table.name)
    cached = cached_pretrained_file(cfg) if cfg is not None else None
    if cached is None and os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise context.error("pretrained", f"timm's pretrained weights of {table.name!r} are not in the local cache "
                            f"and {OFFLINE_ENV} is set", _how_to_cache(table.name, cfg))
    overlay = {"file": str(cached)} if cached is not None else None
    try:
        model = timm.create_model(table.name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs).eval()
    except Exception as error:  # no network, hub errors, a class-count mismatch with the pretrained head...
        raise context.error("pretrained", f"timm could not load pretrained {table.name!r} ({type(error).__name__}: "
                            f"{str(error)[:300]})", _how_to_cache(table.name, cfg)) from None
    names = imagenet_names(timm, model)
    return LoadedModel(model, cached, weights_tag=f"timm-{table.name}-pretrained", class_names=names,
                       class_names_origin=f"timm's {table.name} pretrained categories" if names else "",
                       preprocessing=timm_preprocessing(model), description=f"timm {table.name} (pretrained)")


def cached_pretrained_file(cfg) -> Path | None:
    """The pretrained weights file if it is already on this machine, else None (nothing is downloaded)."""
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(hub_id, filename) if try_to_load_from_cache else None
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    url = getattr(cfg, "url", None)
    if url:
        import torch

        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if path.is_file():
            return path
    return None


def _how_to_cache(name: str, cfg) -> str:
    hub_id = getattr(cfg, "hf_hub_id", None) or name
    return (f"run timm.create_model({name!r}, pretrained=True) once on a machine with internet and copy the Hugging "
            f"Face cache entry of {hub_id!r} (~/.cache/huggingface/hub) here, or save a state_dict and use "
            "checkpoint = ... instead")


def timm_preprocessing(model) -> ImageTransform:
    """timm's data config for ``model`` as our transform: resize the shorter side to size / crop_pct, crop, norm."""
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=model)
    _, height, width = config["input_size"]
    built = getattr(getattr(model, "patch_embed", None), "img_size", None)  # e.g. a ViT made with img_size=32:
    if built is not None and tuple(built) != (height, width):  # its pretrained config still says 224
        height, width = (int(built[0]), int(built[1]))
    crop_pct = float(config.get("crop_pct") or 1.0)
    resize = round(max(height, width) / crop_pct) if crop_pct < 1.0 else None
    return ImageTransform((height, width), config["mean"], config["std"], resize=resize,
                          interpolation=str(config.get("interpolation") or "bilinear"))


def imagenet_names(timm, model) -> list[str] | None:
    """ImageNet class descriptions for a pretrained ImageNet model, when timm knows them."""
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(model)
        return list(ImageNetInfo(subset).label_descriptions()) if subset else None
    except Exception:  # older timm, or not an ImageNet model: the data folder decides
        return None
