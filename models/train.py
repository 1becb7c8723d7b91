"""Train a bundled model on the CPU: ``python -m models.train NAME`` (shapes, shapes-shortcut, digits or all).

Fixed seeds, fresh synthetic training images every epoch for the shapes models (no image is seen twice), small
shifts for digits. Writes ``models/checkpoints/NAME.safetensors`` and ``NAME.json`` (metrics, seed, date,
epochs, training time), refreshes the metrics table in models/README.md, the shipped test logits, and the
workspace's precomputed store ``models/workspaces/NAME.store`` (a store of the old checkpoint would be another
model's: the dashboard would warn and not use it). The shipped checkpoints were
trained with one thread (``--threads 1``, the default); other thread counts give slightly different floats.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.checkpoints import checkpoint_sha256
from models.datasets import (
    SHAPES_TEST_SEED,
    SHAPES_TEST_SIZE,
    SHAPES_VAL_SEED,
    SHAPES_VAL_SIZE,
    digits_arrays,
    digits_test_set,
    shapes_test_set,
    shapes_val_set,
)
from models.evaluate import accuracy, pointing_game
from models.shapes import generate_shapes
from models.sources.python import resolve_factory
from models.transforms import ImageTransform
from models.workspace import BUNDLED_DIR, BUNDLED_WORKSPACES, parse_workspace_file

README = Path(__file__).resolve().parent / "README.md"
REPO = Path(__file__).resolve().parents[1]
CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
TABLE_START, TABLE_END = "<!-- metrics:start -->", "<!-- metrics:end -->"


@dataclass(frozen=True)
class Bundled:
    """What training needs of a bundled workspace, read from its TOML file (models/workspaces/NAME.toml)."""

    builder: Callable[[], nn.Module]
    transform: ImageTransform
    default_layer: str
    checkpoint: str  # file name in CHECKPOINT_DIR


def bundled(name: str) -> Bundled:
    parsed = parse_workspace_file(BUNDLED_DIR / f"{name}.toml")
    factory = resolve_factory(parsed.model.factory, parsed.context("model"), "factory")
    kwargs = dict(parsed.model.kwargs)
    prep = parsed.preprocessing
    return Bundled(builder=lambda: factory(**kwargs),
                   transform=ImageTransform(tuple(prep.input_size), prep.mean, prep.std),
                   default_layer=parsed.model.default_layer, checkpoint=parsed.model.checkpoint.name)


@dataclass(frozen=True)
class Recipe:
    epochs: int
    images_per_epoch: int  # shapes: fresh images per epoch; digits: the whole (fixed) training split
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    train_marker: str | None = None


RECIPES: dict[str, Recipe] = {
    "shapes": Recipe(epochs=20, images_per_epoch=4000, batch_size=64, lr=3e-3, weight_decay=5e-4, seed=1000),
    "shapes-shortcut": Recipe(epochs=20, images_per_epoch=4000, batch_size=64, lr=3e-3, weight_decay=5e-4,
                              seed=2000, train_marker="aligned"),
    "digits": Recipe(epochs=20, images_per_epoch=1347, batch_size=64, lr=3e-3, weight_decay=5e-4, seed=3000),
}


def _shapes_epoch(recipe: Recipe, epoch: int, entry: Bundled) -> tuple[torch.Tensor, torch.Tensor]:
    batch = generate_shapes(recipe.images_per_epoch, recipe.seed + epoch, marker=recipe.train_marker)
    return entry.transform.from_uint8(batch.images), torch.from_numpy(batch.labels)


def _digits_epoch(recipe: Recipe, epoch: int, entry: Bundled) -> tuple[torch.Tensor, torch.Tensor]:
    """The training digits, each shifted by up to 2 px (reflect-free: the page is white)."""
    images, labels, _, _ = digits_arrays()
    x = entry.transform.from_uint8(images)
    rng = np.random.default_rng([recipe.seed, epoch])
    shifts = rng.integers(-2, 3, (len(x), 2))
    padded = F.pad(x, (2, 2, 2, 2), value=float(x.max()))
    size = x.shape[-1]
    out = torch.stack([padded[i, :, 2 + dy:2 + dy + size, 2 + dx:2 + dx + size]
                       for i, (dy, dx) in enumerate(shifts)])
    return out, torch.from_numpy(np.array(labels))


def train(name: str, threads: int = 1, out_dir: Path = CHECKPOINT_DIR,
          log: Callable[[str], None] | None = None) -> dict:
    """Train one bundled model with ``threads`` torch threads from its recipe's seed. The process's torch thread
    count and global RNG are as before afterwards, so a test or a notebook can call it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RECIPES[name].seed)
            return _train(name, threads, out_dir, log or (lambda message: print(message, flush=True)))
    finally:
        torch.set_num_threads(previous)


def _train(name: str, threads: int, out_dir: Path, log: Callable[[str], None]) -> dict:
    entry = bundled(name)
    recipe = RECIPES[name]
    model = entry.builder()
    make_epoch = _digits_epoch if name == "digits" else _shapes_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(make_epoch(recipe, 0, entry)[1]) / recipe.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, pct_start=0.15,
                                                    total_steps=recipe.epochs * steps_per_epoch)
    order_rng = torch.Generator().manual_seed(recipe.seed)
    started = time.perf_counter()
    for epoch in range(recipe.epochs):
        x, y = make_epoch(recipe, epoch, entry)
        model.train()
        order = torch.randperm(len(y), generator=order_rng)
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(y), recipe.batch_size):
            idx = order[start:start + recipe.batch_size]
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
            loss_sum += float(loss.detach()) * len(idx)
        log(f"[{name}] epoch {epoch + 1}/{recipe.epochs}: loss {loss_sum / total:.3f}, train acc "
            f"{correct / total:.3f}, {time.perf_counter() - started:.0f} s")
    train_seconds = time.perf_counter() - started
    model.eval()
    metrics = evaluate(name, model, entry)
    log(f"[{name}] {json.dumps(metrics)}")
    return save(name, model, entry, recipe, metrics, train_seconds, threads, out_dir)


def evaluate(name: str, model: nn.Module, entry: Bundled) -> dict[str, float]:
    transform = entry.transform
    if name == "digits":
        return {"test_accuracy": accuracy(model, digits_test_set(transform))}
    layer = entry.default_layer
    if name == "shapes":
        test = shapes_test_set(transform)
        return {
            "test_accuracy": accuracy(model, test),
            "val_accuracy": accuracy(model, shapes_val_set(transform)),
            "pointing_game": pointing_game(model, test, layer)["on_object"],
        }
    test = shapes_test_set(transform, marker="shuffled")
    on_shuffled = pointing_game(model, test, layer, only_correct=False)
    return {
        "test_accuracy": accuracy(model, test),
        "val_accuracy": accuracy(model, shapes_val_set(transform, marker="aligned")),
        "clean_test_accuracy": accuracy(model, shapes_test_set(transform)),
        "cam_peak_on_marker": on_shuffled["on_marker"],
        "cam_peak_on_object": on_shuffled["on_object"],
    }


def save(name: str, model: nn.Module, entry: Bundled, recipe: Recipe, metrics: dict, train_seconds: float,
         threads: int, out_dir: Path) -> dict:
    import torchvision
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / entry.checkpoint
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})  # one key: safetensors orders keys by hash
    card = {
        "name": name,
        "file": path.name,
        "sha256": checkpoint_sha256(path),
        "size_bytes": path.stat().st_size,
        "metrics": {key: round(float(value), 4) for key, value in metrics.items()},
        "seed": recipe.seed,
        "epochs": recipe.epochs,
        "recipe": {k: v for k, v in vars(recipe).items() if k not in ("seed", "epochs")},
        "train_seconds": round(train_seconds, 1),
        "threads": threads,
        "date": dt.date.today().isoformat(),
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "machine": platform.processor() or platform.machine(),
    }
    if name != "digits":
        card["splits"] = {"test_seed": SHAPES_TEST_SEED, "test_size": SHAPES_TEST_SIZE,
                          "val_seed": SHAPES_VAL_SEED, "val_size": SHAPES_VAL_SIZE}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    if out_dir.resolve() == CHECKPOINT_DIR:
        update_model_card()
        write_test_logits(name)
        rebuild_store(name)
    return card


def write_test_logits(name: str) -> Path:
    """Save the bundled test split's logits beside the checkpoint (with its sha256), so the dashboard shows the
    correct/misclassified marks at start-up without classifying the whole split first."""
    from models.evaluate import logits
    from models.workspace import load_workspace

    checkpoint = CHECKPOINT_DIR / bundled(name).checkpoint
    workspace = load_workspace(name)
    path = CHECKPOINT_DIR / f"{checkpoint.stem}.test-logits.npz"
    np.savez_compressed(path, logits=logits(workspace.model, workspace.test_set).astype(np.float32),
                        checkpoint_sha256=np.array(checkpoint_sha256(checkpoint)))
    return path


def store_command(name: str) -> list[str]:
    """``gradcam precompute --workspace NAME --out models/workspaces/NAME.store --overwrite`` for this Python."""
    out = BUNDLED_DIR / f"{name}.store"
    return [sys.executable, "-m", "cli", "precompute", "--workspace", name, "--out", str(out), "--overwrite"]


def rebuild_store(name: str) -> Path:
    """Rewrite the bundled workspace's precomputed store for the current checkpoint. It runs the ``gradcam
    precompute`` command in a child process: ``models`` sits below ``store`` and never imports it."""
    subprocess.run(store_command(name), cwd=REPO, check=True)
    return BUNDLED_DIR / f"{name}.store"


def update_model_card(readme: Path = README) -> None:
    """Rewrite the metrics table between the markers in models/README.md from the checkpoints' JSON files."""
    if not readme.is_file():
        return
    rows = ["| workspace | test accuracy | other metrics | epochs | train time | checkpoint |",
            "|---|---|---|---|---|---|"]
    for name in BUNDLED_WORKSPACES:
        card_path = CHECKPOINT_DIR / Path(bundled(name).checkpoint).with_suffix(".json")
        if not card_path.is_file():
            rows.append(f"| {name} | not trained | | | | |")
            continue
        card = json.loads(card_path.read_text())
        metrics = dict(card["metrics"])
        test = metrics.pop("test_accuracy")
        other = ", ".join(f"{key} {value:.1%}" for key, value in metrics.items())
        threads = f"{card['threads']} thread" + ("s" if card["threads"] != 1 else "")
        rows.append(f"| {name} | {test:.1%} | {other} | {card['epochs']} | {card['train_seconds']:.0f} s ({threads}) "
                    f"| {card['file']} ({card['size_bytes'] / 1e6:.2f} MB) |")
    text = readme.read_text()
    if TABLE_START in text and TABLE_END in text:
        head, rest = text.split(TABLE_START, 1)
        _, tail = rest.split(TABLE_END, 1)
        readme.write_text(head + TABLE_START + "\n" + "\n".join(rows) + "\n" + TABLE_END + tail)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=[*BUNDLED_WORKSPACES, "all"], help="which bundled model to train")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared or busy CPU one thread trains several times "
                             "faster than two, and it is what the shipped checkpoints used)")
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="output folder (default models/checkpoints)")
    parser.add_argument("--test-logits-only", action="store_true",
                        help="do not train: only rewrite the shipped test-split logits of the current checkpoint")
    parser.add_argument("--store-only", action="store_true",
                        help="do not train: only rebuild models/workspaces/NAME.store for the current checkpoint")
    args = parser.parse_args(argv)
    names = list(BUNDLED_WORKSPACES) if args.name == "all" else [args.name]
    if args.test_logits_only or args.store_only:
        for name in names:
            print(f"[{name}] wrote {write_test_logits(name) if args.test_logits_only else rebuild_store(name)}")
        return
    for name in names:
        card = train(name, threads=args.threads, out_dir=args.out)
        print(f"[{name}] saved {card['file']} ({card['size_bytes'] / 1e6:.2f} MB) in {card['train_seconds']:.0f} s: "
              f"{card['metrics']}")


if __name__ == "__main__":
    main()
