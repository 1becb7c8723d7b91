"""The parts behind the store-backed pages, without Streamlit: rows classified in the page answer every query as the
precomputed store does, the progress text, the commands the pages print, and which stores are refused."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from dashboard.gallery import ScoreFilter, filter_options, row_filter
from dashboard.store_memory import Progress, memory_store, shipped_rows
from dashboard.store_source import check_store, precompute_command
from models import load_workspace
from store import RowFilter, open_store


@pytest.fixture(scope="module")
def digits():
    return load_workspace("digits")


def test_rows_classified_here_answer_every_query_as_the_store_does(digits):
    """Same rows (the shipped logits are the store's predictions), same SQL: the pages cannot tell them apart."""
    store = open_store(digits.store)
    computed = memory_store(digits, shipped_rows(digits.test_set, digits.test_logits), [], "shipped")
    mine, theirs = computed.class_summary(), store.class_summary()
    assert np.array_equal(mine.confusion, theirs.confusion) and mine.accuracy == theirs.accuracy
    np.testing.assert_allclose(mine.mean_loss, theirs.mean_loss, rtol=1e-4)
    for seed in (0, 5):
        for name in filter_options(10)[:5]:
            assert np.array_equal(computed.sample(seed, name), store.sample(seed, name)), (seed, name)
    where = row_filter("misclassified", ScoreFilter(max_prob=0.9))
    assert computed.count(where) == store.count(where) > 0
    for sort in ("loss", "margin", "index"):
        assert (computed.page(where, sort=sort, descending=True)["index"].to_pylist()
                == store.page(where, sort=sort, descending=True)["index"].to_pylist())
    assert computed.rows([7, 3])["pred"].to_pylist() == store.rows([7, 3])["pred"].to_pylist()


def test_row_filter_maps_the_gallery_filters():
    assert row_filter("all") == RowFilter()
    assert row_filter("misclassified", ScoreFilter(0.2, 0.8, 0.5, 1.0)) == RowFilter(
        outcome="misclassified", min_prob=0.2, max_prob=0.8, max_margin=0.5, min_loss=1.0)
    assert row_filter("class:3") == RowFilter(label=3)
    with pytest.raises(ValueError, match="unknown gallery filter 'pred:3'"):
        row_filter("pred:3")


def test_progress_says_the_count_and_the_seconds_left():
    assert Progress(0, 2000, 0.0).text() == "Classifying the test images: 0 of 2,000"
    assert Progress(640, 2000, 4.0).text() == "Classifying the test images: 640 of 2,000, ~8 s left"
    assert Progress(2000, 2000, 9.0).eta_seconds == 0


def test_the_commands_the_pages_print(digits, tmp_path):
    assert precompute_command(digits) == f"gradcam precompute --workspace digits --out {digits.store}"
    toml = tmp_path / "my set" / "cats.toml"
    toml.parent.mkdir()
    mine = type("W", (), {"name": "cats", "toml_path": toml, "store": None})()
    assert precompute_command(mine, overwrite=True) == (
        f"gradcam precompute --workspace '{toml}' --out '{toml.with_name('cats.store')}' --overwrite")
    from models.train import store_command

    assert store_command("digits")[1:] == ["-m", "cli", "precompute", "--workspace", "digits", "--out",
                                           str(digits.store), "--overwrite"]
    assert store_command("digits")[0] == sys.executable


def test_a_store_of_other_images_is_refused_with_the_rebuild_command(digits, tmp_path):
    assert check_store(digits, digits.test_set).usable
    copy = tmp_path / "digits.store"
    shutil.copytree(digits.store, copy)
    manifest = json.loads((copy / "_manifest.json").read_text())
    manifest["dataset_sha256"] = "0" * 64
    (copy / "_manifest.json").write_text(json.dumps(manifest))
    digits_elsewhere = type("W", (), {**{k: getattr(digits, k) for k in ("name", "model_id", "toml_path")},
                                      "store": Path(copy)})()
    status = check_store(digits_elsewhere, digits.test_set)
    assert not status.usable and "made from other test images" in status.problem
    assert f"`gradcam precompute --workspace digits --out {copy} --overwrite`" in status.problem
