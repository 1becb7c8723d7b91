"""The store reader against hand-made stores with known answers."""

from __future__ import annotations

import threading

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from dashboard.gallery import filter_options, sample_gallery
from models import FolderImageSet, ImageTransform
from store import RowFilter, StoreError, open_store
from store.reader import MAP_COLUMNS
from store.schema import ROW_SCHEMA, THUMB_SIZE, shard_files, shard_name, temporary_path, write_manifest
from store.shards import write_shard

CLASS_NAMES = ["cat", "dog", "fox"]
#: index, label, pred, prob, loss, margin — index 5 is an unreadable file, index 12 has no label
KNOWN = [
    (0, 0, 0, 0.90, 0.10, 0.80), (1, 0, 1, 0.60, 1.20, 0.30), (2, 1, 1, 0.95, 0.05, 0.90),
    (3, 1, 2, 0.55, 2.00, 0.20), (4, 2, 2, 0.70, 0.40, 0.50), (6, 2, 0, 0.50, 1.50, 0.10),
    (7, 0, 0, 0.80, 0.20, 0.65), (8, 1, 0, 0.65, 0.90, 0.35), (9, 2, 2, 0.99, 0.01, 0.98),
    (10, 0, 0, 0.75, 0.30, 0.55), (11, 1, 1, 0.85, 0.15, 0.70), (12, -1, 2, 0.58, None, 0.25),
]
SKIPPED = [{"index": 5, "path": "fox/05.png", "label": 2, "reason": "'05.png' is empty (0 bytes)"}]


def rows_table(index, label, pred, prob, loss, margin) -> pa.Table:
    n = len(index)
    label = np.asarray(label)
    return pa.table({
        "index": pa.array(index, pa.int64()),
        "path": [f"{CLASS_NAMES[max(lab, 0)]}/{i:02d}.png" for i, lab in zip(index, label, strict=True)],
        "label": pa.array(label, pa.int64()),
        "pred": pa.array(pred, pa.int64()),
        "prob": pa.array(prob, pa.float32()),
        "loss": pa.array(loss, pa.float32()),
        "topk_index": [[p, (p + 1) % 3, (p + 2) % 3] for p in pred],
        "topk_prob": [[q, (1 - q) / 2, (1 - q) / 2] for q in prob],
        "embedding": [[float(i), -float(i)] for i in index],
        "margin": pa.array(margin, pa.float32()),
        "entropy": pa.array(np.linspace(0, 1, n), pa.float32()),
        "correct": pa.array([None if lab < 0 else bool(lab == p) for lab, p in zip(label, pred, strict=True)]),
        "map_x": pa.array(np.asarray(index, float), pa.float32()),
        "map_y": pa.array(-np.asarray(index, float), pa.float32()),
        "cam_thumb": [bytes([i % 256]) * THUMB_SIZE**2 for i in index],
        "cam_peak_y": pa.array(np.full(n, 0.5), pa.float32()),
        "cam_peak_x": pa.array(np.full(n, 0.25), pa.float32()),
    }, schema=ROW_SCHEMA)


def make_store(path, table: pa.Table, images: int, shard_size: int, skipped=()):
    path.mkdir(parents=True)
    for shard in range(-(-images // shard_size)):
        low, high = shard * shard_size, (shard + 1) * shard_size
        part = table.filter(pa.array((table["index"].to_numpy() >= low) & (table["index"].to_numpy() < high)))
        write_shard(path, shard, part, [s for s in skipped if low <= s["index"] < high])
    write_manifest(path, {"format": "gradcam-store", "format_version": 1, "model_id": "pets:abc", "images": images,
                          "class_names": CLASS_NAMES, "status": "complete", "skipped": list(skipped),
                          "map": {"status": "done"}})
    return path


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    table = rows_table(*zip(*KNOWN, strict=True))
    return open_store(make_store(tmp_path_factory.mktemp("known") / "s.store", table, 13, 8, SKIPPED))


def random_store(path, n: int, wrong_rate: float, seed: int):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, n)
    label[rng.random(n) < 0.02] = -1
    pred = np.where(rng.random(n) < wrong_rate, (label + 1) % 3, np.maximum(label, 0))
    prob = rng.uniform(0.34, 1, n)
    loss = np.where(label >= 0, rng.uniform(0, 3, n), np.nan)
    table = rows_table(np.arange(n), label, pred, prob, pa.array(loss, pa.float32(), from_pandas=True),
                       rng.uniform(0, 1, n))
    return open_store(make_store(path, table, n, 128)), label, pred


def indices(table: pa.Table) -> list[int]:
    return table["index"].to_pylist()


def test_gallery_pages_sort_filter_and_paginate(known):
    assert indices(known.worst_mistakes(20)) == [3, 6, 1, 8]
    assert indices(known.page(RowFilter(outcome="misclassified"), sort="loss", descending=True, limit=2,
                              offset=1)) == [6, 1]
    assert indices(known.page(RowFilter(label=[1, 2], min_prob=0.6), sort="prob", descending=True)) == [9, 2, 11, 4, 8]
    assert indices(known.page(RowFilter(pred=0), sort="margin")) == [6, 8, 10, 7, 0]
    assert indices(known.page(sort="loss", limit=3, descending=True, offset=10)) == [9, 12]  # null loss last
    assert indices(known.page(RowFilter(max_loss=0.2, min_margin=0.6))) == [0, 2, 7, 9, 11]
    assert [known.count(RowFilter(outcome=o)) for o in ("all", "correct", "misclassified")] == [12, 7, 4]
    page = known.page(limit=1)
    assert "embedding" not in page.column_names and "cam_thumb" not in page.column_names
    with pytest.raises(StoreError, match="cannot sort by 'path'"):
        known.page(sort="path")
    with pytest.raises(StoreError, match="unknown store column"):
        known.page(columns=("index", "secret"))
    with pytest.raises(StoreError, match="unknown outcome 'wrong'"):
        known.count(RowFilter(outcome="wrong"))


def test_rows_come_in_the_order_asked_and_skipped_ones_are_left_out(known):
    assert indices(known.rows([9, 5, 0, 3])) == [9, 0, 3]
    found, vectors = known.embeddings([3, 1])
    assert found.tolist() == [3, 1] and vectors.tolist() == [[3.0, -3.0], [1.0, -1.0]]
    found, thumbs = known.thumbnails([7])
    assert thumbs.shape == (1, THUMB_SIZE, THUMB_SIZE) and (thumbs == 7).all()


def test_map_points_have_the_map_columns_only_and_a_stable_cap(known):
    points = known.map_points()
    assert points.column_names == list(MAP_COLUMNS) and indices(points) == [i for i, *_ in KNOWN]
    assert points["map_y"].to_pylist() == [-float(i) for i, *_ in KNOWN]
    capped = known.map_points(max_points=5)
    assert capped.num_rows == 5 and indices(capped) == sorted(indices(capped))
    assert indices(known.map_points(max_points=5)) == indices(capped)
    assert indices(known.map_points(RowFilter(outcome="misclassified"))) == [1, 3, 6, 8]


def test_class_summary_from_one_aggregate(known):
    summary = known.class_summary()
    assert summary.confusion.tolist() == [[3, 1, 0], [1, 2, 1], [1, 0, 2]]
    assert summary.unlabelled.tolist() == [0, 0, 1]
    assert summary.support.tolist() == [4, 4, 3] and summary.predicted.tolist() == [5, 3, 3]
    assert summary.correct.tolist() == [3, 2, 2] and summary.accuracy == pytest.approx(7 / 11)
    np.testing.assert_allclose(summary.mean_loss, [0.45, 0.775, 1.91 / 3], rtol=1e-6)


def test_listing_keeps_skipped_files_in_place_so_a_folder_set_opens_without_walking(known, tmp_path):
    paths, labels = known.listing()
    assert len(paths) == 13 and paths[5] == "fox/05.png" and labels[5] == 2 and labels[12] == -1
    image_set = FolderImageSet(tmp_path, CLASS_NAMES, ImageTransform((8, 8)), listing=(paths, labels))
    assert image_set.item_id(3) == "dog/03.png" and image_set.item_id(5) == "fox/05.png"


def test_an_incomplete_store_says_so_instead_of_misnumbering(tmp_path):
    table = rows_table(*zip(*KNOWN, strict=True))
    store_path = make_store(tmp_path / "s.store", table, 13, 8, SKIPPED)
    shard_files(store_path)[1].unlink()
    with pytest.raises(StoreError, match=r"covers 8 of its 13 images.*rerunning `gradcam precompute`"):
        open_store(store_path).listing()
    with pytest.raises(StoreError, match="not a gradcam store"):
        open_store(tmp_path)
    for shard in shard_files(store_path):
        shard.unlink()
    with pytest.raises(StoreError, match="holds no rows yet"):
        open_store(store_path)


@pytest.mark.parametrize(("n", "wrong_rate"), [(500, 0.1), (300, 0.005), (60, 0.5)])
def test_the_seeded_draw_equals_the_dashboards(tmp_path, n, wrong_rate):
    store, label, pred = random_store(tmp_path / "r.store", n, wrong_rate, seed=n)
    for filter_name in filter_options(3):
        for seed in range(4):
            expected = sample_gallery(label, pred, seed, filter_name)
            assert store.sample(seed, filter_name).tolist() == expected.tolist(), (filter_name, seed)


def test_both_readers_read_the_store_and_ignore_temporary_files(known):
    half_written = temporary_path(known.path / shard_name(2))  # what a killed writer leaves behind
    half_written.write_bytes(b"PAR1 half a shard")
    try:
        assert ds.dataset(known.path, format="parquet").count_rows() == 12
        glob = str(known.path / "**" / "*.parquet")
        assert duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [(12,)]
    finally:
        half_written.unlink()


def test_one_store_serves_many_threads(known):
    def answers():
        return (indices(known.worst_mistakes(3)), known.sample(1).tolist(), known.count(RowFilter(label=0)),
                known.class_summary().confusion.tolist(), indices(known.rows([11, 2])))

    expected = answers()
    results, errors = [], []

    def hammer():
        try:
            results.extend(answers() for _ in range(10))
        except Exception as error:  # collected: an assertion in a thread would be lost
            errors.append(error)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 80 and all(r == expected for r in results)
