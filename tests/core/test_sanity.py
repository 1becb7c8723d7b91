"""Cascading randomisation (Adebayo et al. 2018): real methods change, a model-blind method is caught."""

import numpy as np
import pytest
import torch

from gradcam_core import CamEngine
from gradcam_core.sanity import cascade_groups, randomise_modules, sanity_check, spearman, ssim
from tests.core.core_helpers import hook_count, tiny_net


def edge_map(engine, images, layer, targets):
    """A 'method' that never looks at the model: the input's gradient magnitude."""
    grey = images.mean(dim=1)
    return ((grey[:, 1:, 1:] - grey[:, :-1, 1:]).abs() + (grey[:, 1:, 1:] - grey[:, 1:, :-1]).abs()).numpy()


def test_gradcam_changes_and_an_edge_detector_is_flagged(images):
    model = tiny_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    engine = CamEngine(model, device="cpu")
    calls = []
    result = sanity_check(engine, images, "6", methods=("gradcam", "eigencam"), extra_methods={"edges": edge_map},
                          progress=lambda done, total: calls.append((done, total)))
    assert result.steps == ["10", "6", "3", "2", "0"]  # Linear, conv, BN, conv, conv: top first
    assert result.spearman["gradcam"].shape == (5, 3)
    assert result.spearman["gradcam"][-1].mean() < 0.5 and result.passed["gradcam"]
    np.testing.assert_allclose(result.spearman["edges"], 1.0)
    np.testing.assert_allclose(result.ssim["edges"], 1.0)
    assert not result.passed["edges"]
    assert result.verdicts["edges"].startswith("edges fails: its maps stay alike")
    assert result.verdicts["gradcam"].startswith("Grad-CAM passes")
    # Eigen-CAM at layer "6" ignores the classifier: randomising "10" alone leaves its maps exactly as they were.
    np.testing.assert_allclose(result.spearman["eigencam"][0], 1.0)
    assert calls == [(i, 6) for i in range(1, 7)]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the caller's model changed"
    assert hook_count(model) == 0
    assert {row["randomised"] for row in result.rows()} == set(result.steps)


def test_spearman_handles_ties_like_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    first = rng.integers(0, 4, size=(3, 5, 5)).astype(float)  # many ties, like ReLU'd maps
    second = first + rng.normal(scale=2.0, size=first.shape)
    expected = [stats.spearmanr(a.ravel(), b.ravel()).statistic for a, b in zip(first, second, strict=True)]
    np.testing.assert_allclose(spearman(first, second), expected, atol=1e-12)
    np.testing.assert_array_equal(spearman(np.zeros((1, 4, 4)), second[:1, :4, :4]), [0.0])


def test_ssim_follows_its_formula():
    rng = np.random.default_rng(1)
    first = rng.random((2, 16, 16))
    second = np.clip(first + rng.normal(scale=0.2, size=first.shape), 0, 1)
    np.testing.assert_allclose(ssim(first, first), [1.0, 1.0])
    np.testing.assert_allclose(ssim(first, second), ssim(second, first))
    # By hand: the 11x11 Gaussian window (sigma 1.5) at each of the 6 x 6 positions that fit in 16 px.
    offsets = np.arange(11) - 5
    taps = np.exp(-offsets**2 / 4.5)
    weights = np.outer(taps, taps) / taps.sum() ** 2
    c1, c2 = 0.01**2, 0.03**2
    windows = []
    for row in range(6):
        for col in range(6):
            a, b = first[0, row:row + 11, col:col + 11], second[0, row:row + 11, col:col + 11]
            ma, mb = (weights * a).sum(), (weights * b).sum()
            va, vb = (weights * a * a).sum() - ma**2, (weights * b * b).sum() - mb**2
            cv = (weights * a * b).sum() - ma * mb
            windows.append(((2 * ma * mb + c1) * (2 * cv + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    assert ssim(first, second)[0] == pytest.approx(np.mean(windows), abs=1e-12)


def test_randomisation_is_reproducible_and_leaves_the_global_rng_alone():
    groups = cascade_groups(tiny_net())
    first, second = tiny_net(), tiny_net()
    state = torch.random.get_rng_state()
    randomise_modules(first, groups["10"] + groups["6"], seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    randomise_modules(second, groups["10"] + groups["6"], seed=3)
    assert torch.equal(first[10].weight, second[10].weight)
    assert not torch.equal(first[10].weight, tiny_net()[10].weight)
    assert torch.equal(first[0].weight, tiny_net()[0].weight)  # untouched below
