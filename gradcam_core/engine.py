"""CamEngine: every layer's CAM from one forward and one backward pass."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from gradcam_core.layers import (
    CapturedOutput,
    NotAFeatureMap,
    OutputCapture,
    Reshape,
    custom_reshape,
    extra_tokens_hint,
    first_tensor,
    layout_for,
    not_a_feature_map,
    resolve_layers,
)
from gradcam_core.methods import CamMethod, normalise_maps, resolve_methods, weighted_sum
from gradcam_core.outputs import logits_from_output
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


# model -> sets of layer names whose backward must run down to the input image (see _streamed_gradient_maps)
_ROOT_AT_INPUT: weakref.WeakKeyDictionary[nn.Module, set[frozenset[str]]] = weakref.WeakKeyDictionary()


def _normalise_all(raw: dict[str, dict[str, torch.Tensor]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``normalise_maps`` of every method's map at every layer, in one call per map size instead of one per map
    (a resnet50 sweep has 53 layers but 5 sizes; per map it was ~7 small ops each, a millisecond in all)."""
    groups: dict[tuple, list[tuple[str, str]]] = {}
    for method, maps in raw.items():
        for name in names:
            groups.setdefault(tuple(maps[name].shape[-2:]), []).append((method, name))
    cams: dict[str, dict[str, Any]] = {method: dict.fromkeys(names) for method in raw}
    for keys in groups.values():
        parts = [raw[method][name] for method, name in keys]
        stacked = normalise_maps(torch.cat([p.reshape(-1, *p.shape[-2:]) for p in parts]).float())
        for (method, name), part, normalised in zip(keys, parts, stacked.split([p[..., 0, 0].numel() for p in parts]),
                                                     strict=True):
            cams[method][name] = normalised.view(part.shape)
    return cams


def _unused_layers_error(unused: Sequence[str]) -> ValueError:
    return ValueError(
        f"the output of layer(s) {', '.join(repr(n) for n in unused[:5])} does not influence the class score "
        "(no gradient reaches it on the way from the score back to the image), so a gradient-based CAM would be "
        "meaningless; pick a layer on the path to the classifier (or use 'eigencam', which needs no gradient)"
    )


def _streamed_gradient_maps(scores, root, captured, names, methods) -> tuple[dict, list[str]]:
    """One target per image: one backward from the score, and what each method needs from a layer's gradient taken
    in a tensor hook the moment that gradient dScore/dA is complete, so no gradient outlives its use: the whole map
    for methods weighting each pixel, the channel weights for those weighting channels (``weights_channels``),
    whose weighted sums of the activations follow after the backward. Returns the maps and the layers whose
    gradient never came.

    The backward runs down to ``root``: the input image, or (None) the first layer the forward pass reached,
    which saves the first layer's own backward (3-5% of a resnet50 or vit_b_16 pass) and reaches every layer
    downstream of it, i.e. all of them in a network with one stem. Holding every layer's gradient until the end
    instead (what ``torch.autograd.grad(score, activations)`` does) made the allocator take fresh pages for the
    rest of the backward: ~40 MB and 10k page faults per resnet50 sweep. The hooks sit on the kept output tensors
    themselves, not on modules.
    """
    raw: dict[str, dict[str, torch.Tensor]] = {m.name: {} for m in methods}
    weights: dict[str, dict[str, torch.Tensor]] = {m.name: {} for m in methods if m.weights_channels}
    reached: list[str] = []

    def make_hook(name: str, entry: CapturedOutput):
        def on_gradient(grad):
            with torch.no_grad():
                acts, grads = entry.feature_map(name), entry.layout.apply(grad, name)
                for method in methods:
                    if method.weights_channels:
                        weights[method.name][name] = method.channel_weights(acts, grads)
                    else:
                        raw[method.name][name] = method.raw_map(acts, grads).unsqueeze(1)
            reached.append(name)

        return on_gradient

    if root is None:
        root = next((entry.output for entry in captured.values() if entry.output.requires_grad), None)
    handles = []
    try:
        for name in names:
            output = captured[name].output
            if output.requires_grad:
                handles.append(output.register_hook(make_hook(name, captured[name])))
        if root is not None:
            torch.autograd.grad(scores.sum(), root, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():  # the weighted sums, after the backward: reading activations inside it slowed it down
        for method_name, per_layer in weights.items():
            for name, layer_weights in per_layer.items():
                raw[method_name][name] = weighted_sum(layer_weights, captured[name].feature_map(name)).unsqueeze(1)
    reached_set = set(reached)
    return raw, [name for name in names if name not in reached_set]


def _batched_gradient_maps(scores, captured, names, methods) -> dict[str, dict[str, torch.Tensor]]:
    """K targets per image: dScore_k/dA for every layer from one batched backward, then the maps."""
    k, batch = scores.shape[1], scores.shape[0]
    acts = [captured[name].output for name in names]
    unused = [name for name, a in zip(names, acts, strict=True) if not a.requires_grad]
    if unused:
        raise _unused_layers_error(unused)
    eye = torch.eye(k, device=scores.device, dtype=scores.dtype)
    grad_outputs = eye[:, None, :].expand(k, batch, k)
    try:
        grads = torch.autograd.grad(scores, acts, grad_outputs=grad_outputs, is_grads_batched=True,
                                    allow_unused=True)
    except RuntimeError:
        # An op without a batching rule: one backward per target on the same graph.
        per_target = [torch.autograd.grad(scores[:, j].sum(), acts, retain_graph=j < k - 1, allow_unused=True)
                      for j in range(k)]
        grads = [None if parts[0] is None else torch.stack(parts) for parts in zip(*per_target, strict=True)]
    unused = [name for name, g in zip(names, grads, strict=True) if g is None]
    if unused:
        raise _unused_layers_error(unused)
    raw: dict[str, dict[str, torch.Tensor]] = {m.name: {} for m in methods}
    with torch.no_grad():
        for name, grad in zip(names, grads, strict=True):
            entry = captured[name]
            layer_acts = entry.feature_map(name)  # (B, C, h, w)
            layer_grads = entry.layout.apply(grad.flatten(0, 1), name)  # (K*B, C, h, w), target-major
            acts_k = layer_acts.unsqueeze(0).expand(k, *layer_acts.shape).reshape(layer_grads.shape)
            for method in methods:
                maps = method.raw_map(acts_k, layer_grads)
                raw[method.name][name] = maps.reshape(k, batch, *maps.shape[1:]).transpose(0, 1)
    return raw


class CamEngine:
    """Grad-CAM and friends for any PyTorch image classifier, for every layer at once.

    One ``explain`` call runs one forward pass with a forward hook on each requested layer (keeping its output as
    it left the module, see ``OutputCapture``), one backward for all layers (batched over targets when several
    are asked for), and computes each method's maps from those tensors (see ``_streamed_gradient_maps``). Calls
    are serialised per model with a lock, so one engine can serve several threads.

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
    def _run(self, images, layers, targets, methods, return_tensors: bool, reshape=None) -> CamResult:
        method_objs: list[CamMethod] = resolve_methods(methods)
        refuse_every_layer(layers, method_objs)
        x = self._check_images(images)
        with self.lock, preserved_model_state(self.model), torch.inference_mode(False), torch.enable_grad():
            modules = resolve_layers(self.model, layers)
            names = list(modules)
            if any(m.training for m in self.model.modules()):  # eval() walks every module; skip when a no-op
                self.model.eval()
            # A copy, so that an in-place op inside the model cannot write into the caller's images.
            x = x.clone().requires_grad_(True)
            known_roots = _ROOT_AT_INPUT.setdefault(self.model, set())
            root_at_input = frozenset(names) in known_roots
            while True:
                logits, target_matrix, raw, missing = self._pass(x, modules, reshape, targets, method_objs,
                                                                 root_at_input)
                if not missing:
                    break
                if root_at_input:
                    raise _unused_layers_error(missing)
                root_at_input = True  # a layer beside the first one's path (a second stem?): again, to the image
            if root_at_input:
                known_roots.add(frozenset(names))
            with torch.no_grad():
                cams = _normalise_all(raw, names)
            del raw, x  # release the graph's tensors now; the allocator keeps its cache for the next call
        return self._package(logits, target_matrix, cams, names, [m.name for m in method_objs], return_tensors)

    def _pass(self, x, modules, reshape, targets, method_objs, root_at_input: bool):
        """One forward and one backward: (logits, target matrix, raw maps, layers no gradient reached)."""
        output, captured = self._capture_pass(x, modules, reshape)
        logits = logits_from_output(output, batch_size=x.shape[0])
        not_run = [name for name in modules if name not in captured]
        if not_run:
            raise ValueError(
                f"layer(s) {', '.join(repr(n) for n in not_run[:5])} did not run in the forward pass, "
                "so they have no activation to explain; pick a layer the model uses"
            )
        target_matrix = self._target_matrix(targets, logits.detach())
        raw, missing = self._raw_maps(logits, target_matrix, x if root_at_input else None, captured, list(modules),
                                      method_objs, images=x)
        return logits.detach().float(), target_matrix, raw, missing

    def _capture_pass(self, x, modules, reshape) -> tuple[Any, dict[str, CapturedOutput]]:
        """The forward pass with every requested layer's output kept (see ``OutputCapture``); run again, with
        copies, in the rare case a layer's output was changed in place where it was not expected to be."""
        input_hw = (int(x.shape[2]), int(x.shape[3]))
        for _attempt in range(2):
            capture = OutputCapture(self.model, modules, input_hw, reshape)
            try:
                with capture:
                    output = self.model(x)
            except NotAFeatureMap as error:
                raise not_a_feature_map(self.model, error, tuple(x.shape[1:])) from None
            stale = capture.finish()
            if not stale:
                return output, capture.outputs
        raise ValueError(
            f"the output of layer(s) {', '.join(repr(n) for n in stale[:5])} is changed in place later in the "
            "forward pass even when the network is handed a copy of it (it is a view of a tensor that an "
            "in-place op writes to), so it cannot be read as it left the module; pick the layer after it"
        )

    def _raw_maps(self, logits, target_matrix, root, captured, names, method_objs, images) -> tuple[dict, list[str]]:
        """Each method's maps before ReLU and scaling, (B, K, h, w) per layer; and the layers no gradient reached.
        Methods that need the model (Score-CAM) run their own forwards on ``images``."""
        k = target_matrix.shape[1]
        gradient_methods = [m for m in method_objs if m.needs_gradients]
        raw: dict[str, dict[str, torch.Tensor]] = {m.name: {} for m in method_objs}
        missing: list[str] = []
        if gradient_methods:
            scores = logits.gather(1, target_matrix)  # (B, K)
            if k == 1:
                streamed, missing = _streamed_gradient_maps(scores, root, captured, names, gradient_methods)
                raw.update(streamed)
            else:
                raw.update(_batched_gradient_maps(scores, captured, names, gradient_methods))
        with torch.no_grad():
            for method in (m for m in method_objs if not m.needs_gradients):
                for name in names:
                    acts = captured[name].feature_map(name).detach()
                    if getattr(method, "needs_model", False):  # Score-CAM: forwards of masked inputs
                        raw[method.name][name] = method.model_map(self, images.detach(), acts, target_matrix)
                    else:
                        raw[method.name][name] = method.raw_map(acts, None).unsqueeze(1).expand(-1, k, -1, -1)
        return raw, missing

    @staticmethod
    def _package(logits, target_matrix, cams, names, method_names, return_tensors) -> CamResult:
        if return_tensors:
            return CamResult(logits, target_matrix, cams, names, method_names)
        # One device-to-host copy for everything: a per-layer .cpu() would wait on the device once per layer.
        tensors = [logits] + [t for per in cams.values() for t in per.values()]
        host = torch.cat([t.reshape(-1) for t in tensors]).cpu().numpy()
        arrays, offset = [], 0
        for tensor in tensors:
            arrays.append(host[offset:offset + tensor.numel()].reshape(tuple(tensor.shape)))
            offset += tensor.numel()
        parts = iter(arrays[1:])
        return CamResult(
            logits=arrays[0],
            targets=target_matrix.cpu().numpy().astype(np.int64),
            cams={m: {layer: next(parts) for layer in per} for m, per in cams.items()},
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
        reshape: Reshape = None,
        *,
        return_tensors: bool = False,
    ) -> CamResult:
        """CAMs of ``images`` (B, 3, H, W), normalised for the model, for one target per image.

        layers: None = every Conv2d; else any module names (``list_cam_layers`` lists the useful ones). Token
        outputs (B, N, C) are put on the input's patch grid, channels-last (B, h, w, C) ones permuted.
        targets: None = the predicted class per image; an int = that class for all; B ints = one per image.
        reshape: a callable mapping a layer's output (B, ...) to (B, C, h, w), used for every layer instead of
        the automatic reading, or a dict {layer: callable} for some layers only.
        Returns ``res.cams[method][layer]`` of shape (B, h, w); see ``CamResult``.
        """
        if targets is not None and np.ndim(targets.cpu() if torch.is_tensor(targets) else targets) > 1:
            raise ValueError("explain takes one target per image; use explain_classes for (B, K) targets")
        result = self._run(images, layers, targets, methods, return_tensors, reshape)
        result.targets = result.targets[:, 0]
        result.cams = {m: {layer: maps[:, 0] for layer, maps in per.items()} for m, per in result.cams.items()}
        return result

    def explain_classes(self, images, classes, layers=None, methods=("gradcam",), reshape: Reshape = None, *,
                        return_tensors=False):
        """CAMs for K classes per image — ``classes`` is (B, K) — from one forward and one batched backward.

        ``res.cams[method][layer]`` has shape (B, K, h, w) and ``res.targets`` (B, K).
        """
        return self._run(images, layers, classes, methods, return_tensors, reshape)

    def explain_topk(self, images, k: int = 5, layers=None, methods=("gradcam",), reshape: Reshape = None, *,
                     return_tensors=False):
        """CAMs for each image's k highest-scoring classes (best first), one forward and one batched backward."""
        return self._run(images, layers, ("topk", k), methods, return_tensors, reshape)

    def _forward(self, images, capture: dict[str, str] | None = None, batch_size: int = 64):
        """No-grad forward in eval mode, in batches; optionally capture module outputs ('out': the first tensor
        of a tuple output) or inputs ('in').

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
                def hook(module, inputs, output):
                    value = inputs[0] if what == "in" else first_tensor(output)[0]
                    if value is None:
                        raise NotAFeatureMap(name, module, f"a {type(output).__name__} holding no tensor")
                    outputs[name].append(value.detach().clone())

                return hook

            handles = [modules[name].register_forward_hook(make_hook(name, what)) for name, what in capture.items()]
            try:
                for start in range(0, x_all.shape[0], batch_size):
                    batch = x_all[start:start + batch_size]
                    logits_parts.append(logits_from_output(self.model(batch), batch.shape[0]).float())
            except NotAFeatureMap as error:
                raise not_a_feature_map(self.model, error, tuple(x_all.shape[1:])) from None
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

    def activations(self, images: torch.Tensor, layers: Iterable[str] | str | None = None,
                    reshape: Reshape = None) -> dict[str, np.ndarray]:
        """Feature maps (B, C, h, w) of the given layers (default every Conv2d) from one no-grad forward: a layer's
        output as it left the module, token and channels-last outputs reshaped as ``explain`` does."""
        modules = resolve_layers(self.model, layers)
        _, captured = self._forward(images, {name: "out" for name in modules})
        input_hw = tuple(int(s) for s in images.shape[-2:])
        maps = {}
        for name, module in modules.items():
            layout = layout_for(module, captured[name].shape, input_hw, extra_tokens_hint(self.model),
                                custom_reshape(reshape, name))
            if layout is None:
                error = NotAFeatureMap(name, module, f"an output of shape {tuple(captured[name].shape)}")
                raise not_a_feature_map(self.model, error, tuple(images.shape[1:]))
            maps[name] = layout.apply(captured[name], name).float().contiguous().cpu().numpy()
        return maps
