"""``--engine ray``: the same per-batch function in Ray Data actors, on a cluster or a local Ray started for the run.

    blocks of test-set indices (one block = one batch, the same batches as the local engine)
      -> map_batches(RayBatchFunction, compute=ActorPoolStrategy(size=concurrency), num_gpus=...)
         each actor loads the workspace (model + test set) once, then per batch: decode_batch -> BatchExplainer
      -> iter_batches on the driver -> the same ShardSink the local engine uses (atomic shards, resumable)

Rows come back to the driver rather than being written by ``write_parquet`` in the actors, so the store needs
no filesystem shared with the cluster and both engines write shards through one code path. ``CamEngine`` turns
gradients on inside (``torch.inference_mode(False)`` + ``enable_grad``): never wrap the call in
``torch.inference_mode()`` as Ray's batch-inference examples do, it breaks every gradient CAM.

On a cluster every node needs this project importable (installed, or at the same path: it is put on the
actors' PYTHONPATH) and the workspace's TOML, checkpoint and images at the same path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from store.compute import BatchExplainer, decode_batch
from store.schema import StoreError
from store.shards import ShardPlan

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class RayBatchFunction:
    """Ray Data callable class: ``__init__`` loads the workspace once per actor, ``__call__`` maps a block of
    indices to the batch's rows (an Arrow table)."""

    def __init__(self, workspace_ref: str, device: str | None = None, decode_threads: int = 1):
        import torch

        from models import load_workspace

        if device is None and not torch.cuda.is_available():
            device = "cpu"
        self.workspace = load_workspace(workspace_ref)
        self.image_set = self.workspace.test_set
        self.explainer = BatchExplainer(self.workspace, device)
        self.decode_threads = decode_threads

    def __call__(self, batch: pa.Table) -> pa.Table:
        indices = batch["index"].to_numpy()
        return self.explainer(decode_batch(self.image_set, indices, threads=self.decode_threads))


def _runtime_env() -> dict:
    """Actors import this project from where the driver found it (unless it is installed there)."""
    paths = [str(PROJECT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}


def start_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Connect to ``address`` or start a local Ray unless one is running; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, "logging_level": logging.WARNING, "runtime_env": _runtime_env()}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)
    return True


def run_ray(workspace_ref: str, plan: ShardPlan, shards: list[int], sink_add: Callable[[pa.Table], int], *,
            address: str | None = None, concurrency: int = 1, num_gpus: float = 0, device: str | None = None,
            decode_threads: int = 1) -> None:
    """Every batch of ``shards`` through ``RayBatchFunction`` actors; results to ``sink_add`` in index order."""
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise StoreError(f"--engine ray needs Ray Data ({error}); install it with pip install 'ray[data]', or use "
                         "--engine local") from None

    started = start_ray(address)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # a shard completes early, so the driver holds few rows
        context.enable_progress_bars = False  # ours shows count and ETA
        context.print_on_execution_start = False
        blocks = [pa.table({"index": pa.array(batch, pa.int64())}) for batch in plan.batches(shards)]
        if not blocks:
            return
        dataset = ray.data.from_arrow(blocks).map_batches(
            RayBatchFunction,
            fn_constructor_kwargs={"workspace_ref": workspace_ref, "device": device, "decode_threads": decode_threads},
            batch_size=None,  # one block = one batch: the local engine's batches exactly
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=max(1, int(concurrency))),
            num_cpus=1,
            num_gpus=num_gpus or None,
            runtime_env=_runtime_env(),
        )
        for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=2):
            sink_add(table)
    finally:
        if started:
            ray.shutdown()

