"""Deletion, insertion, ROAD, pointing game and energy: numbers worked out on paper, invariances, batching."""

import numpy as np
import pytest
import torch
from torch import nn

from gradcam_core import CamEngine, faithfulness
from gradcam_core.faithfulness import (
    deletion_auc,
    deletion_curve,
    deletion_insertion_curves,
    energy_in_mask,
    insertion_auc,
    insertion_curve,
    noisy_linear_impute,
    pointing_game,
    road_combined,
    road_curve,
)
from tests.core.core_helpers import tiny_net

# The region the hand-built model sums: the bottom-right 2x2 block of a 4x4 image (pixels 10, 11, 14, 15).
REGION = np.zeros((4, 4), bool)
REGION[2:, 2:] = True


@pytest.fixture
def region_engine() -> CamEngine:
    """Logits (s, 0) where s = sum of the red channel over REGION: a 4x4 conv whose kernel is the region."""
    conv = nn.Conv2d(3, 1, kernel_size=4, bias=False)
    head = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = torch.as_tensor(REGION, dtype=torch.float32)
        head.weight.copy_(torch.tensor([[1.0], [0.0]]))
    return CamEngine(nn.Sequential(conv, nn.Flatten(), head), device="cpu")


@pytest.fixture
def ones_image() -> torch.Tensor:
    return torch.ones(1, 3, 4, 4)


def _sigmoid(value: float) -> float:
    return 1 / (1 + np.exp(-value))


def test_deletion_drops_when_the_region_goes(region_engine, ones_image):
    # Region first: after 2 pixels (steps=8, 16 px) the logit is 2, after 4 it is 0 for good.
    # Logit curve (4, 2, 0, 0, 0, 0, 0, 0, 0) over fractions k/8: area = (4+2)/2/8 + (2+0)/2/8 = 0.5.
    region_first = np.where(REGION, 1.0, 0.0)[None]
    curve = deletion_curve(region_engine, ones_image, region_first, 0, steps=8, score="logit")
    np.testing.assert_allclose(curve.fractions, np.arange(9) / 8)
    np.testing.assert_allclose(curve.scores[0], [4, 2, 0, 0, 0, 0, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(curve.auc, [0.5], atol=1e-6)
    # Region last (steps=4): logits (4, 4, 4, 4, 0), area 3 * 4/4 + 2/4 = 3.5.
    np.testing.assert_allclose(deletion_auc(region_engine, ones_image, 1.0 - region_first, 0, steps=4,
                                            score="logit"), [3.5], atol=1e-6)
    # As a softmax probability of class 0: sigmoid(logit), trapezoid over the same fractions.
    probabilities = [_sigmoid(v) for v in (4, 4, 4, 4, 0)]
    expected = np.trapezoid(probabilities, np.arange(5) / 4)
    np.testing.assert_allclose(deletion_auc(region_engine, ones_image, 1.0 - region_first, 0, steps=4),
                               [expected], atol=1e-6)


def test_ties_are_broken_in_row_major_order(region_engine, ones_image):
    # A constant map ranks every pixel equal: rows go top to bottom, so the region (rows 2-3, columns 2-3)
    # loses 2 pixels at k = 12 and the rest at 16: logits (4, 4, 4, 2, 0), area 2 + 0.75 + 0.25 = 3.
    flat = np.full((1, 4, 4), 0.3)
    np.testing.assert_allclose(deletion_auc(region_engine, ones_image, flat, 0, steps=4, score="logit"), [3.0],
                               atol=1e-6)


def test_insertion_reveals_over_the_baseline(region_engine, ones_image):
    # Zero baseline, region first: logits (0, 4, 4, 4, 4) -> area 0.5 + 3 = 3.5; a blur of a constant image is
    # the image itself, so the blur baseline leaves the logit at 4 throughout.
    region_first = np.where(REGION, 1.0, 0.0)[None]
    np.testing.assert_allclose(insertion_auc(region_engine, ones_image, region_first, 0, steps=4,
                                             baseline="zero", score="logit"), [3.5], atol=1e-6)
    np.testing.assert_allclose(insertion_auc(region_engine, ones_image, region_first, 0, steps=4,
                                             score="logit"), [4.0], atol=1e-5)


def _smooth_maps(count: int, size: int, seed: int) -> np.ndarray:
    coarse = torch.rand(count, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")[:, 0].numpy()


def test_only_the_ranking_of_the_map_matters(images, one_torch_thread):
    engine = CamEngine(tiny_net(), device="cpu")
    maps = _smooth_maps(3, 16, seed=2)
    transformed = np.exp(4 * maps) - 7.0  # strictly increasing
    for metric in (deletion_auc, insertion_auc):
        np.testing.assert_array_equal(metric(engine, images, maps, steps=8),
                                      metric(engine, images, transformed, steps=8))
    options = {"fractions": (0.2, 0.6), "seed": 3}
    np.testing.assert_array_equal(road_combined(engine, images, maps, **options),
                                  road_combined(engine, images, transformed, **options))
    assert not np.allclose(deletion_auc(engine, images, maps, steps=8),
                           deletion_auc(engine, images, -maps, steps=8))


def test_a_batch_gives_what_one_image_at_a_time_gives(images, one_torch_thread):
    engine = CamEngine(tiny_net(), device="cpu")
    maps = np.stack([_smooth_maps(3, 8, seed=4), _smooth_maps(3, 8, seed=5)], axis=1)  # (3, V=2, 8, 8)
    targets = [1, 0, 3]
    batched = {
        "deletion": deletion_auc(engine, images, maps, targets, steps=10, batch_size=4),
        "insertion": insertion_auc(engine, images, maps, targets, steps=10, batch_size=4),
        # Noise far above ROAD's 0.01, so that noise depending on the batch would show.
        "road": road_curve(engine, images, maps, targets, fractions=(0.3, 0.7), order="lerf", noise=0.5).auc,
    }
    assert batched["deletion"].shape == (3, 2)
    for i in range(3):
        for v in range(2):
            one = (images[i:i + 1], maps[i:i + 1, v], [targets[i]])
            np.testing.assert_allclose(deletion_auc(engine, *one, steps=10), batched["deletion"][i:i + 1, v],
                                       atol=1e-5)
            np.testing.assert_allclose(insertion_auc(engine, *one, steps=10), batched["insertion"][i:i + 1, v],
                                       atol=1e-5)
            alone = road_curve(engine, *one, fractions=(0.3, 0.7), order="lerf", noise=0.5).auc
            np.testing.assert_allclose(alone, batched["road"][i:i + 1, v], atol=1e-4)


def test_curves_start_at_the_image_and_progress_reaches_the_total(images):
    engine = CamEngine(tiny_net(), device="cpu")
    maps = _smooth_maps(3, 4, seed=1)
    calls = []
    deletion, insertion = deletion_insertion_curves(engine, images, maps, steps=5,
                                                    progress=lambda done, total: calls.append((done, total)))
    probabilities = torch.softmax(torch.as_tensor(engine.predict(images)), dim=1).numpy()
    np.testing.assert_allclose(deletion.scores[:, 0], probabilities.max(axis=1), atol=1e-6)
    np.testing.assert_allclose(insertion.scores[:, -1], probabilities.max(axis=1), atol=1e-6)
    assert deletion.scores.shape == (3, 6)
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)
    # Together they give what each gives alone.
    alone = []
    np.testing.assert_allclose(deletion.auc, deletion_curve(engine, images, maps, steps=5,
                                                            progress=lambda d, t: alone.append((d, t))).auc, atol=1e-6)
    assert alone[-1][0] == alone[-1][1] < calls[-1][1]
    np.testing.assert_allclose(insertion.auc, insertion_curve(engine, images, maps, steps=5).auc, atol=1e-6)


def test_imputation_matches_pytorch_grad_cams_sparse_solve(monkeypatch, one_torch_thread):
    road = pytest.importorskip("pytorch_grad_cam.metrics.road")
    generator = torch.Generator().manual_seed(0)
    for height, width in ((64, 64), (30, 45)):  # 45 px: no coarser grid, plain Jacobi-preconditioned CG
        image = torch.nn.functional.avg_pool2d(torch.randn(1, 3, height, width, generator=generator), 5, 1, 2)[0]
        if height == 64:  # ROAD's hard case: 85% of the image gone in one smooth blob
            blob = torch.nn.functional.interpolate(torch.rand(1, 1, 4, 4, generator=generator), size=(64, 64),
                                                   mode="bilinear")[0, 0]
            removed = blob > blob.flatten().kthvalue(int(0.15 * blob.numel())).values
        else:
            removed = torch.rand(height, width, generator=generator) < 0.6
            removed[:8, :8] = True
        theirs = road.NoisyLinearImputer(noise=0)(image, (~removed).float())
        # Small batches use shifted slices, large ones a depthwise conv: both on the same image. The multigrid
        # preconditioner needs ~15 iterations on the blob (without it, 30 left errors of 0.05).
        for slices_up_to in (10**9, 0):
            monkeypatch.setattr(faithfulness, "_SLICES_UP_TO", slices_up_to)
            ours = noisy_linear_impute(image[None], removed[None], noise=0, max_iter=30 if height == 64 else 300)[0]
            assert (ours - theirs).abs().max() < 3e-4, f"stencil switch at {slices_up_to} values"
            assert torch.equal(ours[:, ~removed], image[:, ~removed])


def test_road_matches_pytorch_grad_cam_without_noise(one_torch_thread):
    # Their metric: logit after imputation minus before, pixels with cam >= np.percentile(cam, p) removed. On
    # 32x32 = 1024 px, p = 80 and 50 remove round(0.2 * 1024) = 205 and 512 pixels, as our fractions do.
    metrics = pytest.importorskip("pytorch_grad_cam.metrics.perturbation_confidence")
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = tiny_net().eval()  # their metric calls the model as it is; batch norm must use its running stats
    engine = CamEngine(model, device="cpu")
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    maps = _smooth_maps(3, 32, seed=7)
    targets = [0, 2, 3]
    original = engine.predict(images)[np.arange(3), targets]
    for percentile, fraction in ((80, 0.2), (50, 0.5)):
        assert (maps[0] >= np.percentile(maps[0], percentile)).sum() == round(fraction * 1024)
        for order, remover in (("morf", metrics.RemoveMostRelevantFirst),
                               ("lerf", metrics.RemoveLeastRelevantFirst)):
            # LeRF(p) keeps the p% most relevant: it removes the same count as MoRF(p), from the other end.
            peer = metrics.PerturbationConfidenceMetric(remover(percentile, NoisyLinearImputer(noise=0)))
            theirs = peer(images, maps, [ClassifierOutputTarget(t) for t in targets], model)
            ours = road_curve(engine, images, maps, targets, order=order, fractions=(fraction,), noise=0,
                              score="logit").auc - original
            np.testing.assert_allclose(ours, theirs, atol=2e-4)  # measured 8.7e-5: imputation tolerance


def test_pointing_game_and_energy_on_hand_made_maps():
    mask = np.zeros((2, 8, 8), bool)
    mask[:, 2:4, 2:4] = True
    maps = np.zeros((2, 8, 8), np.float32)
    maps[0, 3, 3] = 1.0  # peak inside
    maps[1, 5, 5] = 1.0  # peak two pixels off the mask's corner
    np.testing.assert_array_equal(pointing_game(maps, mask), [True, False])
    np.testing.assert_array_equal(pointing_game(maps, mask, dilation=2), [True, True])
    top_left = np.zeros((1, 8, 8), bool)
    top_left[0, :2, :2] = True
    assert not pointing_game(np.zeros((1, 8, 8)), top_left)[0]  # no peak, no hit (not the first pixel's)
    np.testing.assert_allclose(energy_in_mask(maps, mask), [1.0, 0.0])
    np.testing.assert_allclose(energy_in_mask(np.ones((2, 8, 8)), mask), [4 / 64, 4 / 64])
    # A 2x2 map is upsampled to the mask's 8x8 before either is measured: its top-left quarter peaks at (0, 0).
    coarse = np.array([[[1.0, 0.0], [0.0, 0.0]]])
    assert pointing_game(coarse, top_left)[0] and not pointing_game(coarse, mask[:1])[0]
    # Upsampled, each axis reads (1, 1, 7/8, 5/8, 3/8, 1/8, 0, 0), summing to 4: the 2x2 corner holds (2/4)^2.
    np.testing.assert_allclose(energy_in_mask(coarse, top_left), [0.25], atol=1e-6)
    both = energy_in_mask(np.stack([maps, 1 - maps], axis=1), mask)
    assert both.shape == (2, 2)


def test_bad_input_is_named(images):
    engine = CamEngine(tiny_net(), device="cpu")
    with pytest.raises(ValueError, match=r"got 2 maps for 3 images"):
        deletion_auc(engine, images, np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"NaN"):
        deletion_auc(engine, images, np.full((3, 4, 4), np.nan))
    with pytest.raises(ValueError, match=r"baseline='grey'; choose one of zero, blur, mean"):
        deletion_auc(engine, images, np.zeros((3, 4, 4)), baseline="grey")
    with pytest.raises(ValueError, match=r"order='most'"):
        road_curve(engine, images, np.zeros((3, 4, 4)), order="most")
    with pytest.raises(ValueError, match=r"fractions=\(0.5, 1.0\)"):
        road_curve(engine, images, np.zeros((3, 4, 4)), fractions=(0.5, 1.0))
    with pytest.raises(ValueError, match=r"target class 9 is out of range"):
        insertion_auc(engine, images, np.zeros((3, 4, 4)), 9)
