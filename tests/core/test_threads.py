"""One engine shared by many threads (the dashboard's browser sessions) gives the same results as serial calls."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torchvision.models import resnet18

from gradcam_core import CamEngine
from tests.core.core_helpers import hook_count


def test_concurrent_calls_match_serial_calls():
    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=10)
    engine = CamEngine(model, device="cpu")
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    layers = ["conv1", "layer1.0.conv1", "layer2.1.conv2", "layer3.0.downsample.0", "layer4.1.conv2"]
    requests = [
        (i % 4, layers[i % len(layers)], (i * 3) % 10, ("gradcam", "layercam", "gradcampp")[i % 3])
        for i in range(16)
    ]

    def run(request):
        sample, layer, target, method = request
        res = engine.explain(images[sample:sample + 1], layers=[layer], targets=target, methods=(method,))
        return res.cams[method][layer]

    serial = [run(r) for r in requests]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(run, requests * 2))
    for i, maps in enumerate(concurrent):
        np.testing.assert_array_equal(maps, serial[i % len(requests)])
    assert hook_count(model) == 0


def test_two_engines_on_one_model_share_a_lock():
    model = resnet18(weights=None, num_classes=10)
    assert CamEngine(model, device="cpu").lock is CamEngine(model, device="cpu").lock
