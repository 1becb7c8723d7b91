"""Grad-CAM core: pure torch + numpy, usable from a notebook, a CLI or the dashboard.

    from gradcam_core import CamEngine, list_conv_layers
    engine = CamEngine(model)
    res = engine.explain(images)            # every Conv2d, predicted class, Grad-CAM
    res.cams["gradcam"][list_conv_layers(model)[-1]]   # (B, h, w) in [0, 1]
"""

from gradcam_core.engine import CamEngine, CamResult, logits_from_output, pick_device, softmax
from gradcam_core.layers import layer_output_shapes, list_cam_layers, list_conv_layers, resolve_layers
from gradcam_core.methods import CAM_METHODS, METHOD_NAMES, normalise_maps
from gradcam_core.render import COLORMAPS, colorize, denormalise, heatmap_image, overlay, upsample

__all__ = [
    "CAM_METHODS",
    "COLORMAPS",
    "METHOD_NAMES",
    "CamEngine",
    "CamResult",
    "colorize",
    "denormalise",
    "heatmap_image",
    "layer_output_shapes",
    "list_cam_layers",
    "list_conv_layers",
    "logits_from_output",
    "normalise_maps",
    "overlay",
    "pick_device",
    "resolve_layers",
    "softmax",
    "upsample",
]
