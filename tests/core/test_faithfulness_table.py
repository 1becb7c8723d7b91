"""The Faithfulness page's table, and the metrics on the bundled shapes model (Grad-CAM beats a random map)."""

import numpy as np
import pytest
import torch
from torchvision.models import resnet18

from gradcam_core import CamEngine
from gradcam_core.faithfulness import (
    bootstrap_interval,
    deletion_auc,
    faithfulness_table,
    insertion_auc,
    road_combined,
    table_layers,
)
from tests.core.core_helpers import tiny_net


@pytest.fixture(scope="module")
def shapes():
    models = pytest.importorskip("models")
    workspace = models.load_workspace("shapes")
    indices = np.random.default_rng(12).choice(len(workspace.test_set), 32, replace=False)
    return workspace, workspace.test_set.tensors(indices), indices


@pytest.mark.slow
def test_gradcam_is_more_faithful_than_a_random_map_on_shapes(shapes, one_torch_thread):
    workspace, images, _ = shapes
    engine = CamEngine(workspace.model, device="cpu")
    layer = workspace.default_layer
    gradcam = engine.explain(images, layers=[layer]).cams["gradcam"][layer]
    random_maps = np.random.default_rng(0).random(gradcam.shape).astype(np.float32)
    maps = np.stack([gradcam, random_maps], axis=1)  # (32, 2, 8, 8): both scored in the same passes
    deletion = deletion_auc(engine, images, maps).mean(axis=0)
    insertion = insertion_auc(engine, images, maps).mean(axis=0)
    road = road_combined(engine, images, maps, fractions=(0.2, 0.5, 0.8)).mean(axis=0)
    assert deletion[0] < deletion[1] - 0.05
    assert insertion[0] > insertion[1] + 0.1
    assert road[0] > road[1] + 0.05


def test_table_layers_are_the_default_and_the_ends_of_earlier_stages():
    assert table_layers(resnet18(), "layer4.1.conv2", (64, 64)) == ["layer4.1.conv2", "layer3.1.conv2",
                                                                   "layer2.1.conv2"]
    with pytest.raises(ValueError, match=r"default layer 'layer9' is not a module"):
        table_layers(resnet18(), "layer9", (64, 64))


def test_table_shapes_best_cells_csv_and_scorecam_budget(images, one_torch_thread):
    engine = CamEngine(tiny_net(), device="cpu")
    masks = np.zeros((3, 16, 16), bool)
    masks[:, 4:12, 4:12] = True
    corner = np.zeros((3, 16, 16), bool)
    corner[:, :4, :4] = True
    calls = []
    # Score-CAM costs 3 images x 16 channels at "6" and 3 x 8 at "2": a budget of 60 affords "6", not both.
    table = faithfulness_table(engine, images, ["6", "2"], methods=("gradcam", "eigencam", "scorecam"),
                               masks=masks, regions={"corner": corner}, image_ids=[10, 20, 30], steps=4,
                               road_fractions=(0.5,), scorecam_budget=60, n_boot=200,
                               progress=lambda done, total: calls.append((done, total)))
    assert table.metrics == ["deletion", "insertion", "road", "road_morf", "road_lerf", "pointing", "energy",
                             "energy_corner", "pointing_corner"]
    np.testing.assert_allclose(table.area_share["mask"], 0.25)
    np.testing.assert_allclose(table.area_share["corner"], 16 / 256)
    assert table.best["energy_corner"] is None and table.higher_is_better["pointing_corner"] is None
    assert table.values["deletion"].shape == (3, 2, 3)
    assert table.curves["deletion"].shape == (3, 2, 3, 5)
    assert [(m, layer) for m, layer, _ in table.skipped] == [("scorecam", "2")]
    assert np.isnan(table.values["insertion"][2, 1]).all() and not np.isnan(table.values["insertion"][2, 0]).any()
    for metric in table.metrics:
        mean = table.mean[metric]
        assert np.all((table.low[metric] <= mean + 1e-12) | np.isnan(mean))
        assert np.all((mean <= table.high[metric] + 1e-12) | np.isnan(mean))
        if table.higher_is_better[metric] is None:
            continue
        pick = np.nanargmax(mean) if table.higher_is_better[metric] else np.nanargmin(mean)
        m, k = np.unravel_index(pick, mean.shape)
        assert table.best[metric] == (table.methods[m], table.layers[k])
    rows = table.image_rows()
    assert len(rows) == 3 * 5  # five computed cells x three images
    assert {row["image"] for row in rows} == {10, 20, 30}
    csv = table.to_csv().splitlines()
    assert csv[0] == "image,target,method,layer," + ",".join(table.metrics) and len(csv) == 16
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)
    again = faithfulness_table(engine, images, ["6", "2"], methods=("gradcam", "eigencam", "scorecam"),
                               masks=masks, regions={"corner": corner}, image_ids=[10, 20, 30], steps=4,
                               road_fractions=(0.5,), scorecam_budget=60, n_boot=200)
    for metric in table.metrics:
        np.testing.assert_array_equal(again.values[metric], table.values[metric])
        np.testing.assert_array_equal(again.high[metric], table.high[metric])


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    few, many = rng.normal(size=8), rng.normal(size=800)
    mean, low, high = bootstrap_interval(few, n_boot=2000, seed=0)
    assert low < mean < high and mean == pytest.approx(few.mean())
    _, low_many, high_many = bootstrap_interval(many, n_boot=2000, seed=0)
    assert high_many - low_many < (high - low) / 4
    assert np.isnan(bootstrap_interval(np.array([[1.0, np.nan]]))[0][0])


def test_the_table_reads_targets_and_never_changes_the_model(images):
    model = tiny_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    table = faithfulness_table(CamEngine(model, device="cpu"), images, ["6"], targets=[1, 1, 2],
                               methods=("Grad-CAM", "Score-CAM"), steps=2, road_fractions=(0.5,), n_boot=10)
    assert table.targets.tolist() == [1, 1, 2]
    assert table.methods == ["gradcam", "scorecam"] and not np.isnan(table.values["deletion"]).any()
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
