"""``gradcam precompute``: classify and summarise a workspace's whole test set into a Parquet store.

    gradcam precompute --workspace shapes --out shapes.store
    gradcam precompute --workspace my.toml                       # --out defaults to the workspace's [data] store
    gradcam precompute --workspace my.toml --engine ray --ray-address auto --concurrency 8 --num-gpus 1

Rerunning the same command resumes where a run stopped (finished shards are kept); ``--overwrite`` starts anew.
Nothing heavy is imported until ``run``: torch when precomputing, Ray only for ``--engine ray``.
"""

from __future__ import annotations

import argparse
import sys
import time

EPILOG = """\
The store is a folder of Parquet shards (part-NNNNN.parquet) plus _manifest.json; read it with
store.open_store(STORE), DuckDB (read_parquet('STORE/**/*.parquet')) or pyarrow.dataset.dataset(STORE).
A workspace finds its store through [data] store = "DIR" in its TOML, or as <toml stem>.store/ beside it.
Unreadable images are skipped and listed in the manifest (and at the end of the run)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--workspace", required=True, metavar="FILE|NAME",
                        help="a bundled workspace name or a workspace .toml file")
    parser.add_argument("--out", metavar="STORE", default=None,
                        help="the store folder (default: the workspace's [data] store)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this process, DataLoader workers decode (default); ray: Ray Data actors")
    parser.add_argument("--ray-address", metavar="ADDR", default=None,
                        help="Ray cluster to use (e.g. auto, ray://host:10001); default: a local Ray for this run")
    parser.add_argument("--overwrite", action="store_true", help="delete the store's files and start anew")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per engine call (64)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="decoding processes (local; default: cores - 1 for image folders, 0 for in-memory "
                             "sets) or decoding threads per actor (ray; default 1)")
    parser.add_argument("--concurrency", type=int, default=1, metavar="N", help="Ray actors (model copies), default 1")
    parser.add_argument("--num-gpus", type=float, default=0.0, metavar="G", help="GPUs per Ray actor (default 0)")
    parser.add_argument("--device", default=None, metavar="D",
                        help="torch device for the model (default: cuda, then mps, then cpu)")
    parser.add_argument("--shard-size", type=int, default=10_000, metavar="N",
                        help="images per shard, the unit of resuming (10000; a resumed store keeps its own)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images (a trial run)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


class TerminalProgress:
    """A tqdm bar per stage (count, rate, ETA) on stderr, fed by ``precompute``'s progress callback."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None
        self.stage = None

    def __call__(self, event) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if event.stage != self.stage or self.bar is None:
            self.close()
            self.stage = event.stage
            unit, desc = ("img", "images") if event.stage == "images" else ("shard", "map")
            if event.message:
                print(f"gradcam precompute: {event.message}", file=sys.stderr)
            self.bar = tqdm(total=event.total, initial=event.done, unit=unit, desc=desc, file=sys.stderr,
                            mininterval=0.5, dynamic_ncols=True)
            return
        self.bar.update(event.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _print_summary(summary, seconds: float) -> None:
    rate = f", {summary.images_per_second:.1f} images/s" if summary.images_per_second else ""
    resumed = f" ({summary.shards_resumed} shard(s) from an earlier run)" if summary.shards_resumed else ""
    print(f"wrote {summary.store}: {summary.rows} rows of {summary.images} images in {seconds:.1f} s{rate}{resumed}")
    if summary.skipped:
        print(f"{len(summary.skipped)} image(s) could not be read and were left out (listed in "
              f"{summary.store / '_manifest.json'}):")
        for entry in summary.skipped[:10]:
            print(f"  {entry['path']}: {entry['reason']}")
        if len(summary.skipped) > 10:
            print(f"  ... and {len(summary.skipped) - 10} more")


def run(args: argparse.Namespace) -> int:
    from models import WorkspaceError
    from store import StoreError
    from store.precompute import precompute

    progress = TerminalProgress(enabled=not args.quiet)
    start = time.perf_counter()
    try:
        summary = precompute(
            args.workspace, args.out, progress=progress, engine=args.engine, overwrite=args.overwrite,
            batch_size=args.batch_size, shard_size=args.shard_size, workers=args.workers, device=args.device,
            limit=args.limit, ray_address=args.ray_address, concurrency=args.concurrency, num_gpus=args.num_gpus,
        )
    except (StoreError, WorkspaceError, OSError) as error:  # OSError: e.g. --out not writable, disk full
        progress.close()
        print(f"gradcam precompute: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        progress.close()
        print("gradcam precompute: interrupted; finished shards are kept, rerun the same command to resume",
              file=sys.stderr)
        return 130
    progress.close()
    _print_summary(summary, time.perf_counter() - start)
    return 0
