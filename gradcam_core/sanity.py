"""Sanity check for saliency methods (Adebayo et al. 2018): cascading model-parameter randomisation.

The model's parameterised layers are re-initialised from the top (the classifier) down, one group at a time and
cumulatively, on a deep copy (the caller's model is never touched). After each step every method's map at one
layer is recomputed for the same images and the same target classes (the original model's predictions), and
compared with the original map: Spearman rank correlation and SSIM, both on the maps upsampled to the input.

A method whose maps explain the model must change when what the model learned is destroyed. Verdict: a method
passes when its mean rank correlation with the original, once every group is random, is below ``threshold``
(0.5 by default: at 0.5 the ranking keeps a quarter of its variance); else it fails, as an edge detector that
ignores the model does (correlation 1). Adebayo et al. judge the curves by eye; the threshold makes the page's
sentence reproducible, and the curves stay available.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gradcam_core.engine import CamEngine
from gradcam_core.methods import CAM_METHODS

MapFn = Callable[[CamEngine, torch.Tensor, str, np.ndarray], np.ndarray]
ProgressFn = Callable[[int, int], None]
SANITY_METHODS: tuple[str, ...] = ("gradcam", "gradcampp", "hirescam", "xgradcam", "layercam", "eigencam")


@dataclass
class SanityResult:
    """``spearman[method]`` and ``ssim[method]``: (S, B) for the S cumulative randomisation ``steps`` (labels,
    e.g. 'fc', 'layer4.1'; ``step_modules`` the module names re-initialised at each) and B images;
    ``passed``/``verdicts`` per method."""

    layer: str
    methods: list[str]
    steps: list[str]
    step_modules: list[list[str]]
    spearman: dict[str, np.ndarray]
    ssim: dict[str, np.ndarray]
    threshold: float
    passed: dict[str, bool]
    verdicts: dict[str, str]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (method, step) with the mean correlation and SSIM over the images, for a chart."""
        return [
            {"method": method, "step": index + 1, "randomised": self.steps[index],
             "spearman": float(self.spearman[method][index].mean()), "ssim": float(self.ssim[method][index].mean())}
            for method in self.methods for index in range(len(self.steps))
        ]


# ---------------------------------------------------------------------------------------- map similarity
def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of each row of (B, P), ties sharing their average rank (as scipy.stats.rankdata)."""
    ranks = np.empty(values.shape, dtype=np.float64)
    for row, order in enumerate(np.argsort(values, axis=1, kind="stable")):
        ordered = values[row, order]
        starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
        group = np.cumsum(starts_group) - 1
        starts = np.flatnonzero(starts_group)
        sizes = np.diff(np.r_[starts, ordered.size])
        ranks[row, order] = (starts + (sizes - 1) / 2)[group]
    return ranks


def spearman(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of (B, H, W) maps, (B,). A constant map carries no ranking and
    correlates 0 with anything."""
    a = _average_ranks(np.asarray(first, dtype=np.float64).reshape(len(first), -1))
    b = _average_ranks(np.asarray(second, dtype=np.float64).reshape(len(second), -1))
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.where(norm > 0, (a * b).sum(axis=1) / np.where(norm > 0, norm, 1), 0.0)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-offsets**2 / (2 * sigma**2))
    return taps / taps.sum()


def ssim(first: np.ndarray, second: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Mean SSIM (Wang et al. 2004) of each pair of (B, H, W) maps, (B,): 11x11 Gaussian window, sigma 1.5,
    K1 = 0.01, K2 = 0.03, averaged over the window positions that fit the map ('valid'): the definition of
    scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)`` (not installed
    here, so not compared; the test checks a by-hand window sum). Maps smaller than 11 px use the largest odd
    window that fits, sigma scaled alike."""
    a = torch.as_tensor(np.asarray(first, dtype=np.float64))[:, None]
    b = torch.as_tensor(np.asarray(second, dtype=np.float64))[:, None]
    size = min(11, *a.shape[-2:])
    size -= 1 - size % 2
    taps = _gaussian_window(size, 1.5 * size / 11)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, taps.view(1, 1, 1, -1)), taps.view(1, 1, -1, 1))

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mean_a, mean_b = blur(a), blur(b)
    var_a = blur(a * a) - mean_a**2
    var_b = blur(b * b) - mean_b**2
    covariance = blur(a * b) - mean_a * mean_b
    index = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2))
    return index.mean(dim=(1, 2, 3)).numpy()


# --------------------------------------------------------------------------------------- randomisation
def cascade_groups(model: nn.Module, depth: int = 2) -> dict[str, list[str]]:
    """{label: module names}: modules with parameters of their own, grouped by the first ``depth`` parts of their
    names (resnet18: 'fc', 'layer4.1', 'layer4.0', ..., 'bn1', 'conv1'), top (output side) first."""
    groups: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            groups.setdefault(".".join(name.split(".")[:depth]), []).append(name)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no parameters to randomise")
    return dict(reversed(groups.items()))


def randomise_modules(model: nn.Module, names: Sequence[str], seed: int = 0) -> None:
    """Re-initialise the named modules in place, reproducibly: ``reset_parameters()`` where a module has it
    (Conv/Linear: fresh Kaiming-uniform weights; norms: identity affine and fresh running statistics), else every
    own parameter drawn from N(0, its former std). The global RNG is left as it was."""
    modules = dict(model.named_modules())
    cuda_devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda_devices), torch.no_grad():
        torch.manual_seed(int(seed))
        for name in names:
            module = modules[name]
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
                continue
            for param in module.parameters(recurse=False):
                std = float(param.std()) if param.numel() > 1 else 0.0
                param.normal_(0.0, std if std > 0 else 0.02)


def _maps(engine: CamEngine, images: torch.Tensor, layer: str, targets: np.ndarray, methods: list[str],
          extra: Mapping[str, MapFn]) -> dict[str, np.ndarray]:
    """Each method's (B, H, W) map at ``layer``, upsampled to the input."""
    size = tuple(images.shape[-2:])
    found: dict[str, Any] = {}
    if methods:
        found.update(engine.explain(images, layers=[layer], targets=targets, methods=methods).cams)
        found = {method: per_layer[layer] for method, per_layer in found.items()}
    for name, method in extra.items():
        found[name] = np.asarray(method(engine, images, layer, targets), dtype=np.float32)
    return {name: F.interpolate(torch.as_tensor(maps, dtype=torch.float32)[:, None], size=size, mode="bilinear",
                                align_corners=False)[:, 0].numpy() for name, maps in found.items()}


def _verdict(title: str, final: float, steps: int, threshold: float) -> tuple[bool, str]:
    if final < threshold:
        return True, (f"{title} passes: its maps change when the model's weights are randomised (rank correlation "
                      f"with the original {final:.2f} once all {steps} layer groups are random, below {threshold}), "
                      "so they depend on what the model learned.")
    return False, (f"{title} fails: its maps stay alike when the model's weights are randomised (rank correlation "
                   f"{final:.2f} once all {steps} layer groups are random, threshold {threshold}), so they do not "
                   "show what the model learned; do not use them to explain this model.")


def sanity_check(engine: CamEngine, images: torch.Tensor, layer: str, methods: Sequence[str] = SANITY_METHODS, *,
                 targets: Any = None, extra_methods: Mapping[str, MapFn] | None = None,
                 groups: Mapping[str, Sequence[str]] | None = None, depth: int = 2, seed: int = 0,
                 threshold: float = 0.5, progress: ProgressFn | None = None) -> SanityResult:
    """Cascading randomisation of a copy of ``engine.model``; see the module docstring.

    methods: engine method names; ``extra_methods`` {name: fn(engine, images, layer, targets) -> (B, h, w)} adds
    others (fn gets the randomised copy's engine). ``groups``: the cumulative steps, {label: module names}, top
    first (default ``cascade_groups(model, depth)``). targets None = the original model's predicted classes, kept
    for every step. ``progress(done, total)`` counts map computations (steps + 1). Costs one deep copy of the model
    and one ``explain`` per step; the caller's model is only read.
    """
    methods = [str(m).lower() for m in methods]
    extra = dict(extra_methods or {})
    x = engine._check_images(images)
    if targets is None:
        targets = engine.predict(x).argmax(axis=1)
    targets = np.asarray(targets.cpu() if torch.is_tensor(targets) else targets).astype(np.int64)
    with engine.lock:
        model = copy.deepcopy(engine.model)
    steps = {label: list(names) for label, names in (groups or cascade_groups(model, depth)).items()}
    copy_engine = CamEngine(model, device=engine.device)
    original = _maps(copy_engine, x, layer, targets, methods, extra)
    names = list(original)
    correlation = {name: np.zeros((len(steps), x.shape[0])) for name in names}
    structure = {name: np.zeros((len(steps), x.shape[0])) for name in names}
    if progress is not None:
        progress(1, len(steps) + 1)
    for index, group in enumerate(steps.values()):
        randomise_modules(model, group, seed=seed + index)
        current = _maps(copy_engine, x, layer, targets, methods, extra)
        for name in names:
            correlation[name][index] = spearman(original[name], current[name])
            structure[name][index] = ssim(original[name], current[name])
        if progress is not None:
            progress(index + 2, len(steps) + 1)
    verdicts = {name: _verdict(CAM_METHODS[name].title if name in CAM_METHODS else name,
                               float(correlation[name][-1].mean()), len(steps), threshold) for name in names}
    return SanityResult(layer=layer, methods=names, steps=list(steps), step_modules=list(steps.values()),
                        spearman=correlation, ssim=structure,
                        threshold=threshold, passed={n: v[0] for n, v in verdicts.items()},
                        verdicts={n: v[1] for n, v in verdicts.items()})
