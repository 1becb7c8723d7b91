"""``--engine local``: decode in torch DataLoader workers, explain batch after batch in this process."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, Dataset

from models import FolderImageSet, ImageSet, Workspace
from store.compute import BatchExplainer, DecodedBatch, decode_batch
from store.shards import ShardPlan


def default_workers(image_set: ImageSet) -> int:
    """Decoding processes: none for an in-memory set (a batch is one array copy), else up to 8 of the cores,
    one core left to the model."""
    if not isinstance(image_set, FolderImageSet):
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class _BatchDecoder(Dataset):
    """A map-style dataset whose items are whole batches: ``decoder[indices]`` is a DecodedBatch."""

    def __init__(self, image_set: ImageSet, batches: list[np.ndarray]):
        self.image_set = image_set
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, position: int) -> DecodedBatch:
        return decode_batch(self.image_set, self.batches[position])


def _as_is(batch: DecodedBatch) -> DecodedBatch:
    return batch


def run_local(workspace: Workspace, plan: ShardPlan, shards: list[int], sink_add: Callable[[pa.Table], int], *,
              workers: int | None = None, device: str | None = None) -> None:
    """Every batch of ``shards`` through the per-batch function, results to ``sink_add`` in order."""
    image_set = workspace.test_set
    workers = default_workers(image_set) if workers is None else int(workers)
    explainer = BatchExplainer(workspace, device)
    batches = list(plan.batches(shards))
    loader = DataLoader(_BatchDecoder(image_set, batches), batch_size=None, shuffle=False, num_workers=workers,
                        collate_fn=_as_is, pin_memory=explainer.engine.device.type == "cuda",
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    for decoded in loader:
        if decoded.images is not None and explainer.engine.device.type == "cuda":
            decoded.images = decoded.images.to(explainer.engine.device, non_blocking=True)
        sink_add(explainer(decoded))
    del loader
    if explainer.engine.device.type == "cuda":
        torch.cuda.empty_cache()
