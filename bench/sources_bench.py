"""Model sources: the time to open a workspace of each source, and one image explained at every CAM layer of a
vision transformer next to a bare forward + backward (``python -m bench.sources_bench [--quick]``).

Every model is built here with random weights and saved next to a generated TOML, as a user's would be; load
times are medians of fresh ``load_workspace`` calls (the checkpoint hash is cached per file, as in the app).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CLASSES = ("cat", "dog", "fox")


def _images(root: Path, size: int) -> None:
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (root / "images" / name).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / name / f"{i}.png")


def _cases(root: Path, quick: bool) -> dict[str, Path]:
    """source label -> TOML path, each with a random-init model saved beside it."""
    import timm
    import torchvision
    import transformers

    cases = {}
    torch.save(torchvision.models.resnet18(weights=None, num_classes=3).state_dict(), root / "r18.pt")
    (root / "tv.toml").write_text('[model]\narch = "resnet18"\ncheckpoint = "r18.pt"\n[data]\nroot = "images"\n')
    cases["torchvision resnet18"] = root / "tv.toml"
    (root / "nets.py").write_text("import torchvision\n\ndef Net(num_classes):\n"
                                  "    return torchvision.models.resnet18(weights=None, num_classes=num_classes)\n")
    (root / "py.toml").write_text('[model]\nsource = "python"\nfactory = "nets.py:Net"\nkwargs = { num_classes = 3 }\n'
                                  'checkpoint = "r18.pt"\n[data]\nroot = "images"\n')
    cases["python (your own class)"] = root / "py.toml"
    torch.save(timm.create_model("resnet18", num_classes=3).state_dict(), root / "timm.pt")
    (root / "timm.toml").write_text('[model]\nsource = "timm"\nname = "resnet18"\ncheckpoint = "timm.pt"\n'
                                    '[data]\nroot = "images"\n')
    cases["timm resnet18"] = root / "timm.toml"
    config = transformers.ResNetConfig(num_labels=3)  # ResNet-50 layout
    transformers.ResNetForImageClassification(config).save_pretrained(root / "hf")
    (root / "hf.toml").write_text('[model]\nsource = "huggingface"\npath = "hf"\n[data]\nroot = "images"\n')
    cases["huggingface ResNet-50"] = root / "hf.toml"
    scripted = torch.jit.script(torchvision.models.resnet18(weights=None, num_classes=3).eval())
    scripted.save(str(root / "r18.ts"))
    (root / "ts.toml").write_text('[model]\nsource = "torchscript"\nfile = "r18.ts"\narch = "resnet18"\n'
                                  '[data]\nroot = "images"\n')
    cases["torchscript resnet18"] = root / "ts.toml"
    if not quick:
        torch.save(torchvision.models.vit_b_16(weights=None, num_classes=3).state_dict(), root / "vit.pt")
        (root / "vit.toml").write_text('[model]\narch = "vit_b_16"\ncheckpoint = "vit.pt"\n[data]\nroot = "images"\n')
        cases["torchvision vit_b_16"] = root / "vit.toml"
    return cases


def load_times(quick: bool) -> list[tuple[str, float, int]]:
    """(source, median seconds of load_workspace, CAM layers)."""
    from gradcam_core import list_cam_layers
    from models import load_workspace

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _images(root, 64)
        for label, toml in _cases(root, quick).items():
            load_workspace(toml)  # warm: imports, the checkpoint's hash
            times = []
            for _ in range(1 if quick else 3):
                start = time.perf_counter()
                workspace = load_workspace(toml)
                times.append(time.perf_counter() - start)
            rows.append((label, statistics.median(times), len(list_cam_layers(workspace.model))))
    return rows


def vit_sweep(quick: bool) -> dict[str, float]:
    """explain() at every CAM layer of vit_b_16 for one image, next to a bare forward + backward to the input."""
    import torchvision

    from gradcam_core import CamEngine, list_cam_layers

    torch.manual_seed(0)
    if quick:
        model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                     hidden_dim=32, mlp_dim=64, num_classes=3).eval()
        size = 32
    else:
        model, size = torchvision.models.vit_b_16(weights=None).eval(), 224
    x = torch.randn(1, 3, size, size)
    layers = list_cam_layers(model)
    engine = CamEngine(model, device="cpu")

    def floor():
        inp = x.clone().requires_grad_(True)
        out = model(inp)
        out[0, out[0].argmax()].backward(inputs=[inp])

    def ours():
        engine.explain(x, layers=layers)

    repeats = 1 if quick else 5
    result = {"layers": len(layers)}
    for name, fn in (("floor", floor), ("ours", ours)):
        fn()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        result[name] = statistics.median(samples)
    return result


def run(quick: bool = False) -> str:
    rows = load_times(quick)
    sweep = vit_sweep(quick)
    lines = ["### Model sources: opening a workspace, and a ViT explained at every CAM layer", "",
             "| source (random weights, saved beside a TOML) | load_workspace | CAM layers |", "|---|---:|---:|"]
    lines += [f"| {label} | {seconds * 1000:.0f} ms | {layers} |" for label, seconds, layers in rows]
    model = "a 2-block ViT, 32 px" if quick else "vit_b_16, 224×224"
    lines += ["", f"One image, {model}: Grad-CAM at all {sweep['layers']} CAM layers in one `explain` "
              f"{sweep['ours'] * 1000:.0f} ms; bare forward + backward to the input {sweep['floor'] * 1000:.0f} ms "
              f"({sweep['ours'] / sweep['floor']:.2f}×).",
              "", "A load includes building the model, reading and checking the weights, one forward of a zero image "
              "(the class count), and listing the CAM layers."]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(run(quick=parser.parse_args().quick))
