"""CamEngine: every layer's CAM from one forward and one backward pass."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from gradcam_core.layers import resolve_layers
from gradcam_core.methods import CamMethod, normalise_maps, resolve_methods
from gradcam_core.scorecam import refuse_every_layer
from gradcam_core.state import model_lock, preserved_model_state


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """``preferred`` if given, else cuda, then mps, then cpu."""
    if preferred is not None:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def softmax(logits: Any, axis: int = -1) -> np.ndarray:
    """Softmax of numpy (or torch) logits along ``axis``, computed in float64 and returned as float32."""
    values = logits.detach().cpu().numpy() if torch.is_tensor(logits) else np.asarray(logits)
    shifted = values.astype(np.float64) - values.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=axis, keepdims=True)).astype(np.float32)


@dataclass
class CamResult:
    """What ``explain`` returns.

    ``logits`` (B, num_classes) and ``targets`` (B,) — or (B, K) from ``explain_classes``/``explain_topk`` —
    and ``cams[method][layer]``: (B, h, w) maps — (B, K, h, w) for several targets — at the layer's own
    resolution, ReLU'd and min-max scaled to [0, 1] per map. numpy arrays unless ``return_tensors=True``.
    """

    logits: Any
    targets: Any
    cams: dict[str, dict[str, Any]]
    layers: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)

    def probabilities(self) -> np.ndarray:
        return softmax(self.logits, axis=1)


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


class CamEngine:
    """Grad-CAM and friends for any PyTorch image classifier, for every Conv2d at once.

    One ``explain`` call runs one forward pass with a forward hook on each requested Conv2d (capturing its
    output before any in-place op that follows), one ``torch.autograd.grad`` for all layers (batched over
    targets when several are asked for), and computes each method's maps from those tensors. Calls are
    serialised per model with a lock, so one engine can serve several threads.

    The caller's model is left as it was (training flags, ``requires_grad``, ``.grad``, hooks), also when a
    call raises. The one change the constructor makes is placing the model on ``device``.
    """

    def __init__(self, model: nn.Module, device: str | torch.device | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"CamEngine needs a torch.nn.Module, got {type(model).__name__}")
        if isinstance(model, torch.jit.ScriptModule):
            raise TypeError(
                "CamEngine cannot explain a TorchScript module: PyTorch does not allow forward hooks on it, and "
                "every CAM method reads layers through one; load its weights into the eager model class instead "
                "(model.load_state_dict(scripted.state_dict()))"
            )
        self.model = model
        self.device = pick_device(device)
        if any(p.device != self.device for p in model.parameters()):
            model.to(self.device)
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        self.in_channels = first_conv.in_channels if first_conv is not None else None
        param = next(model.parameters(), None)
        self.dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32

    @property
    def lock(self):
        return model_lock(self.model)

    # ----------------------------------------------------------------------------------------- inputs
    def _check_images(self, images: Any) -> torch.Tensor:
        if not torch.is_tensor(images):
            hint = " (use torch.from_numpy)" if isinstance(images, np.ndarray) else " (apply the model's transform)"
            raise TypeError(f"images must be a torch.Tensor of shape (B, 3, H, W), got {type(images).__name__}"
                            + hint)
        if not images.is_floating_point():
            raise TypeError(
                f"images must be a float tensor normalised for the model, got dtype {images.dtype}; "
                "convert with images.float() / 255 and apply the model's normalisation"
            )
        if images.ndim == 3:
            raise ValueError(
                f"images has shape {tuple(images.shape)}; expected a batch (B, C, H, W): "
                "use images.unsqueeze(0) for a single image"
            )
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(f"images has shape {tuple(images.shape)}; expected (B, C, H, W) with B >= 1")
        if self.in_channels is not None and images.shape[1] != self.in_channels:
            raise ValueError(
                f"images have {images.shape[1]} channels but the model's first Conv2d expects "
                f"{self.in_channels}; shape was {tuple(images.shape)} (channels-last input needs "
                ".permute(0, 3, 1, 2))"
            )
        if not torch.isfinite(images).all():
            raise ValueError("images contain NaN or infinite values")
        return images.detach().to(device=self.device, dtype=self.dtype)

    @staticmethod
    def _target_matrix(targets: Any, logits: torch.Tensor) -> torch.Tensor:
        """(B, K) long tensor of class indices on the logits' device."""
        batch, num_classes = logits.shape
        if targets is None:
            matrix = logits.argmax(dim=1, keepdim=True)
        elif isinstance(targets, tuple) and len(targets) == 2 and targets[0] == "topk":
            k = int(targets[1])
            if not 1 <= k <= num_classes:
                raise ValueError(f"k={k} must be between 1 and the number of classes ({num_classes})")
            matrix = logits.topk(k, dim=1).indices
        else:
            array = np.asarray(targets.cpu() if torch.is_tensor(targets) else targets)
            if array.dtype.kind not in "iu" and not (array.dtype.kind == "f" and np.all(array == np.round(array))):
                raise TypeError(f"targets must be class indices (ints), got {array.dtype}: {array!r}"[:200])
            array = array.astype(np.int64)
            if array.ndim == 0:
                array = np.full((batch, 1), int(array))
            elif array.ndim == 1:
                if array.shape[0] != batch:
                    raise ValueError(f"got {array.shape[0]} targets for a batch of {batch} images")
                array = array[:, None]
            elif array.ndim != 2 or array.shape[0] != batch or array.shape[1] == 0:
                raise ValueError(f"targets of shape {array.shape} do not fit a batch of {batch} images")
            bad = array[(array < 0) | (array >= num_classes)]
            if bad.size:
                raise ValueError(f"target class {int(bad[0])} is out of range: the model has {num_classes} classes")
            matrix = torch.as_tensor(array, device=logits.device)
        return matrix.long()

    # --------------------------------------------------------------------------------------- the pass
    def _run(self, images, layers, targets, methods, return_tensors: bool) -> tuple[CamResult, bool]:
        method_objs: list[CamMethod] = resolve_methods(methods)
        refuse_every_layer(layers, method_objs)
        x = self._check_images(images)
        with self.lock, preserved_model_state(self.model), torch.inference_mode(False), torch.enable_grad():
            modules = resolve_layers(self.model, layers)
            names = list(modules)
            self.model.eval()
            x = x.clone().requires_grad_(True)
            captured: dict[str, torch.Tensor] = {}

            def make_hook(layer: str):
                def hook(_module, _inputs, output):
                    # Keep the conv output itself for values and gradients, and hand the rest of the network
                    # a copy, so a following ReLU(inplace=True) changes the copy and not what we keep.
                    captured[layer] = output
                    return output.clone()

                return hook

            handles = [module.register_forward_hook(make_hook(name)) for name, module in modules.items()]
            try:
                output = self.model(x)
            finally:
                for handle in handles:
                    handle.remove()
            logits = logits_from_output(output, batch_size=x.shape[0])
            not_run = [name for name in names if name not in captured]
            if not_run:
                raise ValueError(
                    f"layer(s) {', '.join(repr(n) for n in not_run[:5])} did not run in the forward pass, "
                    "so they have no activation to explain; pick a layer the model uses"
                )
            target_matrix = self._target_matrix(targets, logits.detach())
            k = target_matrix.shape[1]
            acts = [captured[name] for name in names]
            grads: list[torch.Tensor | None] = [None] * len(acts)
            if any(m.needs_gradients for m in method_objs):
                grads = self._gradients(logits, target_matrix, acts, names)

            cams: dict[str, dict[str, torch.Tensor]] = {m.name: {} for m in method_objs}
            with torch.no_grad():
                for name, act, grad in zip(names, acts, grads, strict=True):
                    act = act.detach()
                    for method in method_objs:
                        if method.needs_gradients:
                            # (K, B, C, h, w) gradients against (B, C, h, w) activations
                            kb = grad.shape[0] * grad.shape[1]
                            acts_k = act.unsqueeze(0).expand_as(grad).reshape(kb, *act.shape[1:])
                            raw = method.raw_map(acts_k, grad.reshape(kb, *act.shape[1:]))
                            maps = raw.reshape(k, act.shape[0], *raw.shape[1:]).transpose(0, 1)
                        elif getattr(method, "needs_model", False):  # Score-CAM: forwards of masked inputs
                            maps = method.model_map(self, x, act, target_matrix)
                        else:
                            maps = method.raw_map(act, None).unsqueeze(1).expand(-1, k, -1, -1)
                        cams[method.name][name] = normalise_maps(maps.float())
            logits_out = logits.detach().float()
        captured.clear()
        del acts, grads, output, x
        result = self._package(logits_out, target_matrix, cams, names, [m.name for m in method_objs],
                               return_tensors)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return result, k

    @staticmethod
    def _gradients(logits, target_matrix, acts, names) -> list[torch.Tensor]:
        """dScore/dA for every layer at once; (K, B, C, h, w) per layer."""
        scores = logits.gather(1, target_matrix)  # (B, K)
        k = scores.shape[1]
        if k == 1:
            grads = torch.autograd.grad(scores.sum(), acts, allow_unused=True)
            grads = [g.unsqueeze(0) if g is not None else None for g in grads]
        else:
            eye = torch.eye(k, device=scores.device, dtype=scores.dtype)
            grad_outputs = eye[:, None, :].expand(k, scores.shape[0], k)
            try:
                grads = torch.autograd.grad(scores, acts, grad_outputs=grad_outputs, is_grads_batched=True,
                                            allow_unused=True)
            except RuntimeError:
                # An op without a batching rule: one backward per target on the same graph.
                per_target = [
                    torch.autograd.grad(scores[:, j].sum(), acts, retain_graph=j < k - 1, allow_unused=True)
                    for j in range(k)
                ]
                grads = [None if parts[0] is None else torch.stack(parts)
                         for parts in zip(*per_target, strict=True)]
        unused = [name for name, g in zip(names, grads, strict=True) if g is None]
        if unused:
            raise ValueError(
                f"the output of layer(s) {', '.join(repr(n) for n in unused[:5])} does not influence the "
                "class score, so its gradient does not exist and a gradient-based CAM would be meaningless; "
                "pick a layer on the path to the classifier (or use 'eigencam', which needs no gradient)"
            )
        return list(grads)

    @staticmethod
    def _package(logits, target_matrix, cams, names, method_names, return_tensors) -> CamResult:
        if return_tensors:
            return CamResult(logits, target_matrix, cams, names, method_names)
        return CamResult(
            logits=logits.cpu().numpy().astype(np.float32),
            targets=target_matrix.cpu().numpy().astype(np.int64),
            cams={m: {layer: t.cpu().numpy().astype(np.float32) for layer, t in per.items()}
                  for m, per in cams.items()},
            layers=names,
            methods=method_names,
        )

    # ------------------------------------------------------------------------------------ public API
    def explain(
        self,
        images: torch.Tensor,
        layers: Iterable[str] | str | None = None,
        targets: int | Sequence[int] | None = None,
        methods: Iterable[str] | str = ("gradcam",),
        *,
        return_tensors: bool = False,
    ) -> CamResult:
        """CAMs of ``images`` (B, 3, H, W), normalised for the model, for one target per image.

        targets: None = the predicted class per image; an int = that class for all; B ints = one per image.
        Returns ``res.cams[method][layer]`` of shape (B, h, w); see ``CamResult``.
        """
        if targets is not None and np.ndim(targets.cpu() if torch.is_tensor(targets) else targets) > 1:
            raise ValueError("explain takes one target per image; use explain_classes for (B, K) targets")
        result, _ = self._run(images, layers, targets, methods, return_tensors)
        result.targets = result.targets[:, 0]
        result.cams = {m: {layer: maps[:, 0] for layer, maps in per.items()} for m, per in result.cams.items()}
        return result

    def explain_classes(self, images, classes, layers=None, methods=("gradcam",), *, return_tensors=False):
        """CAMs for K classes per image — ``classes`` is (B, K) — from one forward and one batched backward.

        ``res.cams[method][layer]`` has shape (B, K, h, w) and ``res.targets`` (B, K).
        """
        result, _ = self._run(images, layers, classes, methods, return_tensors)
        return result

    def explain_topk(self, images, k: int = 5, layers=None, methods=("gradcam",), *, return_tensors=False):
        """CAMs for each image's k highest-scoring classes (best first), one forward and one batched backward."""
        result, _ = self._run(images, layers, ("topk", k), methods, return_tensors)
        return result

    def _forward(self, images, capture: dict[str, str] | None = None, batch_size: int = 64):
        """No-grad forward in eval mode, in batches; optionally capture module outputs ('out') or inputs ('in').

        Returns (logits, {module: tensor}) on the engine's device.
        """
        x_all = self._check_images(images)
        modules = dict(self.model.named_modules())
        capture = capture or {}
        for name in capture:
            if name not in modules:
                raise ValueError(f"module {name!r} not found in {type(self.model).__name__}")
        outputs: dict[str, list[torch.Tensor]] = {name: [] for name in capture}
        logits_parts = []
        with self.lock, preserved_model_state(self.model), torch.no_grad():
            self.model.eval()

            def make_hook(name: str, what: str):
                def hook(_module, inputs, output):
                    value = inputs[0] if what == "in" else output
                    outputs[name].append(value.detach().clone())

                return hook

            handles = [modules[name].register_forward_hook(make_hook(name, what)) for name, what in capture.items()]
            try:
                for start in range(0, x_all.shape[0], batch_size):
                    batch = x_all[start:start + batch_size]
                    logits_parts.append(logits_from_output(self.model(batch), batch.shape[0]).float())
            finally:
                for handle in handles:
                    handle.remove()
        return torch.cat(logits_parts), {name: torch.cat(parts) for name, parts in outputs.items()}

    def predict(self, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """Logits (B, num_classes) as float32 numpy, from a no-grad forward in eval mode."""
        logits, _ = self._forward(images, batch_size=batch_size)
        return logits.cpu().numpy()

    def topk(self, images: torch.Tensor, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (B, k), class indices (B, k)), highest first."""
        logits, _ = self._forward(images)
        k = min(int(k), logits.shape[1])
        probs, indices = torch.softmax(logits, dim=1).topk(k, dim=1)
        return probs.cpu().numpy(), indices.cpu().numpy().astype(np.int64)

    def features(self, images: torch.Tensor, module: str, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(features (B, D), logits (B, num_classes)): the flattened input of ``module`` (e.g. the final
        classifier, giving penultimate features for t-SNE) from a no-grad forward."""
        logits, captured = self._forward(images, {module: "in"}, batch_size=batch_size)
        feats = captured[module].flatten(start_dim=1)
        return feats.float().cpu().numpy(), logits.cpu().numpy()

    def activations(self, images: torch.Tensor, layers: Iterable[str] | str | None = None) -> dict[str, np.ndarray]:
        """Raw outputs (B, C, h, w) of the given Conv2d layers (default all) from one no-grad forward."""
        names = list(resolve_layers(self.model, layers))
        _, captured = self._forward(images, {name: "out" for name in names})
        return {name: captured[name].float().cpu().numpy() for name in names}
