"""Bounded memory: every Streamlit cache has max_entries, and a server that explains many different images
levels off instead of growing with each one.

The RSS test uses a tiny 3-conv model at 112x112, whose cached maps are big (5 gradient methods x 3 layers x
112x112 float32 = 0.75 MB per image and target): without the ``max_entries`` bounds its second 100 images would
add ~110 MB (maps plus inputs), far above both the noise of RSS and the bound asserted here.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import gc
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import streamlit as st
import torch
from torch import nn

from dashboard import cams, samples
from dashboard.workspaces import LoadedWorkspace
from gradcam_core import CamEngine, list_conv_layers
from models.datasets import ArrayImageSet
from models.transforms import ImageTransform
from models.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
SIZE = 112
SAMPLES = 200
#: growth of RSS over the second 100 images that we accept: allocator noise, not one more cache entry per image
SECOND_HUNDRED_MAX_MB = 25


def _tiny_loaded(count: int) -> LoadedWorkspace:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(),
        nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 4),
    ).eval()
    transform = ImageTransform((SIZE, SIZE))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)
    test_set = ArrayImageSet(images, rng.integers(0, 4, count), transform)
    workspace = Workspace(
        name="tiny-big-maps", title="tiny", description="", source="python", model=model,
        model_id="tiny-big-maps@test", class_names=["a", "b", "c", "d"], transform=transform, default_layer="4",
        classifier_layer="8", test_set_factory=lambda: test_set,
    )
    layers = list_conv_layers(model)
    return LoadedWorkspace(key="tiny-big-maps", workspace=workspace, engine=CamEngine(model, device="cpu"),
                           layers=layers, layer_shapes={})


def _explain(loaded: LoadedWorkspace, index: int) -> cams.SampleCams:
    """What the explorer page does for one test image: input, logits, then every layer's maps."""
    sample = samples.test_sample(loaded, index)
    inputs = samples.test_input(loaded.model_id, sample.key, index, loaded)
    logits = cams.sample_logits(loaded.model_id, sample.key, loaded, inputs.tensor)
    return cams.explain_sample(loaded.model_id, sample.key, int(np.argmax(logits)), loaded, inputs.tensor)


def _rss_mb() -> float:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # freed heap pages back to the OS: RSS shows what is held
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss / 2**20


def test_explaining_200_images_levels_off_and_evicts_the_oldest(monkeypatch, one_torch_thread):
    loaded = _tiny_loaded(SAMPLES)
    explained: list[int] = []
    original = CamEngine.explain

    def counting(self, images, *args, **kwargs):
        explained.append(1)
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(CamEngine, "explain", counting)
    _explain(loaded, 0)  # warm up torch's allocator and kernels
    st.cache_data.clear()
    explained.clear()

    started = time.perf_counter()
    before = _rss_mb()
    for index in range(100):
        _explain(loaded, index)
    middle = _rss_mb()
    for index in range(100, SAMPLES):
        _explain(loaded, index)
    after = _rss_mb()
    first, second = middle - before, after - middle
    entry_mb = sum(m.nbytes for per in _explain(loaded, SAMPLES - 1).cams.values() for m in per.values()) / 2**20
    print(f"\n{SAMPLES} images in {time.perf_counter() - started:.1f} s; maps per image {entry_mb:.2f} MB; "
          f"RSS {before:.0f} MB -> +{first:.1f} MB over the first 100 -> +{second:.1f} MB over the second 100 "
          f"(explain_sample max_entries={cams.explain_sample._info.max_entries}, "
          f"test_input max_entries={samples.test_input._info.max_entries})")
    assert len(explained) == SAMPLES  # one engine call per image: the cache was used, and nothing ran twice
    assert second < SECOND_HUNDRED_MAX_MB, f"RSS grew {second:.1f} MB over the second 100 images"
    assert second < 100 * entry_mb / 3, "the maps of the second 100 images stayed in memory"

    calls = len(explained)
    _explain(loaded, SAMPLES - 1)  # the newest is still cached
    assert len(explained) == calls
    _explain(loaded, 0)  # the oldest was evicted 136 entries ago: recomputed
    assert len(explained) == calls + 1


def _cache_decorators(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                name = ast.unparse(target)
                if name.endswith(("cache_data", "cache_resource", "lru_cache", "functools.cache")) or name == "cache":
                    yield node.name, decorator


@pytest.mark.parametrize("folder", ["dashboard", "pages", "analysis", "gradcam_core", "models"])
def test_every_cache_has_a_bound(folder):
    """Also checks modules added later: a cache without a bound grows with every image a server ever sees."""
    unbounded = []
    for path in sorted((REPO / folder).glob("*.py")):
        for function, decorator in _cache_decorators(path):
            keywords = {k.arg: k.value for k in getattr(decorator, "keywords", [])}
            bound = keywords.get("max_entries", keywords.get("maxsize"))
            if bound is None and isinstance(decorator, ast.Call) and decorator.args:
                bound = decorator.args[0]  # lru_cache(16)
            if bound is None or (isinstance(bound, ast.Constant) and bound.value is None):
                unbounded.append(f"{path.relative_to(REPO)}:{decorator.lineno} {function}")
    assert not unbounded, f"caches without max_entries/maxsize: {unbounded}"
