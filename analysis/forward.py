"""The one batched no-grad forward over an ImageSet: logits and, on request, penultimate features (the flattened
input of a workspace's ``classifier_layer``), decoding one batch of images at a time so memory stays bounded, with a
progress callback after every batch. Everything that classifies a whole set goes through ``forward_image_set``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from gradcam_core import CamEngine, softmax

#: Images decoded and run per forward: 128 at 224 px is 77 MB of input, and larger batches gained nothing on a CPU.
DEFAULT_BATCH = 128
ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class ForwardPass:
    """What one pass over some images of a set gives, in the order of ``indices``."""

    indices: np.ndarray  # (N,) int64 positions in the set
    logits: np.ndarray  # (N, num_classes) float32
    features: np.ndarray | None = None  # (N, D) float32 penultimate features, when asked for

    @property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1).astype(np.int64) if len(self.logits) else np.zeros(0, np.int64)

    @property
    def probabilities(self) -> np.ndarray:
        return softmax(self.logits, axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """(N,) float32 softmax probability of the predicted class."""
        return self.probabilities[np.arange(len(self.indices)), self.predicted] if len(self.indices) else \
            np.zeros(0, np.float32)


def engine_for(model: nn.Module | CamEngine) -> CamEngine:
    """An engine on the device the model already is on (a GPU model stays on its GPU)."""
    if isinstance(model, CamEngine):
        return model
    first = next(model.parameters(), None)
    return CamEngine(model, device=first.device if first is not None else "cpu")


def forward_image_set(model: nn.Module | CamEngine, image_set, indices: Sequence[int] | np.ndarray | None = None,
                      *, features_of: str | None = None, batch_size: int = DEFAULT_BATCH,
                      progress: ProgressFn | None = None) -> ForwardPass:
    """Logits (and with ``features_of`` the flattened input of that module) of ``image_set``'s images ``indices``
    (default: all), from no-grad forwards in eval mode; the model's state is left as it was.

    Each batch runs under the model's lock (the engine's), so a shared model serves other callers between
    batches. ``progress(fraction, message)`` is called after every batch.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive whole number, got {batch_size!r}")
    engine = engine_for(model)
    chosen = np.arange(len(image_set), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    total = len(chosen)
    logits, features = [], []
    for start in range(0, total, batch_size):
        batch = image_set.tensors([int(i) for i in chosen[start:start + batch_size]])
        if features_of is None:
            logits.append(engine.predict(batch, batch_size=batch_size))
        else:
            batch_features, batch_logits = engine.features(batch, features_of, batch_size=batch_size)
            features.append(batch_features)
            logits.append(batch_logits)
        if progress is not None:
            done = min(start + batch_size, total)
            progress(done / total, f"Ran the model on {done} of {total} images")
    return ForwardPass(
        indices=chosen,
        logits=np.concatenate(logits).astype(np.float32) if logits else np.zeros((0, 0), np.float32),
        features=None if features_of is None else (
            np.concatenate(features).astype(np.float32) if features else np.zeros((0, 0), np.float32)),
    )
