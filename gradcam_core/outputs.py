"""Reading class scores out of whatever a classifier returns (a tensor, a tuple, a dict, an object with ``.logits``)."""

from __future__ import annotations

from typing import Any

import torch


def logits_from_output(output: Any, batch_size: int | None = None) -> torch.Tensor:
    """The (B, num_classes) logits inside a model's output: a tensor, the first tensor of a tuple/list,
    the ``logits`` entry of a dict (else its first tensor), or an object's ``.logits`` attribute."""
    tensor = output
    if isinstance(output, dict):
        tensor = output.get("logits")
        if tensor is None:
            tensor = next((v for v in output.values() if torch.is_tensor(v)), None)
    elif isinstance(output, (tuple, list)):
        tensor = next((v for v in output if torch.is_tensor(v)), None)
    elif not torch.is_tensor(output) and torch.is_tensor(getattr(output, "logits", None)):
        tensor = output.logits
    if not torch.is_tensor(tensor):
        raise ValueError(
            f"the model returned {type(output).__name__}, which holds no logits tensor; Grad-CAM needs the "
            "model to return (B, num_classes) class scores (a tensor, a tuple whose first tensor is the "
            "logits, or a dict with a 'logits' key)"
        )
    if tensor.ndim != 2 or (batch_size is not None and tensor.shape[0] != batch_size):
        raise ValueError(
            f"the model's output has shape {tuple(tensor.shape)}, expected (batch={batch_size}, num_classes); "
            "a classifier for Grad-CAM must return one score per class per image (for a segmentation or "
            "detection model, wrap it so it returns the class scores you want explained)"
        )
    return tensor


