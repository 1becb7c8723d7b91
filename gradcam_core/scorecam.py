"""Score-CAM (Wang et al. 2020): each activation channel, used as a mask on the input, is scored by the model.

For every image and every channel k of the layer: the channel's activation is upsampled to the input
(bilinear, ``align_corners=True``), min-max scaled to [0, 1] over the image (a constant channel gives an all-zero
mask), and multiplied into the input; the masked image goes through the model and the target's raw logit is
that channel's score. The weights are the softmax **over channels** of those scores, and the map is the weighted
sum of the activation channels (ReLU and min-max follow in the engine, as for every method).

This is what pytorch-grad-cam's ``ScoreCAM.get_cam_weights`` computes (tested equal on resnet18). The peers
differ from each other and from the paper in two places:

- torch-cam 0.5 (``torchcam.methods.ScoreCAM``) also takes a softmax over channels, of (masked logit - logit of
  the unmasked input); the subtraction is a constant per image and cancels in the softmax, so its weights differ
  from ours only through the masks: it min-max scales each channel at the layer's resolution and then upsamples
  bilinearly with ``align_corners=False``, where pytorch-grad-cam (and we) upsample with ``align_corners=True``
  and then scale.
- The paper's own code (haofanwang/Score-CAM) weights channel k by the target's softmax probability over
  **classes** of the masked image, with no softmax over channels: weights that do not sum to one and that stay
  small for every channel when no mask alone convinces the model.

Cost: one forward per channel per image (resnet50's layer4: 2048 forwards per image), gradient-free,
target-dependent (all targets of one image share the same forwards). Memory is bounded by ``batch_size``: at most
``batch_size`` upsampled masks and masked images (``batch_size * 3 * H * W`` values) exist at a time, plus the
model's own no-grad forward of a batch that size; the activations themselves are already held by the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from gradcam_core.outputs import logits_from_output

ProgressFn = Callable[[int, int], None]
LogitsFn = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_BATCH_SIZE = 32


def scorecam_weights(
    logits_fn: LogitsFn,
    images: torch.Tensor,
    acts: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Score-CAM channel weights, (B, K, C): softmax over channels of the target logits of the masked inputs.

    ``logits_fn`` maps a (n, 3, H, W) batch to (n, num_classes) logits; ``images`` (B, 3, H, W); ``acts``
    (B, C, h, w), the layer's activations for ``images``; ``targets`` (B, K) class indices. The B * C masked
    images go through ``logits_fn`` ``batch_size`` at a time (a chunk may span images); ``progress(done, total)``
    is called after each chunk with the number of masked images scored so far and B * C.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1 (masked images per forward)")
    batch, channels = acts.shape[:2]
    size = tuple(images.shape[-2:])
    flat_acts = acts.reshape(batch * channels, 1, *acts.shape[2:])
    targets = targets.to(images.device)
    scores = torch.empty(batch, targets.shape[1], channels, dtype=torch.float32, device=images.device)
    total = batch * channels
    with torch.no_grad():
        for start in range(0, total, batch_size):
            stop = min(start + batch_size, total)
            masks = F.interpolate(flat_acts[start:stop].to(images.dtype), size=size, mode="bilinear",
                                  align_corners=True)
            low = masks.amin(dim=(2, 3), keepdim=True)
            high = masks.amax(dim=(2, 3), keepdim=True)
            masks = (masks - low) / (high - low + 1e-8)
            owner = torch.arange(start, stop, device=images.device) // channels
            logits = logits_fn(images[owner] * masks).float()
            chosen = logits.gather(1, targets[owner])  # (n, K)
            scores[owner, :, torch.arange(start, stop, device=images.device) % channels] = chosen
            if progress is not None:
                progress(stop, total)
    return torch.softmax(scores, dim=-1)


class ScoreCAM:
    """The ``"scorecam"`` method for ``CamEngine.explain``; see the module docstring.

    Same interface as ``methods.CamMethod`` (name, title, needs_gradients), plus ``needs_model``: the engine
    calls ``model_map`` (with itself, the input and the targets) instead of ``raw_map``. The registered instance
    uses ``batch_size=32`` and no progress; pass your own instance to choose them::

        engine.explain(x, layers=["layer4.1.conv2"], methods=(ScoreCAM(batch_size=64, progress=cb),))

    ``progress(done, total)`` counts masked images of the layer being computed (it starts again for each layer).
    """

    name, title = "scorecam", "Score-CAM"
    needs_gradients = False
    needs_model = True

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE, progress: ProgressFn | None = None):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1 (masked images per forward)")
        self.batch_size = int(batch_size)
        self.progress = progress

    def raw_map(self, acts, grads):
        raise TypeError("Score-CAM runs the model on masked inputs: compute it through CamEngine.explain")

    def model_map(self, engine, images: torch.Tensor, acts: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) raw maps; called by the engine inside its lock, with the model in eval mode."""
        def logits_fn(batch: torch.Tensor) -> torch.Tensor:
            return logits_from_output(engine.model(batch), batch.shape[0])

        weights = scorecam_weights(logits_fn, images.detach(), acts, targets, self.batch_size, self.progress)
        return torch.einsum("bkc,bchw->bkhw", weights.to(acts.dtype), acts)


def refuse_every_layer(layers: Iterable[str] | str | None, methods: Iterable) -> None:
    """Score-CAM over every layer is (sum of all channels) forwards per image: ask for it by name, not by default."""
    if layers is None and any(getattr(m, "needs_model", False) for m in methods):
        raise ValueError(
            "Score-CAM runs one forward per channel, so layers=None (every layer) would cost the sum of all "
            "layers' channels in forwards per image; pass the layers you want, e.g. layers=['layer4.1.conv2'] "
            "(or layers=list_conv_layers(model) if you do mean all of them)"
        )


def score_cam(engine, images: torch.Tensor, layer: str, targets=None, batch_size: int = DEFAULT_BATCH_SIZE,
              progress: ProgressFn | None = None):
    """Score-CAM of one layer with a progress callback: ``engine.explain(images, [layer], targets,
    methods=(ScoreCAM(batch_size, progress),))``. Returns the engine's ``CamResult``
    (``res.cams["scorecam"][layer]``, (B, h, w) in [0, 1])."""
    method = ScoreCAM(batch_size=batch_size, progress=progress)
    return engine.explain(images, layers=[layer], targets=targets, methods=(method,))
