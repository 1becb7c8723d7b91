"""How faithful is a saliency map to the model? Perturbation metrics, batched over images and maps.

Every metric here takes ``maps`` of shape (B, h, w) — or (B, V, h, w) for V maps per image (methods x layers,
or a map next to its random baseline) — at any resolution; they are upsampled to the input bilinearly with
half-pixel centres (``align_corners=False``, as the viewer draws them). Scores are the target's softmax
probability (``score="logit"`` for the raw logit). Everything is deterministic: ROAD's noise comes from ``seed``.

Pixel order: pixels are ranked by the upsampled map, highest first; ties keep row-major pixel order (a stable
sort), so the first-ranked of two equal pixels is the one nearer the top-left. The metrics depend on the map
only through this ranking: a strictly increasing transform of a map at the input resolution gives identical
results. (A map at a coarser resolution is ranked after upsampling, and bilinear interpolation of a transformed
map can order the interpolated pixels differently.)

- Deletion / insertion (Petsiuk et al. 2018, RISE): in ``steps`` equal steps, k_s = round(s/steps * H*W)
  top-ranked pixels (all colour channels) are replaced by the deletion baseline / revealed over the insertion
  baseline. The curve is the target score at each step, and the AUC its trapezoid area over the actual
  fractions k_s/(H*W) in [0, 1]. Baselines: deletion "zero" (0 in the model's normalised input, i.e. the
  normalisation's mean colour, as in RISE's code), insertion "blur" (Gaussian, sigma = max(H, W)/16 px, reflect
  padding: strong enough that the bundled shapes model is at chance on it; RISE's 11x11 kernel on 224 px is a
  milder blur). Either may be "zero", "blur", "mean" (per-image channel means), a number or a tensor.
  Lower deletion and higher insertion AUCs are better.
- ROAD (Rong et al. 2022): the top (MoRF) or bottom (LeRF) ``f`` share of pixels, for each f in ``fractions``
  (default 10%..90%), are removed and filled by noisy linear imputation: each removed pixel becomes the
  weighted mean of its 8 neighbours (weights 1/6 edge, 1/12 corner), solved jointly for all removed pixels, plus
  Gaussian noise (std ``noise``, in normalised units). The same sparse system as pytorch-grad-cam's
  ``NoisyLinearImputer`` (from the paper's code), solved by multigrid-preconditioned conjugate gradients on the
  device (see ``noisy_linear_impute``). The summary is the mean score over the fractions; ``road_combined`` is
  (LeRF - MoRF) / 2 as pytorch-grad-cam's ``ROADCombined`` (higher is better).
- Pointing game (Zhang et al. 2016) and energy-in-mask need no model: see ``pointing_game`` and
  ``energy_in_mask``.
- ``faithfulness_table``: all of these for N images x methods x layers, with bootstrap intervals, for the
  Faithfulness page (``table_layers`` picks the default layer and two shallower ones).

Batched: the perturbed images of every step, image and map go through the model ``batch_size`` at a time (a
chunk spans steps and images), built chunk by chunk, so at most ``batch_size`` perturbed images exist at once.
``batch_size=None`` picks about 4M input values per forward (128 images of 64 px, 27 of 224 px).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gradcam_core.engine import CamEngine, logits_from_output
from gradcam_core.layers import layer_output_shapes, list_conv_layers
from gradcam_core.methods import resolve_methods
from gradcam_core.scorecam import score_cam
from gradcam_core.state import preserved_model_state

ProgressFn = Callable[[int, int], None]
ROAD_FRACTIONS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_BATCH_SIZE = None
_VALUES_PER_FORWARD = 2**22
SCORES = ("probability", "logit")
NAMED_BASELINES = ("zero", "blur", "mean")


@dataclass
class PerturbationCurves:
    """Scores of a perturbation metric: ``fractions`` (S,) share of pixels perturbed at each point;
    ``scores`` (B, S) — (B, V, S) for (B, V, h, w) maps — the target's score at each point; ``auc`` (B,) or
    (B, V): the trapezoid area over ``fractions`` (deletion, insertion) or the mean over them (ROAD)."""

    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray


@dataclass
class _Batch:
    """Validated inputs on the engine's device: images (B, C, H, W), ranks (B, V, H*W) (0 = most salient),
    targets (B,), and whether the caller's maps had no V axis."""

    images: torch.Tensor
    ranks: torch.Tensor
    targets: torch.Tensor
    squeeze: bool


# ----------------------------------------------------------------------------------------------- inputs
def upsampled_maps(maps: Any, size: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, h, w) or (B, V, h, w) maps (numpy or torch) as a float32 tensor of (B, V, H, W) at ``size``."""
    tensor = torch.as_tensor(maps.detach() if torch.is_tensor(maps) else np.asarray(maps)).to(device, torch.float32)
    if tensor.ndim == 3:
        tensor = tensor[:, None]
    if tensor.ndim != 4 or 0 in tensor.shape:
        raise ValueError(f"maps have shape {tuple(tensor.shape)}; expected (B, h, w) or (B, V, h, w) saliency maps")
    if not torch.isfinite(tensor).all():
        raise ValueError("maps contain NaN or infinite values; replace them (e.g. np.nan_to_num) before scoring")
    if tuple(tensor.shape[-2:]) != tuple(size):
        batch, variants = tensor.shape[:2]
        tensor = F.interpolate(tensor.reshape(batch * variants, 1, *tensor.shape[-2:]), size=tuple(size),
                               mode="bilinear", align_corners=False).reshape(batch, variants, *size)
    return tensor


def saliency_ranks(maps_up: torch.Tensor) -> torch.Tensor:
    """(…, H, W) maps -> (…, H*W) int64 rank of each pixel, 0 for the most salient; ties in row-major order."""
    flat = maps_up.flatten(start_dim=-2)
    order = torch.argsort(flat, dim=-1, descending=True, stable=True)
    positions = torch.arange(flat.shape[-1], device=flat.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def _prepare(engine: CamEngine, images: Any, maps: Any, targets: Any,
             score_batch: Callable) -> tuple[_Batch, torch.Tensor]:
    """Checked inputs and the unperturbed images' logits (B, classes) from one forward (targets None: predicted)."""
    x = engine._check_images(images)
    maps_up = upsampled_maps(maps, tuple(x.shape[-2:]), x.device)
    if maps_up.shape[0] != x.shape[0]:
        raise ValueError(f"got {maps_up.shape[0]} maps for {x.shape[0]} images; pass one map (or one row of V "
                         "maps) per image")
    logits = score_batch(x, None)
    if targets is not None and np.ndim(targets.cpu() if torch.is_tensor(targets) else targets) > 1:
        raise ValueError("pass one target class per image (B,), or one int for all")
    target_vector = CamEngine._target_matrix(targets, logits)[:, 0]
    squeeze = np.ndim(maps.cpu() if torch.is_tensor(maps) else maps) == 3
    return _Batch(x, saliency_ranks(maps_up), target_vector, squeeze), logits


def _chunk_size(batch_size: int | None, images: torch.Tensor) -> int:
    """Images per forward: ``batch_size``, or for None about 4M input values (at most 128 images)."""
    if batch_size is None:
        return max(1, min(128, _VALUES_PER_FORWARD // max(1, images[0].numel())))
    if int(batch_size) < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1 (images per forward), or None for automatic")
    return int(batch_size)


def _score_batcher(engine: CamEngine, score: str, batch_size: int | None):
    """``fn(images, targets)``: the targets' scores (n,) from no-grad forwards of ``batch_size`` images at a
    time, each under the engine's lock with the model in eval mode; with targets None, the logits (n, classes)."""
    if score not in SCORES:
        raise ValueError(f"score={score!r}; choose 'probability' (softmax of the target) or 'logit'")

    def fn(images: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        parts = []
        size = _chunk_size(batch_size, images)
        for start in range(0, images.shape[0], size):
            chunk = images[start:start + size]
            with engine.lock, preserved_model_state(engine.model), torch.inference_mode():
                engine.model.eval()
                logits = logits_from_output(engine.model(chunk), chunk.shape[0]).float()
            if targets is None:
                parts.append(logits)
                continue
            values = torch.softmax(logits, dim=1) if score == "probability" else logits
            parts.append(values.gather(1, targets[start:start + chunk.shape[0], None])[:, 0])
        return torch.cat(parts)

    return fn


def baseline_images(images: torch.Tensor, baseline: str | float | torch.Tensor = "zero",
                    blur_sigma: float | None = None) -> torch.Tensor:
    """What a removed pixel becomes: "zero" (0 in the normalised input: the normalisation's mean colour),
    "blur" (Gaussian, ``blur_sigma`` px, default max(H, W) / 16, reflect padding), "mean" (each image's channel
    means), a number, or a tensor broadcastable to ``images``."""
    if torch.is_tensor(baseline):
        try:
            return torch.broadcast_to(baseline.to(images), images.shape)
        except RuntimeError as err:
            raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to the images' "
                             f"{tuple(images.shape)}") from err
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(images, float(baseline))
    if baseline == "zero":
        return torch.zeros_like(images)
    if baseline == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    if baseline == "blur":
        sigma = max(images.shape[-2:]) / 16 if blur_sigma is None else float(blur_sigma)
        return gaussian_blur(images, sigma)
    raise ValueError(f"baseline={baseline!r}; choose one of {', '.join(NAMED_BASELINES)}, a number or a tensor")


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflect padding (radius 3 sigma, at most the image size)."""
    if sigma <= 0:
        return images.clone()
    radius = max(1, min(round(3 * sigma), images.shape[-1] - 1, images.shape[-2] - 1))
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-offsets**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def _target_scores(logits: torch.Tensor, targets: torch.Tensor, score: str) -> torch.Tensor:
    values = torch.softmax(logits, dim=1) if score == "probability" else logits
    return values.gather(1, targets[:, None])[:, 0]


class _Progress:
    """Counts image forwards and reports ``progress(done, total)``; a no-op without a callback."""

    def __init__(self, callback: ProgressFn | None, total: int, done: int = 0):
        self.callback, self.total, self.done = callback, int(total), int(done)

    def advance(self, forwards: int) -> None:
        self.done += int(forwards)
        if self.callback is not None:
            self.callback(self.done, self.total)


# ------------------------------------------------------------------------------------ deletion, insertion
def _step_counts(steps: int, pixels: int) -> list[int]:
    if int(steps) < 1:
        raise ValueError(f"steps={steps} must be at least 1 (the curve has steps + 1 points)")
    return [round(s * pixels / int(steps)) for s in range(int(steps) + 1)]


def _score_points(batch: _Batch, points: int, make_chunk: Callable, score_batch: Callable,
                  batch_size: int | None, progress: _Progress) -> torch.Tensor:
    """Scores (B, V, points) of B * V * points perturbed images, built ``batch_size`` at a time by
    ``make_chunk(point, owners, ranks)`` from each image's point index (n,), owning image (n,) and pixel ranks
    (n, H*W). Point-major order, so a chunk holds few different points."""
    count, variants, pixels = batch.ranks.shape
    rows = count * variants
    ranks = batch.ranks.reshape(rows, pixels)
    size = _chunk_size(batch_size, batch.images)
    scores = torch.empty(points * rows, device=ranks.device)
    for start in range(0, points * rows, size):
        jobs = torch.arange(start, min(start + size, points * rows), device=ranks.device)
        point, row = jobs // rows, jobs % rows
        owners = row // variants
        scores[jobs] = score_batch(make_chunk(point, owners, ranks[row]), batch.targets[owners])
        progress.advance(jobs.numel())
    return scores.reshape(points, count, variants).permute(1, 2, 0)


def _transition_curve(batch: _Batch, start: torch.Tensor, end: torch.Tensor, counts: Sequence[int],
                      endpoint_scores: dict[int, torch.Tensor], score_batch: Callable, batch_size: int | None,
                      progress: _Progress) -> torch.Tensor:
    """(B, V, S): at point s the k_s top-ranked pixels come from ``end``, the rest from ``start``.

    Points with k = 0 or all pixels do not depend on the map: they are scored once per image (or taken from
    ``endpoint_scores``, keyed by k) and shared by the V maps.
    """
    count, variants, pixels = batch.ranks.shape
    curve = torch.empty(count, variants, len(counts), device=batch.ranks.device)
    for k in (0, pixels):
        if k not in endpoint_scores:
            endpoint_scores[k] = score_batch(start if k == 0 else end, batch.targets)
            progress.advance(count)
    interior = [s for s, k in enumerate(counts) if 0 < k < pixels]
    for s, k in enumerate(counts):
        if s not in interior:
            curve[:, :, s] = endpoint_scores[0 if k == 0 else pixels][:, None]
    taken = torch.as_tensor([counts[s] for s in interior], device=batch.ranks.device)

    def make_chunk(point, owners, ranks):
        take_end = (ranks < taken[point, None]).reshape(-1, 1, *start.shape[2:])
        return torch.where(take_end, end[owners], start[owners])

    if interior:
        curve[:, :, interior] = _score_points(batch, len(interior), make_chunk, score_batch, batch_size, progress)
    return curve


def _curves_result(curve: torch.Tensor, counts: Sequence[int], pixels: int, squeeze: bool, area: str):
    fractions = np.asarray(counts, dtype=np.float64) / pixels
    scores = curve.cpu().numpy().astype(np.float64)
    auc = np.trapezoid(scores, fractions, axis=-1) if area == "trapezoid" else scores.mean(axis=-1)
    if squeeze:
        scores, auc = scores[:, 0], auc[:, 0]
    return PerturbationCurves(fractions=fractions, scores=scores.astype(np.float32), auc=auc)


def _perturbation_curves(baselines: dict[str, Any], engine, images, maps, targets, steps, blur_sigma, score,
                         batch_size, progress) -> dict[str, PerturbationCurves]:
    """Deletion and/or insertion curves ({"deletion": baseline, "insertion": baseline}) from one check of the
    inputs, one forward of the unperturbed images and one ranking of the maps."""
    score_batch = _score_batcher(engine, score, batch_size)
    batch, logits = _prepare(engine, images, maps, targets, score_batch)
    pixels = batch.ranks.shape[-1]
    counts = _step_counts(steps, pixels)
    count, variants = batch.ranks.shape[:2]
    tracker = _Progress(progress, count * (1 + len(baselines) * (1 + variants * max(len(counts) - 2, 0))),
                        done=count)
    original = _target_scores(logits, batch.targets, score)
    curves = {}
    for kind, baseline in baselines.items():
        base = baseline_images(batch.images, baseline, blur_sigma)
        if kind == "deletion":
            curve = _transition_curve(batch, batch.images, base, counts, {0: original}, score_batch, batch_size,
                                      tracker)
        else:
            curve = _transition_curve(batch, base, batch.images, counts, {pixels: original}, score_batch,
                                      batch_size, tracker)
        curves[kind] = _curves_result(curve, counts, pixels, batch.squeeze, "trapezoid")
    return curves


def deletion_insertion_curves(engine: CamEngine, images: torch.Tensor, maps: Any, targets: Any = None,
                              steps: int = 20, *, deletion_baseline: str | float | torch.Tensor = "zero",
                              insertion_baseline: str | float | torch.Tensor = "blur", blur_sigma: float | None = None,
                              score: str = "probability", batch_size: int | None = DEFAULT_BATCH_SIZE,
                              progress: ProgressFn | None = None) -> tuple[PerturbationCurves, PerturbationCurves]:
    """(deletion, insertion) curves together, sharing the unperturbed forward and the ranking: what the explorer's
    chart needs (pass (B, 2, h, w) maps for a map next to its random baseline)."""
    curves = _perturbation_curves({"deletion": deletion_baseline, "insertion": insertion_baseline}, engine, images,
                                  maps, targets, steps, blur_sigma, score, batch_size, progress)
    return curves["deletion"], curves["insertion"]


def deletion_curve(engine: CamEngine, images: torch.Tensor, maps: Any, targets: Any = None, steps: int = 20, *,
                   baseline: str | float | torch.Tensor = "zero", blur_sigma: float | None = None,
                   score: str = "probability", batch_size: int | None = DEFAULT_BATCH_SIZE,
                   progress: ProgressFn | None = None) -> PerturbationCurves:
    """The target's score as the most salient pixels are replaced by ``baseline``, in ``steps`` steps.

    images (B, C, H, W) normalised for the model; maps (B, h, w) or (B, V, h, w); targets: None (predicted
    class), an int, or B ints. ``progress(done, total)`` counts image forwards. See the module docstring.
    """
    return _perturbation_curves({"deletion": baseline}, engine, images, maps, targets, steps, blur_sigma, score,
                                batch_size, progress)["deletion"]


def insertion_curve(engine: CamEngine, images: torch.Tensor, maps: Any, targets: Any = None, steps: int = 20, *,
                    baseline: str | float | torch.Tensor = "blur", blur_sigma: float | None = None,
                    score: str = "probability", batch_size: int | None = DEFAULT_BATCH_SIZE,
                    progress: ProgressFn | None = None) -> PerturbationCurves:
    """The target's score as the most salient pixels are revealed over ``baseline``, in ``steps`` steps."""
    return _perturbation_curves({"insertion": baseline}, engine, images, maps, targets, steps, blur_sigma, score,
                                batch_size, progress)["insertion"]


def deletion_auc(engine: CamEngine, images: torch.Tensor, maps: Any, targets: Any = None, steps: int = 20,
                 **options: Any) -> np.ndarray:
    """(B,) — (B, V) for (B, V, h, w) maps — trapezoid area under ``deletion_curve``; lower is better."""
    return deletion_curve(engine, images, maps, targets, steps, **options).auc


def insertion_auc(engine: CamEngine, images: torch.Tensor, maps: Any, targets: Any = None, steps: int = 20,
                  **options: Any) -> np.ndarray:
    """(B,) — (B, V) for (B, V, h, w) maps — trapezoid area under ``insertion_curve``; higher is better."""
    return insertion_curve(engine, images, maps, targets, steps, **options).auc


# ------------------------------------------------------------------------------------------------- ROAD
_NEIGHBOUR_WEIGHTS = ((1 / 12, 1 / 6, 1 / 12), (1 / 6, 0.0, 1 / 6), (1 / 12, 1 / 6, 1 / 12))
_RESTRICT_WEIGHTS = (0.25, 0.75, 0.75, 0.25)
# Below this many values a stencil is cheaper as shifted slices; above it as a depthwise conv. (Measured on a
# 2-core CPU: a depthwise conv of 3x16x16 took 27 ms with two threads under load, slices 0.03 ms; at 96x64x64
# the conv took 1.3-2.9 ms, slices 5-8 ms.)
_SLICES_UP_TO = 200_000


def _depthwise(values: torch.Tensor, taps: Any, stride: int = 1) -> torch.Tensor:
    """The same small 2-D filter on each of the (1, M, H, W) planes, as one depthwise conv."""
    kernel = torch.as_tensor(taps, dtype=values.dtype, device=values.device)
    kernel = kernel.expand(values.shape[1], 1, *kernel.shape[-2:]).contiguous()
    return F.conv2d(values, kernel, stride=stride, groups=values.shape[1])


def _neighbour_sum(values: torch.Tensor) -> torch.Tensor:
    """Each pixel's 8 neighbours of (1, M, H, W), weighted 1/6 (edges) and 1/12 (corners), zero outside."""
    padded = F.pad(values, (1, 1, 1, 1))
    if values.numel() > _SLICES_UP_TO:
        return _depthwise(padded, _NEIGHBOUR_WEIGHTS)
    # (1, 2, 1) x (1, 2, 1) / 12 is the stencil plus 4/12 of the centre.
    rows = padded[..., :-2, :] + padded[..., 2:, :] + 2 * padded[..., 1:-1, :]
    return (rows[..., :-2] + rows[..., 2:] + 2 * rows[..., 1:-1] - 4 * values) / 12


def _restrict(fine: torch.Tensor) -> torch.Tensor:
    """The transpose of bilinear 2x upsampling (``align_corners=False``) of (1, M, 2h, 2w) -> (1, M, h, w)."""
    padded = F.pad(fine, (1, 1, 1, 1), mode="replicate")
    if fine.numel() > _SLICES_UP_TO:
        taps = torch.tensor(_RESTRICT_WEIGHTS, dtype=fine.dtype)
        return _depthwise(padded, torch.outer(taps, taps), stride=2)
    w0, w1 = _RESTRICT_WEIGHTS[:2]
    rows = w0 * padded[..., 0:-3:2, :] + w1 * padded[..., 1:-2:2, :] + w1 * padded[..., 2:-1:2, :] \
        + w0 * padded[..., 3::2, :]
    return w0 * rows[..., 0:-3:2] + w1 * rows[..., 1:-2:2] + w1 * rows[..., 2:-1:2] + w0 * rows[..., 3::2]


@dataclass
class _Level:
    """One grid of the multigrid hierarchy: which pixels are unknown, each pixel's in-image neighbour-weight sum
    (the diagonal), and unknown / diagonal (the Jacobi step)."""

    unknown: torch.Tensor
    diag: torch.Tensor
    step: torch.Tensor

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        return self.unknown * (self.diag * v - _neighbour_sum(v))

    def jacobi(self, residual: torch.Tensor, sweeps: int, error: torch.Tensor | None = None) -> torch.Tensor:
        """``sweeps`` Jacobi sweeps on A e = residual, from ``error`` (None: from zero, whose first sweep is free)."""
        if error is None:
            error, sweeps = self.step * residual, sweeps - 1
        for _ in range(sweeps):
            error = error + self.step * (residual - self.apply(error))
        return error


def _levels(unknown: torch.Tensor, coarsest: int = 8) -> list[_Level]:
    """Grids halved while both sides are even and at least 2 * ``coarsest``; a coarse pixel is unknown when any
    fine pixel it interpolates to is."""
    levels = []
    while True:
        diag = _neighbour_sum(torch.ones_like(unknown[:, :1]))
        levels.append(_Level(unknown, diag, unknown / diag))
        height, width = unknown.shape[-2:]
        if height % 2 or width % 2 or min(height, width) < 2 * coarsest:
            return levels
        unknown = (_restrict(unknown) > 0).to(unknown.dtype)


def _v_cycle(levels: list[_Level], residual: torch.Tensor, depth: int = 0, sweeps: int = 1) -> torch.Tensor:
    """One symmetric V-cycle (Jacobi smoothing, bilinear prolongation, its transpose as restriction): an SPD
    approximation of the inverse, used as the conjugate-gradient preconditioner."""
    level = levels[depth]
    if depth == len(levels) - 1:
        return level.jacobi(residual, 16)
    error = level.jacobi(residual, sweeps)
    coarse = levels[depth + 1].unknown * _restrict(residual - level.apply(error))
    correction = _v_cycle(levels, coarse, depth + 1, sweeps)
    error = error + level.unknown * F.interpolate(correction, size=tuple(residual.shape[-2:]), mode="bilinear",
                                                  align_corners=False)
    return level.jacobi(residual, sweeps, error)


def _harmonic_fill(values: torch.Tensor, unknown: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """Solve ROAD's linear system for the (1, M, H, W) planes: every ``unknown`` pixel equals the weighted mean of
    its in-image neighbours. Conjugate gradients preconditioned by a multigrid V-cycle (10-20 iterations where
    plain CG took 100-200 on 64 px), each plane stopped once its largest residual is below ``tol``; converged
    planes leave the working set whenever they are a third of it."""
    known = 1.0 - unknown
    filled = values * known
    levels = _levels(unknown)
    remaining = torch.arange(values.shape[1], device=values.device)
    solution = torch.zeros_like(values)
    residual = unknown * _neighbour_sum(filled)
    direction = _v_cycle(levels, residual)
    rz = (residual * direction).sum(dim=(2, 3), keepdim=True)
    active = residual.abs().amax(dim=(2, 3), keepdim=True) > tol
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        product = levels[0].apply(direction)
        curvature = (direction * product).sum(dim=(2, 3), keepdim=True)
        alpha = torch.where(active & (curvature > 0), rz / curvature.clamp_min(1e-30), torch.zeros_like(rz))
        solution = solution + alpha * direction
        residual = residual - alpha * product
        active = active & (residual.abs().amax(dim=(2, 3), keepdim=True) > tol)
        z = _v_cycle(levels, residual)
        rz_next = (residual * z).sum(dim=(2, 3), keepdim=True)
        beta = torch.where(active & (rz > 0), rz_next / rz.clamp_min(1e-30), torch.zeros_like(rz))
        direction = z + beta * direction
        rz = rz_next
        keep = active.flatten().nonzero().flatten()
        if 0 < keep.numel() <= 2 * remaining.numel() // 3:
            filled[:, remaining] += solution
            state = (solution, residual, direction, rz, active)
            solution, residual, direction, rz, active = (tensor[:, keep] for tensor in state)
            filled[:, remaining[keep]] -= solution
            remaining = remaining[keep]
            levels = [_Level(level.unknown[:, keep], level.diag, level.step[:, keep]) for level in levels]
    filled[:, remaining] += solution
    return filled


def noisy_linear_impute(images: torch.Tensor, removed: torch.Tensor, noise: float = 0.01,
                        noise_field: torch.Tensor | None = None, generator: torch.Generator | None = None,
                        tol: float = 1e-5, max_iter: int = 100) -> torch.Tensor:
    """ROAD's noisy linear imputation (Rong et al. 2022) of the ``removed`` (N, H, W) pixels of (N, C, H, W).

    Each removed pixel becomes the weighted mean of its 8 neighbours (1/6 edge, 1/12 corner; the system is
    solved jointly, per channel), then ``noise`` * N(0, 1) is added to it: from ``noise_field`` (broadcastable to
    the images) when given, else drawn with ``generator``. pytorch-grad-cam solves the same system with scipy's
    ``spsolve`` on the CPU; here multigrid-preconditioned conjugate gradients run on the images' device until
    every residual is below ``tol`` (typically 10-20 iterations; float32 cannot go much below 1e-6) or for
    ``max_iter`` iterations. At the default tol the imputed values agree with spsolve to about 1e-4 (measured on
    64 and 224 px images); the added noise is 1e-2.
    """
    if removed.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"removed has shape {tuple(removed.shape)}; expected (N, H, W) = "
                         f"{(images.shape[0], *images.shape[2:])} for images {tuple(images.shape)}")
    count, channels = images.shape[:2]
    unknown = removed.to(images.dtype)[:, None].expand(count, channels, *images.shape[2:])
    planes = images.reshape(1, count * channels, *images.shape[2:])
    filled = _harmonic_fill(planes, unknown.reshape(planes.shape), tol, max_iter).reshape(images.shape)
    if noise:
        if noise_field is None:
            noise_field = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)
        filled = filled + unknown * float(noise) * noise_field.to(images)
    return filled


def _road_noise(fractions: Sequence[float], shape: tuple[int, ...], seed: int, device) -> torch.Tensor:
    """(F, C, H, W) standard normal fields, one per fraction, shared by every image and map: an image's noise
    then does not depend on what else is in the batch."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn((len(fractions), *shape), generator=generator).to(device)


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    values = [float(f) for f in fractions]
    if not values or any(not 0.0 < f < 1.0 for f in values):
        raise ValueError(f"fractions={fractions!r}: each must lie strictly between 0 and 1 (share of pixels "
                         "removed), e.g. (0.1, 0.2, ..., 0.9)")
    return values


def _road_points(batch: _Batch, order: str, fractions: Sequence[float], noise: float, seed: int,
                 score_batch: Callable, batch_size: int | None, progress: _Progress) -> torch.Tensor:
    """(B, V, F) target scores with each fraction of pixels removed (most or least relevant first) and imputed."""
    pixels = batch.ranks.shape[-1]
    fields = _road_noise(fractions, tuple(batch.images.shape[1:]), seed, batch.images.device)
    removed_counts = torch.as_tensor([round(f * pixels) for f in fractions], device=batch.ranks.device)

    def make_chunk(point, owners, ranks):
        counts = removed_counts[point, None]
        removed = ranks < counts if order == "morf" else ranks >= pixels - counts
        images = batch.images[owners]
        return noisy_linear_impute(images, removed.reshape(-1, *images.shape[2:]), noise, noise_field=fields[point])

    return _score_points(batch, len(fractions), make_chunk, score_batch, batch_size, progress)


def road_curve(engine: CamEngine, images: torch.Tensor, maps: Any, targets: Any = None, *, order: str = "morf",
               fractions: Sequence[float] = ROAD_FRACTIONS, noise: float = 0.01, seed: int = 0,
               score: str = "probability", batch_size: int | None = DEFAULT_BATCH_SIZE,
               progress: ProgressFn | None = None) -> PerturbationCurves:
    """ROAD (Rong et al. 2022): the target's score with the ``fractions`` most (``order="morf"``) or least
    (``"lerf"``) relevant pixels removed by noisy linear imputation. ``auc`` is the mean over the fractions:
    lower is better for MoRF, higher for LeRF. ``round(f * H * W)`` pixels are removed at fraction f."""
    if order not in ("morf", "lerf"):
        raise ValueError(f"order={order!r}; choose 'morf' (most relevant first) or 'lerf' (least relevant first)")
    fractions = _check_fractions(fractions)
    score_batch = _score_batcher(engine, score, batch_size)
    batch, _ = _prepare(engine, images, maps, targets, score_batch)
    count, variants = batch.ranks.shape[:2]
    tracker = _Progress(progress, count * (1 + variants * len(fractions)), done=count)
    curve = _road_points(batch, order, fractions, noise, seed, score_batch, batch_size, tracker)
    return _curves_result(curve, [round(f * batch.ranks.shape[-1]) for f in fractions], batch.ranks.shape[-1],
                          batch.squeeze, "mean")


def road_combined(engine: CamEngine, images: torch.Tensor, maps: Any, targets: Any = None,
                  **options: Any) -> np.ndarray:
    """(LeRF - MoRF) / 2 of the mean ROAD scores, as pytorch-grad-cam's ``ROADCombined``; higher is better."""
    morf = road_curve(engine, images, maps, targets, order="morf", **options).auc
    lerf = road_curve(engine, images, maps, targets, order="lerf", **options).auc
    return (lerf - morf) / 2


# ----------------------------------------------------------------------------------------- ground truth
def _dilate(masks: torch.Tensor, dilation: int) -> torch.Tensor:
    if dilation <= 0:
        return masks
    size = 2 * int(dilation) + 1
    return F.max_pool2d(masks.float()[:, None], size, stride=1, padding=int(dilation))[:, 0] > 0


def _maps_and_masks(maps: Any, masks: Any) -> tuple[torch.Tensor, torch.Tensor, bool]:
    mask_tensor = torch.as_tensor(np.asarray(masks.cpu() if torch.is_tensor(masks) else masks)).bool()
    if mask_tensor.ndim != 3:
        raise ValueError(f"masks have shape {tuple(mask_tensor.shape)}; expected (B, H, W) booleans")
    maps_up = upsampled_maps(maps, tuple(mask_tensor.shape[-2:]))
    if maps_up.shape[0] != mask_tensor.shape[0]:
        raise ValueError(f"got {maps_up.shape[0]} maps for {mask_tensor.shape[0]} masks; pass one mask per image")
    squeeze = np.ndim(maps.cpu() if torch.is_tensor(maps) else maps) == 3
    return maps_up, mask_tensor, squeeze


def pointing_game(maps: Any, masks: Any, dilation: int = 0) -> np.ndarray:
    """Whether each map's peak, upsampled to the masks' (H, W), falls inside its mask dilated by ``dilation`` px
    (Zhang et al. 2016 allow 15 px on 224). maps (B, h, w) or (B, V, h, w); masks (B, H, W) bool. The peak is the
    first maximum in row-major order; a constant map (e.g. all zero) has no peak and counts as a miss."""
    maps_up, mask_tensor, squeeze = _maps_and_masks(maps, masks)
    region = _dilate(mask_tensor, dilation).flatten(start_dim=1)
    flat = maps_up.flatten(start_dim=2)
    peaks = flat.argmax(dim=2)
    hits = region.gather(1, peaks) & (flat.amax(dim=2) > flat.amin(dim=2))
    hits = hits.numpy()
    return hits[:, 0] if squeeze else hits


def energy_in_mask(maps: Any, masks: Any) -> np.ndarray:
    """Share of each map's energy (sum of its values, upsampled to the masks' size, negatives clipped) that lies
    inside the mask, in [0, 1]; an all-zero map has no energy and scores 0. Same shapes as ``pointing_game``."""
    maps_up, mask_tensor, squeeze = _maps_and_masks(maps, masks)
    values = maps_up.clamp_min(0).double().flatten(start_dim=2)
    inside = (values * mask_tensor.flatten(start_dim=1)[:, None]).sum(dim=2)
    total = values.sum(dim=2)
    share = torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total)).numpy()
    return share[:, 0] if squeeze else share


# -------------------------------------------------------------------------------------- the page's table
def bootstrap_interval(values: np.ndarray, n_boot: int = 1000, seed: int = 0,
                       confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) over the last axis (images) with a percentile-bootstrap interval of the mean.

    The same resampled image sets are used for every leading cell, so cells are compared on equal draws. NaN
    entries (a cell not computed) give NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    count = values.shape[-1]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, count, size=(int(n_boot), count))
    means = values[..., draws].mean(axis=-1)  # (..., n_boot)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail], axis=-1)
    return values.mean(axis=-1), low, high


def table_layers(model: torch.nn.Module, default_layer: str, input_size: tuple[int, int], count: int = 3) -> list[str]:
    """``default_layer`` plus ``count - 1`` shallower Conv2d layers, one per finer output resolution, deepest
    first: at each resolution the widest Conv2d, the last of those (a stage's output: resnet50 -> layer4.2.conv3,
    layer3.5.conv3, layer2.3.conv3). Evenly spaced earlier Conv2d layers fill up if there are fewer resolutions."""
    names = [name for name, _ in model.named_modules()]
    if default_layer not in names:
        raise ValueError(f"default layer {default_layer!r} is not a module of {type(model).__name__}")
    position = {name: index for index, name in enumerate(names)}
    convs = list_conv_layers(model)
    earlier = [name for name in convs if position[name] < position[default_layer]]
    measured = earlier + ([default_layer] if default_layer in convs else [])
    shapes = layer_output_shapes(model, input_size, measured) if measured else {}
    own_size = shapes[default_layer][1:] if default_layer in shapes else None
    best: dict[tuple[int, ...], str] = {}
    for name in earlier:
        size = shapes[name][1:]
        if size != own_size and (size not in best or shapes[name][0] >= shapes[best[size]][0]):
            best[size] = name
    chosen = [default_layer, *sorted(best.values(), key=position.get, reverse=True)][:count]
    spare = [name for name in earlier if name not in chosen]
    while len(chosen) < count and spare:
        chosen.append(spare.pop(len(spare) // 2))
    return chosen


TABLE_METHODS: tuple[str, ...] = ("gradcam", "gradcampp", "hirescam", "xgradcam", "layercam", "eigencam",
                                  "scorecam")
TABLE_ROAD_FRACTIONS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
HIGHER_IS_BETTER = {"deletion": False, "insertion": True, "road": True, "road_morf": False, "road_lerf": True,
                    "pointing": True, "energy": True}


@dataclass
class FaithfulnessTable:
    """What ``faithfulness_table`` returns: plain numpy, ready to render and export.

    ``values[metric]`` is (M, L, N) per method x layer x image (NaN where a cell was skipped, see ``skipped``);
    ``mean``/``low``/``high`` (M, L) the mean and its bootstrap interval; ``best[metric]`` the (method, layer)
    with the best mean; ``curves["deletion"|"insertion"|"road_morf"|"road_lerf"]`` (M, L, N, S) at
    ``fractions[...]`` (S,). Metrics: deletion, insertion, road (= (road_lerf - road_morf) / 2), road_morf,
    road_lerf, and with masks pointing and energy, plus pointing_<name> and energy_<name> for each extra region.
    Named regions have no better direction (``higher_is_better`` None, no best cell): more energy on a shortcut
    marker is a finding, not a merit. ``area_share[name]`` (N,) is each region's share of the image ("mask" for
    the masks): an energy share above it means the map concentrates there (a uniform map's equals it).
    """

    methods: list[str]
    layers: list[str]
    metrics: list[str]
    image_ids: np.ndarray
    targets: np.ndarray
    values: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    best: dict[str, tuple[str, str] | None]
    higher_is_better: dict[str, bool | None]
    curves: dict[str, np.ndarray]
    fractions: dict[str, np.ndarray]
    skipped: list[tuple[str, str, str]]
    area_share: dict[str, np.ndarray]

    def image_rows(self) -> list[dict[str, Any]]:
        """One dict per (image, method, layer) that was computed: the page's CSV."""
        rows = []
        for m, method in enumerate(self.methods):
            for k, layer in enumerate(self.layers):
                for n, image_id in enumerate(self.image_ids):
                    row = {"image": image_id.item(), "target": int(self.targets[n]), "method": method, "layer": layer}
                    row.update({metric: float(self.values[metric][m, k, n]) for metric in self.metrics})
                    if not np.isnan(row[self.metrics[0]]):
                        rows.append(row)
        return rows

    def summary_rows(self) -> list[dict[str, Any]]:
        """One dict per computed (method, layer): mean, low and high of each metric, and which cells are best."""
        rows = []
        for m, method in enumerate(self.methods):
            for k, layer in enumerate(self.layers):
                if np.isnan(self.mean[self.metrics[0]][m, k]):
                    continue
                row: dict[str, Any] = {"method": method, "layer": layer}
                for metric in self.metrics:
                    row[metric] = float(self.mean[metric][m, k])
                    row[f"{metric}_low"] = float(self.low[metric][m, k])
                    row[f"{metric}_high"] = float(self.high[metric][m, k])
                    row[f"{metric}_best"] = self.best[metric] == (method, layer)
                rows.append(row)
        return rows

    def to_csv(self) -> str:
        """The per-image rows as CSV text (header first)."""
        rows = self.image_rows()
        header = ["image", "target", "method", "layer", *self.metrics]
        lines = [",".join(header)]
        lines += [",".join(_csv_cell(row[column]) for column in header) for row in rows]
        return "\n".join(lines) + "\n"


def _csv_cell(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return f'"{text}"' if any(c in text for c in ',"\n') else text


def _best_cells(mean: dict[str, np.ndarray], methods, layers, higher: dict[str, bool | None]):
    best: dict[str, tuple[str, str] | None] = {}
    for metric, table in mean.items():
        if higher[metric] is None or np.all(np.isnan(table)):
            best[metric] = None
            continue
        flat = np.where(np.isnan(table), -np.inf if higher[metric] else np.inf, table)
        index = int(np.argmax(flat) if higher[metric] else np.argmin(flat))
        m, k = np.unravel_index(index, table.shape)
        best[metric] = (methods[m], layers[k])
    return best


def _scorecam_plan(engine: CamEngine, x: torch.Tensor, layers: list[str], budget: int):
    """Which layers get Score-CAM: in order, while images x channels (its forwards) fit in ``budget``."""
    shapes = layer_output_shapes(engine.model, tuple(x.shape[-2:]), layers)
    planned, skipped, spent = [], [], 0
    for layer in layers:
        cost = x.shape[0] * shapes[layer][0]
        if spent + cost <= budget:
            planned.append((layer, cost))
            spent += cost
        else:
            skipped.append(("scorecam", layer, f"{cost} masked forwards would pass scorecam_budget={budget} "
                                                f"({spent} already planned); raise it to include this cell"))
    return planned, skipped


def _table_maps(engine: CamEngine, x: torch.Tensor, layers: list[str], targets: torch.Tensor,
                methods: list[str], scorecam_layers: list[tuple[str, int]], tracker: _Progress):
    """Every cell's maps upsampled to the input, (N, V, H, W), and the cells' (method index, layer index)."""
    size = tuple(x.shape[-2:])
    cells, stacks = [], []
    plain = [m for m in methods if m != "scorecam"]
    if plain:
        result = engine.explain(x, layers=layers, targets=targets, methods=plain, return_tensors=True)
        tracker.advance(3 * x.shape[0])
        for m, method in enumerate(methods):
            for k, layer in enumerate(layers):
                if method in result.cams:
                    cells.append((m, k))
                    stacks.append(result.cams[method][layer])
    for layer, cost in scorecam_layers:
        before = tracker.done

        def report(done, total, before=before):
            tracker.done = before
            tracker.advance(done)

        cams = score_cam(engine, x, layer, targets, progress=report).cams["scorecam"][layer]
        tracker.done = before + cost
        cells.append((methods.index("scorecam"), layers.index(layer)))
        stacks.append(torch.as_tensor(cams))
    maps = torch.stack([upsampled_maps(s.to(x.device), size, x.device)[:, 0] for s in stacks], dim=1)
    return cells, maps


def _table_metrics(engine: CamEngine, batch: _Batch, steps: int, fractions: list[float], seed: int,
                   batch_size: int | None, tracker: _Progress):
    """(N, V) values and (N, V, S) curves of the perturbation metrics for every cell."""
    score_batch = _score_batcher(engine, "probability", batch_size)
    pixels = batch.ranks.shape[-1]
    counts = _step_counts(steps, pixels)
    original = score_batch(batch.images, batch.targets)
    tracker.advance(batch.images.shape[0])
    curves = {
        "deletion": _transition_curve(batch, batch.images, baseline_images(batch.images, "zero"), counts,
                                      {0: original}, score_batch, batch_size, tracker),
        "insertion": _transition_curve(batch, baseline_images(batch.images, "blur"), batch.images, counts,
                                       {pixels: original}, score_batch, batch_size, tracker),
    }
    for order in ("morf", "lerf"):
        curves[f"road_{order}"] = _road_points(batch, order, fractions, 0.01, seed, score_batch, batch_size, tracker)
    curves = {name: curve.cpu().numpy().astype(np.float64) for name, curve in curves.items()}
    step_fractions = np.asarray(counts, dtype=np.float64) / pixels
    road_fractions = np.asarray([round(f * pixels) for f in fractions], dtype=np.float64) / pixels
    values = {
        "deletion": np.trapezoid(curves["deletion"], step_fractions, axis=-1),
        "insertion": np.trapezoid(curves["insertion"], step_fractions, axis=-1),
        "road_morf": curves["road_morf"].mean(axis=-1),
        "road_lerf": curves["road_lerf"].mean(axis=-1),
    }
    values["road"] = (values["road_lerf"] - values["road_morf"]) / 2
    fraction_axes = {"deletion": step_fractions, "insertion": step_fractions, "road_morf": road_fractions,
                     "road_lerf": road_fractions}
    return values, curves, fraction_axes


def _region_metrics(maps: torch.Tensor, masks: Any, regions: dict[str, Any] | None, dilation: int):
    """Pointing game and energy share per (N, V) for the masks and each named region, and each one's area share."""
    values, area_share = {}, {}
    named = ([("", "mask", masks)] if masks is not None else []) + [
        (f"_{name}", name, region) for name, region in (regions or {}).items()]
    for suffix, name, region in named:
        values[f"pointing{suffix}"] = pointing_game(maps, region, dilation).astype(np.float64)
        values[f"energy{suffix}"] = energy_in_mask(maps, region)
        area_share[name] = np.asarray(region, dtype=bool).reshape(len(region), -1).mean(axis=1)
    return values, area_share


def _by_cell(cells: list[tuple[int, int]], per_cell: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, V, ...) -> (M, L, N, ...) with NaN where no cell was computed."""
    out = np.full((*shape, *per_cell.shape[:1], *per_cell.shape[2:]), np.nan)
    for v, (m, k) in enumerate(cells):
        out[m, k] = per_cell[:, v]
    return out


def faithfulness_table(engine: CamEngine, images: torch.Tensor, layers: Sequence[str], *, targets: Any = None,
                       methods: Sequence[str] = TABLE_METHODS, image_ids: Sequence[Any] | None = None,
                       masks: Any = None, regions: dict[str, Any] | None = None, dilation: int | None = None,
                       steps: int = 20, road_fractions: Sequence[float] = TABLE_ROAD_FRACTIONS,
                       scorecam_budget: int = 4096, n_boot: int = 1000, seed: int = 0,
                       batch_size: int | None = DEFAULT_BATCH_SIZE,
                       progress: ProgressFn | None = None) -> FaithfulnessTable:
    """Every method x layer on N images: deletion, insertion, ROAD (and pointing game / energy with masks).

    images (N, C, H, W) normalised; layers e.g. ``table_layers(model, default_layer, input_size)``; targets None
    = predicted class. masks (N, H, W) bool: the objects (pointing game, energy); regions {name: (N, H, W) bool}:
    more areas whose pointing game and energy share are reported as ``pointing_<name>``, ``energy_<name>`` (e.g.
    a shortcut marker). The pointing game dilates each region by ``dilation`` px (None: Zhang et al.'s 15 px at
    224 px, scaled to the input: 4 px at 64 px). Score-CAM cells are
    computed for the layers, in order, whose masked forwards (N x channels) fit in ``scorecam_budget``; the rest
    are listed in ``skipped``. ROAD uses ``road_fractions`` (five by default: the table pays 2 x 5 imputations
    per image and cell; ``road_curve`` defaults to nine). ``progress(done, total)`` counts image forwards.
    """
    methods = [method.name for method in resolve_methods(methods)]  # canonical names: "Grad-CAM++" -> gradcampp
    layers = list(layers)
    fractions = _check_fractions(road_fractions)
    x = engine._check_images(images)
    count = x.shape[0]
    target_vector = CamEngine._target_matrix(targets, torch.as_tensor(engine.predict(x)))[:, 0].to(x.device)
    planned, skipped = _scorecam_plan(engine, x, layers, scorecam_budget) if "scorecam" in methods else ([], [])
    cell_count = (len(methods) - ("scorecam" in methods)) * len(layers) + len(planned)
    per_image = 2 * (int(steps) - 1) + 2 * len(fractions)  # forwards per image and cell
    # Per image: the prediction, ~3 for explain's forward and backward, the unperturbed and the two baselines.
    tracker = _Progress(progress, count * (7 + cell_count * per_image) + sum(c for _, c in planned), done=count)
    cells, maps = _table_maps(engine, x, layers, target_vector, methods, planned, tracker)
    batch = _Batch(x, saliency_ranks(maps), target_vector, squeeze=False)
    values, curves, fraction_axes = _table_metrics(engine, batch, steps, fractions, seed, batch_size, tracker)
    if dilation is None:  # Zhang et al.'s 15 px tolerance at 224 px, scaled: 4 px on 64 px images
        dilation = round(15 * max(x.shape[-2:]) / 224)
    region_values, area_share = _region_metrics(maps, masks, regions, dilation)
    values.update(region_values)
    shape = (len(methods), len(layers))
    by_cell = {metric: _by_cell(cells, per_cell, shape) for metric, per_cell in values.items()}
    metrics = [m for m in ("deletion", "insertion", "road", "road_morf", "road_lerf", "pointing", "energy")
               if m in by_cell] + sorted(m for m in by_cell if m.startswith(("pointing_", "energy_")))
    higher = {metric: HIGHER_IS_BETTER.get(metric) for metric in metrics}
    summary = {metric: bootstrap_interval(by_cell[metric], n_boot, seed) for metric in metrics}
    mean = {metric: summary[metric][0] for metric in metrics}
    ids = np.arange(count) if image_ids is None else np.asarray(list(image_ids))
    return FaithfulnessTable(
        methods=methods, layers=layers, metrics=metrics, image_ids=ids, targets=target_vector.cpu().numpy(),
        values={m: by_cell[m] for m in metrics}, mean=mean, low={m: summary[m][1] for m in metrics},
        high={m: summary[m][2] for m in metrics}, best=_best_cells(mean, methods, layers, higher),
        higher_is_better=higher, curves={name: _by_cell(cells, curve, shape) for name, curve in curves.items()},
        fractions=fraction_axes, skipped=skipped, area_share=area_share)
