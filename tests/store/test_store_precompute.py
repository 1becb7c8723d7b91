"""gradcam precompute: the contract's columns, values equal to a direct engine computation, atomic shards,
resuming, refusing another model's store, unreadable files."""

from __future__ import annotations

import json
import shutil

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import torch

from models import load_workspace
from store import StoreError, open_store
from store.precompute import precompute
from store.schema import MANIFEST_NAME, shard_files
from tests.store.conftest import SHARD_SIZE, assert_same_rows, read_table

DESIGN_COLUMNS = [
    ("index", pa.int64()), ("path", pa.string()), ("label", pa.int64()), ("pred", pa.int64()),
    ("prob", pa.float32()), ("loss", pa.float32()), ("topk_index", pa.list_(pa.int64())),
    ("topk_prob", pa.list_(pa.float32())), ("embedding", pa.list_(pa.float32())),
]
OUR_COLUMNS = [
    ("margin", pa.float32()), ("entropy", pa.float32()), ("correct", pa.bool_()), ("map_x", pa.float32()),
    ("map_y", pa.float32()), ("cam_thumb", pa.binary()), ("cam_peak_y", pa.float32()), ("cam_peak_x", pa.float32()),
]


def test_columns_and_types_are_designs_plus_ours(reference_store):
    schema = ds.dataset(reference_store, format="parquet").schema
    assert [(f.name, f.type) for f in schema] == DESIGN_COLUMNS + OUR_COLUMNS
    manifest = json.loads((reference_store / MANIFEST_NAME).read_text())
    assert [c["name"] for c in manifest["columns"]] == [name for name, _ in DESIGN_COLUMNS + OUR_COLUMNS]
    assert manifest["status"] == "complete" and manifest["counts"] == {"images": 30, "rows": 30, "skipped": 0,
                                                                         "shards": 4}
    assert manifest["model_id"].startswith("pets:") and manifest["map"]["status"] == "done"
    glob = str(reference_store / "**" / "*.parquet")
    counts = duckdb.connect().execute(f"SELECT count(*), count(map_x) FROM read_parquet('{glob}')").fetchall()
    assert counts == [(30, 30)]


def test_values_equal_a_direct_engine_computation(reference_store, _folder_template):
    from gradcam_core import CamEngine

    ws = load_workspace(_folder_template / "workspace.toml")
    picked = [0, 9, 17, 29]
    rows = open_store(reference_store).rows(picked, columns=("index", "path", "label", "pred", "prob", "loss",
                                                             "topk_index", "topk_prob", "embedding", "cam_peak_y",
                                                             "cam_peak_x", "margin"))
    images = ws.test_set.tensors(picked)
    engine = CamEngine(ws.model, "cpu")
    logits = torch.from_numpy(engine.predict(images))
    probs = torch.softmax(logits.double(), dim=1)
    labels = torch.as_tensor(ws.test_set.labels[picked])
    assert rows["path"].to_pylist() == [ws.test_set.item_id(i) for i in picked]
    assert rows["label"].to_pylist() == labels.tolist()
    assert rows["pred"].to_pylist() == logits.argmax(1).tolist()
    np.testing.assert_allclose(rows["prob"].to_numpy(), probs.max(1).values.numpy(), rtol=1e-5)
    np.testing.assert_allclose(rows["loss"].to_numpy(), torch.nn.functional.cross_entropy(
        logits.double(), labels, reduction="none").numpy(), rtol=1e-4, atol=1e-6)
    top = probs.topk(3, dim=1)  # 5 best, or all classes when there are fewer
    assert rows["topk_index"].to_pylist() == top.indices.tolist()
    np.testing.assert_allclose(np.array(rows["topk_prob"].to_pylist()), top.values.numpy(), rtol=1e-5)
    np.testing.assert_allclose(rows["margin"].to_numpy(), (top.values[:, 0] - top.values[:, 1]).numpy(), atol=1e-6)
    np.testing.assert_allclose(np.array(rows["embedding"].to_pylist()), ws.features(images), rtol=1e-4, atol=1e-5)
    maps = engine.explain(images, layers=[ws.default_layer]).cams["gradcam"][ws.default_layer]
    h, w = maps.shape[1:]
    peak = maps.reshape(len(picked), -1).argmax(1)
    np.testing.assert_allclose(rows["cam_peak_y"].to_numpy(), (peak // w + 0.5) / h)
    np.testing.assert_allclose(rows["cam_peak_x"].to_numpy(), (peak % w + 0.5) / w)


class Interrupt(Exception):
    pass


def stop_after(shards: int):
    def progress(event):
        if event.stage == "images" and event.shards_done >= shards:
            raise Interrupt(f"stopped after {event.shards_done} shards")

    return progress


def test_an_interrupted_run_resumes_to_the_same_table(folder_ws, reference_store):
    out = folder_ws.parent / "pets.store"
    with pytest.raises(Interrupt):
        precompute(folder_ws, out, shard_size=SHARD_SIZE, batch_size=4, workers=0, progress=stop_after(2))
    assert [p.name for p in shard_files(out)] == ["part-00000.parquet", "part-00001.parquet"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert ds.dataset(out, format="parquet").count_rows() == 16  # only complete shards are visible
    assert json.loads((out / MANIFEST_NAME).read_text())["status"] == "interrupted"

    summary = precompute(folder_ws, out, shard_size=SHARD_SIZE, batch_size=4, workers=0)
    assert (summary.shards_resumed, summary.shards_written) == (2, 2)
    assert_same_rows(read_table(out), read_table(reference_store))
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["status"] == "complete" and [r["status"] for r in manifest["runs"]] == ["interrupted", "complete"]


def test_rerunning_a_complete_store_writes_nothing(folder_ws, reference_store):
    out = folder_ws.parent / "copy.store"
    shutil.copytree(reference_store, out)
    before = {p.name: p.stat().st_mtime_ns for p in shard_files(out)}
    summary = precompute(folder_ws, out, shard_size=SHARD_SIZE, batch_size=4, workers=0)
    assert (summary.shards_resumed, summary.shards_written, summary.rows) == (4, 0, 30)
    assert {p.name: p.stat().st_mtime_ns for p in shard_files(out)} == before


def _retrain(toml):
    """Give the workspace other weights: a different checkpoint, so another model id."""
    import torchvision

    torch.manual_seed(123)
    torch.save(torchvision.models.resnet18(weights=None, num_classes=3).state_dict(), toml.parent / "weights.pt")


def test_a_store_of_another_model_is_refused_and_overwrite_starts_anew(folder_ws, reference_store):
    out = folder_ws.parent / "copy.store"
    shutil.copytree(reference_store, out)
    old = read_table(out)
    _retrain(folder_ws)
    with pytest.raises(StoreError, match=r"another model.*pets:.*--overwrite"):
        precompute(folder_ws, out, shard_size=SHARD_SIZE, workers=0)
    assert_same_rows(read_table(out), old)  # refused: nothing touched

    summary = precompute(folder_ws, out, overwrite=True, shard_size=16, workers=0)
    assert summary.shards_resumed == 0 and summary.rows == 30
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["model_id"] == load_workspace(folder_ws).model_id != json.loads(
        (reference_store / MANIFEST_NAME).read_text())["model_id"]
    assert manifest["shard_size"] == 16 and len(shard_files(out)) == 2
    assert read_table(out)["prob"].to_pylist() != old["prob"].to_pylist()


def test_a_folder_that_is_not_a_store_is_refused_even_with_overwrite(folder_ws):
    out = folder_ws.parent / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"not ours")
    for overwrite in (False, True):
        with pytest.raises(StoreError, match="holds other files"):
            precompute(folder_ws, out, overwrite=overwrite, workers=0)
    assert (out / "holiday.jpg").read_bytes() == b"not ours"


@pytest.mark.slow
def test_unreadable_files_are_skipped_listed_and_kept_across_resumes(folder_ws):
    ws = load_workspace(folder_ws)
    assert len(ws.test_set) == 30  # listed first: the files are damaged after opening, as in a long run
    (folder_ws.parent / "images" / "cat" / "03.png").write_bytes(b"\x89PNG truncated")
    (folder_ws.parent / "images" / "fox" / "09.png").write_bytes(b"")
    out = folder_ws.parent / "pets.store"
    with pytest.raises(Interrupt):
        precompute(ws, out, shard_size=SHARD_SIZE, batch_size=4, workers=0, progress=stop_after(1))
    assert [p.name for p in shard_files(out)] == ["part-00000.parquet"]

    summary = precompute(folder_ws, out, shard_size=SHARD_SIZE, batch_size=4, workers=2)  # shard 0 not redone
    assert summary.shards_resumed == 1
    assert [(s["index"], s["path"], s["label"]) for s in summary.skipped] == [(3, "cat/03.png", 0),
                                                                              (29, "fox/09.png", 2)]
    assert "cat/03.png" in summary.skipped[0]["reason"] and "not an image" in summary.skipped[0]["reason"]
    assert "empty" in summary.skipped[1]["reason"]
    store = open_store(out)
    assert store.num_rows == 28 and store.manifest["counts"]["skipped"] == 2
    assert store.skipped == summary.skipped
    paths, labels = store.listing()  # skipped items keep their place, so indices match the test set
    assert paths == ws.test_set.relative_paths and labels.tolist() == ws.test_set.labels.tolist()


def test_the_map_is_fitted_on_a_subset_and_places_the_rest(folder_ws, reference_store):
    from store.embedding_map import fit_map, fit_subset
    from store.map_stage import build_map, embedding_matrix

    out = folder_ws.parent / "copy.store"
    shutil.copytree(reference_store, out)
    info = build_map(out, seed=0, fit_max=12)
    assert (info["fit_points"], info["placed_points"], info["method"]) == (12, 18, "openTSNE")
    table = read_table(out)
    chosen = table["index"].to_numpy()[fit_subset(30, 12, seed=0)]
    subset = table.filter(pa.array(np.isin(table["index"].to_numpy(), chosen)))
    fitted = fit_map(embedding_matrix(subset), seed=0)
    xy = np.stack([subset["map_x"].to_numpy(), subset["map_y"].to_numpy()], axis=1)
    np.testing.assert_allclose(xy, fitted.xy, rtol=1e-5)  # the subset is the fitted map itself
    rest = table.filter(pa.array(~np.isin(table["index"].to_numpy(), chosen)))
    placed = np.stack([rest["map_x"].to_numpy(), rest["map_y"].to_numpy()], axis=1)
    np.testing.assert_allclose(placed, fitted.place(embedding_matrix(rest)), rtol=1e-5)
    low, high = fitted.xy.min(axis=0), fitted.xy.max(axis=0)
    assert ((placed >= low - 1e-3) & (placed <= high + 1e-3)).all()  # medians of fitted neighbours stay inside


def test_a_shard_write_that_dies_midway_leaves_nothing_visible(folder_ws, monkeypatch):
    import store.shards

    real_write = store.shards.pq.write_table
    calls = []

    def dies_in_the_third_shard(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 3:
            with open(where, "wb") as handle:
                handle.write(b"PAR1 half a shard")
            raise OSError("disk full")
        return real_write(table, where, **kwargs)

    monkeypatch.setattr(store.shards.pq, "write_table", dies_in_the_third_shard)
    out = folder_ws.parent / "pets.store"
    with pytest.raises(OSError, match="disk full"):
        precompute(folder_ws, out, shard_size=SHARD_SIZE, batch_size=4, workers=0)
    assert [p.name for p in shard_files(out)] == ["part-00000.parquet", "part-00001.parquet"]
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "part-00000.parquet", "part-00001.parquet"]
    assert ds.dataset(out, format="parquet").count_rows() == 16


def test_ray_needs_a_workspace_file_its_actors_can_load(_folder_template, tmp_path):
    import dataclasses

    in_memory = dataclasses.replace(load_workspace(_folder_template / "workspace.toml"), toml_path=None)
    with pytest.raises(StoreError, match="no TOML file, and Ray actors load the workspace from one"):
        precompute(in_memory, tmp_path / "s.store", engine="ray")
    assert not (tmp_path / "s.store").exists()
