"""Side-by-side timings of the CAM engine against pytorch-grad-cam and torch-cam, in one process.

Every number is a median over several runs after a warm-up; the ratios are what to read (absolute times
depend on the machine, which is recorded with the table).

    python -m bench.engine_bench                 # the resnet50 sweep vs its floor, 3 runs, and vit_b_16 once
    python -m bench.engine_bench --runs 5 --arch resnet18 --size 128 --no-vit
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchvision import models as tv

from gradcam_core import CamEngine, list_cam_layers, list_conv_layers


@dataclass
class Timing:
    label: str
    seconds: float

    @property
    def ms(self) -> float:
        return self.seconds * 1000


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2,
                        clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median seconds of each function, timed in turns (a, b, a, b, ...) so that a noisy moment on a shared
    machine hits every one alike; plus ``"<a>/<b>"``: the median of the ratios of the first function's time to
    each other's within the same turn (what to compare when the machine is busy). ``clock`` may be
    ``time.thread_time``: with one torch thread, CPU time ignores the other processes' share of the cores."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            samples[name].append(clock() - start)
    result = {name: statistics.median(values) for name, values in samples.items()}
    first, *others = fns
    for other in others:
        result[f"{first}/{other}"] = statistics.median(a / b for a, b in zip(samples[first], samples[other],
                                                                               strict=True))
    return result


def machine_line(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return (f"{os.cpu_count()} logical cores, torch {torch.__version__}, torch threads "
            f"{torch.get_num_threads()}, device {device} ({name}), Python {platform.python_version()}")


def build(arch: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return tv.get_model(arch, weights=None).to(device).eval()


# ------------------------------------------------------------------------------------------------ peers
def _pgc_call(model, layer_module, images, target: int):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=model, target_layers=[layer_module]) as cam:
        return cam(input_tensor=images, targets=[ClassifierOutputTarget(target)] * images.shape[0])


def _torchcam_call(model, layer_name: str, images, target: int):
    from torchcam.methods import GradCAM

    with GradCAM(model, target_layer=layer_name, input_shape=tuple(images.shape[1:])) as extractor:
        scores = model(images)
        return extractor(class_idx=target, scores=scores)


def bare_forward_backward(model, images, target: int) -> None:
    """One forward and one ordinary backward of the class score (weight gradients included)."""
    model.zero_grad(set_to_none=True)
    model(images)[:, target].sum().backward()
    model.zero_grad(set_to_none=True)


def forward_backward_to_input(model, images, target: int) -> None:
    """The floor of an all-layer sweep: one forward and one backward of the class score to the input, no weight
    gradients (the least a map at the first layer needs)."""
    x = images.clone().requires_grad_(True)
    torch.autograd.grad(model(x)[:, target].sum(), x)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------- sections
def layer_sweep(arch: str, size: int, repeats: int, device: torch.device, peers: bool = True,
                clock: Callable[[], float] = time.perf_counter) -> dict:
    """Grad-CAM for every Conv2d on one image: ours in one pass vs the floor (forward + backward to the input,
    timed in turns with ours) vs a plain forward + backward with weight gradients vs each peer once per layer."""
    model = build(arch, device)
    images = torch.randn(1, 3, size, size, device=device, generator=None)
    engine = CamEngine(model, device=device)
    layers = list_conv_layers(model)
    modules = dict(model.named_modules())
    target = 1

    def ours():
        engine.explain(images, layers=None, targets=target)
        _sync(device)

    def floor():
        forward_backward_to_input(model, images, target)
        _sync(device)

    def with_weights():
        bare_forward_backward(model, images, target)
        _sync(device)

    times = interleaved_medians({"ours_s": ours, "floor_s": floor, "weights_floor_s": with_weights}, repeats,
                                clock=clock)
    row = {"arch": arch, "size": size, "layers": len(layers), **times}
    if peers:
        peer_repeats = max(1, repeats // 3)
        row["pgc_s"] = median_time(lambda: [_pgc_call(model, modules[n], images, target) for n in layers],
                                   peer_repeats)
        row["torchcam_s"] = median_time(lambda: [_torchcam_call(model, n, images, target) for n in layers],
                                        peer_repeats)
    return row


def cam_layer_sweep(arch: str, size: int, repeats: int, device: torch.device) -> dict:
    """Grad-CAM at every CAM layer (``list_cam_layers``: for a ViT, every block and norm) of one image, in one
    pass, next to a bare forward + backward (weight gradients included) and one to the input only."""
    model = build(arch, device)
    with torch.no_grad():  # torchvision zero-initialises a ViT head: give it weights, or every gradient is 0
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and not module.weight.any():
                module.weight.normal_(0, 0.02, generator=torch.Generator(device).manual_seed(0))
    images = torch.randn(1, 3, size, size, device=device)
    engine = CamEngine(model, device=device)
    layers = list_cam_layers(model, (size, size))
    target = 1

    def ours():
        engine.explain(images, layers=layers, targets=target)
        _sync(device)

    def bare():
        bare_forward_backward(model, images, target)
        _sync(device)

    def to_input():
        forward_backward_to_input(model, images, target)
        _sync(device)

    times = interleaved_medians({"ours_s": ours, "bare_s": bare, "floor_s": to_input}, repeats)
    return {"arch": arch, "size": size, "layers": len(layers), **times}


def topk_targets(arch: str, size: int, repeats: int, device: torch.device, k: int = 5) -> dict:
    """Maps for the top-k classes at the last conv layer: ours batched vs k peer calls."""
    model = build(arch, device)
    images = torch.randn(1, 3, size, size, device=device)
    engine = CamEngine(model, device=device)
    last = list_conv_layers(model)[-1]
    module = dict(model.named_modules())[last]
    with torch.no_grad():
        classes = model(images).topk(k, dim=1).indices[0].tolist()

    def ours():
        engine.explain_topk(images, k=k, layers=[last])
        _sync(device)

    return {
        "arch": arch, "k": k,
        "ours_s": median_time(ours, repeats),
        "pgc_s": median_time(lambda: [_pgc_call(model, module, images, c) for c in classes], repeats),
        "torchcam_s": median_time(lambda: [_torchcam_call(model, last, images, c) for c in classes], repeats),
    }


def gallery(arch: str, size: int, repeats: int, device: torch.device, n: int = 20) -> dict:
    """Grad-CAM at the last layer for n images: ours as one batch vs the peers image by image."""
    model = build(arch, device)
    images = torch.randn(n, 3, size, size, device=device)
    engine = CamEngine(model, device=device)
    last = list_conv_layers(model)[-1]
    module = dict(model.named_modules())[last]

    def ours():
        engine.explain(images, layers=[last], targets=1)
        _sync(device)

    peer_repeats = max(1, repeats // 2)
    return {
        "arch": arch, "n": n,
        "ours_s": median_time(ours, repeats),
        "pgc_s": median_time(lambda: [_pgc_call(model, module, images[i:i + 1], 1) for i in range(n)],
                             peer_repeats),
        "torchcam_s": median_time(lambda: [_torchcam_call(model, last, images[i:i + 1], 1) for i in range(n)],
                                  peer_repeats),
    }


_RSS_CHILD = r"""
import json, sys, torch
from torchvision import models as tv
from gradcam_core import CamEngine, list_cam_layers, list_conv_layers

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

arch, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
model = tv.get_model(arch, weights=None).eval()
x = torch.randn(1, 3, size, size)
model(x)  # allocator warm-up, so the first-call arena is not counted against one method only
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS: importing torch is not what we measure
base = status("VmRSS")
if mode == "ours":
    CamEngine(model, device="cpu").explain(x)
elif mode == "floor":
    model(x)[:, 1].sum().backward()
elif mode == "pgc":
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    mods = dict(model.named_modules())
    for name in list_conv_layers(model):
        with GradCAM(model=model, target_layers=[mods[name]]) as cam:
            cam(input_tensor=x, targets=[ClassifierOutputTarget(1)])
print(json.dumps({"before_mb": base, "peak_mb": status("VmHWM")}))
"""


def peak_rss(arch: str, size: int) -> dict:
    """Peak resident memory of a fresh process doing the layer sweep, each way (Linux ru_maxrss)."""
    out = {}
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    for mode in ("floor", "ours", "pgc"):
        proc = subprocess.run([sys.executable, "-c", _RSS_CHILD, arch, str(size), mode], capture_output=True,
                              text=True, env=env, timeout=600, check=True)
        out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def limits(arch: str, size: int, repeats: int, device: torch.device, n: int = 20) -> dict:
    """Lower bounds that explain the ratios against torch-cam: what one forward, and one forward plus a
    backward to the input (no weight gradients: the least a map at the first conv needs), cost; one torch-cam
    call at the first and at the last conv; and how much a batch saves over single-image forwards."""
    model = build(arch, device)
    image = torch.randn(1, 3, size, size, device=device)
    batch = torch.randn(n, 3, size, size, device=device)
    layers = list_conv_layers(model)

    def forward(x):
        with torch.no_grad():
            model(x)
        _sync(device)

    def forward_backward_to_input():
        x = image.clone().requires_grad_(True)
        torch.autograd.grad(model(x)[0, 1], x)
        _sync(device)

    singles, batched = [], []
    for _ in range(max(1, repeats // 2)):  # interleaved, so a noisy moment hits both ways alike
        singles.append(median_time(lambda: [forward(batch[i:i + 1]) for i in range(n)], 1, warmup=0))
        batched.append(median_time(lambda: forward(batch), 1, warmup=0))
    return {
        "forward_s": median_time(lambda: forward(image), repeats, warmup=2),
        "input_backward_s": median_time(forward_backward_to_input, repeats, warmup=2),
        "torchcam_first_s": median_time(lambda: _torchcam_call(model, layers[0], image, 1), repeats),
        "torchcam_last_s": median_time(lambda: _torchcam_call(model, layers[-1], image, 1), repeats),
        "singles_forward_s": statistics.median(singles),
        "batch_forward_s": statistics.median(batched),
        "n": n,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=3, help="separate sweep measurements (default 3)")
    parser.add_argument("--repeats", type=int, default=15, help="timed turns per run (default 15)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads; with 1 the sweep is timed in thread CPU time, steady on a busy machine")
    parser.add_argument("--no-vit", action="store_true", help="skip the vit_b_16 every-CAM-layer measurement")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu_time = torch.get_num_threads() == 1 and device.type == "cpu"
    clock = time.thread_time if cpu_time else time.perf_counter
    print(f"_{machine_line(device)}; load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}_\n")
    print(f"Grad-CAM for every Conv2d of {args.arch}, one {args.size}x{args.size} image; floor = forward + "
          f"backward to the input, timed in turns with ours ({'thread CPU time' if cpu_time else 'wall clock'})\n")
    print("| run | ours | floor | ours / floor (medians) | median of paired ratios | forward + backward with "
          "weight grads |")
    print("|---:|---:|---:|---:|---:|---:|")
    for run in range(1, args.runs + 1):
        row = layer_sweep(args.arch, args.size, args.repeats, device, peers=False, clock=clock)
        print(f"| {run} | {row['ours_s'] * 1000:.1f} ms | {row['floor_s'] * 1000:.1f} ms | "
              f"**{row['ours_s'] / row['floor_s']:.3f}×** | {row['ours_s/floor_s']:.3f}× | "
              f"{row['weights_floor_s'] * 1000:.1f} ms |", flush=True)
    if not args.no_vit:
        row = cam_layer_sweep("vit_b_16", 224, max(3, args.repeats // 3), device)
        print(f"\nvit_b_16, every one of its {row['layers']} CAM layers, one 224x224 image: ours "
              f"{row['ours_s'] * 1000:.0f} ms; bare forward + backward {row['bare_s'] * 1000:.0f} ms "
              f"({row['ours_s/bare_s']:.2f}× paired); forward + backward to the input "
              f"{row['floor_s'] * 1000:.0f} ms ({row['ours_s/floor_s']:.2f}× paired)")
    print(f"\n_load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}_")
    return 0


if __name__ == "__main__":
    sys.exit(main())
