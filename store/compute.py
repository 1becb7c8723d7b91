"""The per-batch function both engines run: decode a batch of test-set items, then one engine call per batch.

``decode_batch(image_set, indices)`` turns indices into model inputs, setting aside the items that cannot be
read; ``BatchExplainer(workspace)(decoded)`` returns the batch's rows as an Arrow table. The local engine decodes
in DataLoader workers and explains in its own process; the Ray engine does both inside one actor. Either way
the very same two functions produce the rows, so both engines write the same store.

Per batch the model runs one forward and one backward (``CamEngine.explain`` of the default layer for the
predicted class); the penultimate features come from a forward hook on the classifier during that same forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch
from torch.nn import functional

from gradcam_core import CamEngine
from gradcam_core.images import ImageLoadError
from models import ImageSet, Workspace, WorkspaceError
from store.schema import EMBEDDING_MAX_DIMS, ROW_SCHEMA, THUMB_SIZE, TOPK

#: What an unreadable item raises: it is skipped and listed, any other exception is a bug and propagates.
UNREADABLE = (WorkspaceError, ImageLoadError, OSError)
#: Seed of the random projection used for penultimate features wider than EMBEDDING_MAX_DIMS.
PROJECTION_SEED = 0
SKIP_REASON = "skip_reason"
BATCH_SCHEMA = ROW_SCHEMA.append(pa.field(SKIP_REASON, pa.string()))


@dataclass
class DecodedBatch:
    """Model inputs of the readable items of a batch, and (index, item id, label, why) of the others."""

    indices: np.ndarray
    item_ids: list[str]
    labels: np.ndarray
    images: torch.Tensor | None
    skipped: list[tuple[int, str, int, str]] = field(default_factory=list)


def decode_batch(image_set: ImageSet, indices: Sequence[int], threads: int = 1) -> DecodedBatch:
    """Decode ``indices`` of ``image_set`` into one (B, 3, H, W) tensor; unreadable items go to ``skipped``.

    The whole batch is tried at once first (an in-memory set builds it without a Python loop); if that fails,
    item by item (on ``threads`` threads: Pillow releases the GIL while decoding) to find the bad ones.
    """
    indices = np.asarray(indices, dtype=np.int64)
    try:
        images = image_set.tensors(indices.tolist())
        return DecodedBatch(indices, [image_set.item_id(i) for i in indices.tolist()],
                            image_set.labels[indices].astype(np.int64), images)
    except UNREADABLE:
        pass

    def one(i: int) -> torch.Tensor | str:
        try:
            return image_set.tensors([i])[0]
        except UNREADABLE as error:
            return str(error)

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(one, indices.tolist()))
    else:
        results = [one(i) for i in indices.tolist()]
    good = [k for k, r in enumerate(results) if not isinstance(r, str)]
    skipped = [(int(indices[k]), image_set.item_id(int(indices[k])), int(image_set.labels[indices[k]]), r)
               for k, r in enumerate(results) if isinstance(r, str)]
    kept = indices[good]
    return DecodedBatch(kept, [image_set.item_id(i) for i in kept.tolist()], image_set.labels[kept].astype(np.int64),
                        torch.stack([results[k] for k in good]) if good else None, skipped)


def _classification_columns(logits: np.ndarray, targets: np.ndarray, labels: np.ndarray) -> dict[str, pa.Array]:
    """pred, prob, loss, top-k, margin, entropy, correct from (B, C) logits, computed in float64."""
    x = logits.astype(np.float64)
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    probs = np.exp(log_probs)
    rows = np.arange(len(x))
    order = np.argsort(-probs, axis=1, kind="stable")
    top = order[:, :TOPK]
    second = probs[rows, order[:, 1]] if x.shape[1] > 1 else np.zeros(len(x))
    labelled = labels >= 0
    safe_labels = np.where(labelled, labels, 0)
    k = top.shape[1]
    return {
        "pred": pa.array(targets, pa.int64()),
        "prob": pa.array(probs[rows, targets].astype(np.float32)),
        "loss": pa.array((-log_probs[rows, safe_labels]).astype(np.float32), mask=~labelled),
        "topk_index": pa.ListArray.from_arrays(pa.array(np.arange(0, (len(x) + 1) * k, k, dtype=np.int32)),
                                               pa.array(top.reshape(-1), pa.int64())),
        "topk_prob": pa.ListArray.from_arrays(pa.array(np.arange(0, (len(x) + 1) * k, k, dtype=np.int32)),
                                              pa.array(np.take_along_axis(probs, top, 1).reshape(-1)
                                                       .astype(np.float32))),
        "margin": pa.array((probs[rows, order[:, 0]] - second).astype(np.float32)),
        "entropy": pa.array((-(probs * log_probs).sum(axis=1)).astype(np.float32)),
        "correct": pa.array(targets == labels, mask=~labelled),
    }


def _list_column(matrix: np.ndarray) -> pa.ListArray:
    n, d = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32) if d else np.zeros(n + 1, np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1).astype(np.float32)))


def cam_summaries(maps: torch.Tensor) -> dict[str, pa.Array]:
    """16×16 uint8 thumbnails and peak positions (fractions of height/width, cell centres) of (B, h, w) maps."""
    b, h, w = maps.shape
    thumbs = functional.interpolate(maps[:, None].float(), size=(THUMB_SIZE, THUMB_SIZE), mode="bilinear",
                                    align_corners=False, antialias=True)[:, 0]
    thumbs = (thumbs.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    flat = maps.reshape(b, -1)
    peak_value, peak = flat.max(dim=1)
    peak, empty = peak.cpu().numpy(), (peak_value <= 0).cpu().numpy()
    return {
        "cam_thumb": pa.array([t.tobytes() for t in thumbs], pa.binary()),
        "cam_peak_y": pa.array(((peak // w + 0.5) / h).astype(np.float32), mask=empty),
        "cam_peak_x": pa.array(((peak % w + 0.5) / w).astype(np.float32), mask=empty),
    }


def embedding_info(feature_dims: int) -> dict:
    """How the ``embedding`` column relates to the penultimate features (recorded in the manifest)."""
    if feature_dims <= EMBEDDING_MAX_DIMS:
        return {"kind": "features", "dims": feature_dims, "feature_dims": feature_dims}
    return {"kind": "random-projection", "dims": EMBEDDING_MAX_DIMS, "feature_dims": feature_dims,
            "seed": PROJECTION_SEED, "why": "a seeded Gaussian projection keeps distances (Johnson-Lindenstrauss) "
            "and needs no pass over the data, so every batch and both engines agree"}


class BatchExplainer:
    """Holds one workspace's model on a device; ``explainer(decoded_batch)`` returns that batch's rows.

    The returned table has the store's columns plus ``skip_reason`` (null for a row; for an unreadable item the
    reason, with only index, path and label set), so one Arrow table carries a batch through Ray too.
    """

    def __init__(self, workspace: Workspace, device: str | torch.device | None = None):
        self.workspace = workspace
        self.engine = CamEngine(workspace.model, device)
        self.layer = workspace.default_layer
        self.classifier = dict(workspace.model.named_modules())[workspace.classifier_layer]
        self.projection: torch.Tensor | None = None

    def _project(self, features: torch.Tensor) -> torch.Tensor:
        dims = features.shape[1]
        if dims <= EMBEDDING_MAX_DIMS:
            return features
        if self.projection is None or self.projection.shape[0] != dims:
            generator = torch.Generator().manual_seed(PROJECTION_SEED)
            matrix = torch.randn(dims, EMBEDDING_MAX_DIMS, generator=generator) / EMBEDDING_MAX_DIMS ** 0.5
            self.projection = matrix.to(features.device)
        return features @ self.projection

    def forward(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
        """(logits (B, C), predicted classes (B,), penultimate features (B, D), CAMs (B, h, w)) in one pass."""
        captured: list[torch.Tensor] = []

        def keep_input(_module, inputs, _output):
            captured.append(inputs[0].detach())

        with self.engine.lock:
            handle = self.classifier.register_forward_hook(keep_input)
            try:
                result = self.engine.explain(images, layers=[self.layer], methods=("gradcam",), return_tensors=True)
            finally:
                handle.remove()
        features = captured[-1].flatten(start_dim=1).float()
        return (result.logits.cpu().numpy(), result.targets.cpu().numpy().astype(np.int64), features,
                result.cams["gradcam"][self.layer])

    def __call__(self, batch: DecodedBatch) -> pa.Table:
        parts = []
        if batch.images is not None and len(batch.indices):
            logits, targets, features, maps = self.forward(batch.images)
            columns = {
                "index": pa.array(batch.indices, pa.int64()),
                "path": pa.array(batch.item_ids, pa.string()),
                "label": pa.array(batch.labels, pa.int64()),
                **_classification_columns(logits, targets, batch.labels),
                "embedding": _list_column(self._project(features).cpu().numpy()),
                "map_x": pa.nulls(len(targets), pa.float32()),
                "map_y": pa.nulls(len(targets), pa.float32()),
                **cam_summaries(maps),
                SKIP_REASON: pa.nulls(len(targets), pa.string()),
            }
            parts.append(pa.table(columns).select(BATCH_SCHEMA.names).cast(BATCH_SCHEMA))
        if batch.skipped:
            parts.append(skipped_table(batch.skipped))
        return pa.concat_tables(parts) if parts else BATCH_SCHEMA.empty_table()


def skipped_table(skipped: list[tuple[int, str, int, str]]) -> pa.Table:
    """Rows that stand for unreadable items: index, path, label and skip_reason set, the rest null."""
    n = len(skipped)
    given = {"index": pa.array([s[0] for s in skipped], pa.int64()), "path": pa.array([s[1] for s in skipped]),
             "label": pa.array([s[2] for s in skipped], pa.int64()), SKIP_REASON: pa.array([s[3] for s in skipped])}
    return pa.table({f.name: given.get(f.name, pa.nulls(n, f.type)) for f in BATCH_SCHEMA}, schema=BATCH_SCHEMA)
