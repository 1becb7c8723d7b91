"""The pages on a precomputed store (issue 11), through AppTest: with a store nothing decodes, classifies or lists
the whole set at start-up; a small store gives the same answers as the rows classified in the page; a store that
cannot be used, or a set too large without one, is said with the exact command that fixes it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import models.datasets
import models.workspace
from bench.dashboard_scale_bench import make_workspace, synthetic_store, write_toml
from dashboard import store_source
from dashboard.gallery import GALLERY_SIZE
from dashboard.state import ExplorerState as E
from gradcam_core import CamEngine
from models import DEFAULT_WORKSPACE, FolderImageSet, load_workspace
from models.datasets import ArrayImageSet
from store import open_store
from tests.app.helpers import assert_clean, main_images, run_app

TSNE, ANALYSIS = "pages/tsne.py", "pages/analysis.py"


def picks(at, prefix: str = "explorer.pick.") -> list[int]:
    return [int(b.key.rsplit(".", 1)[1]) for b in at.button if str(b.key).startswith(prefix)]


def sidebar_accuracy(at) -> str:
    return next(m.value for m in at.sidebar.metric if m.label == "Test accuracy")


@pytest.fixture
def forwards(monkeypatch) -> list[int]:
    """Images per no-grad forward (``predict`` / ``features``) of any engine. The explorer's view classifies the
    one image it shows (within its explain pass, or by a one-image forward); classifying the test set means batches
    of many."""
    sizes: list[int] = []
    for name in ("predict", "features"):
        original = getattr(CamEngine, name)

        def counting(self, images, *args, _original=original, **kwargs):
            sizes.append(int(images.shape[0]))
            return _original(self, images, *args, **kwargs)

        monkeypatch.setattr(CamEngine, name, counting)
    return sizes


@pytest.fixture
def decoded(monkeypatch) -> list[int]:
    """How many images of an in-memory test set were decoded or turned into model inputs, call by call."""
    calls: list[int] = []
    original_image, original_tensors = ArrayImageSet.image, ArrayImageSet.tensors

    def image(self, i):
        calls.append(1)
        return original_image(self, i)

    def tensors(self, indices):
        calls.append(len(indices))
        return original_tensors(self, indices)

    monkeypatch.setattr(ArrayImageSet, "image", image)
    monkeypatch.setattr(ArrayImageSet, "tensors", tensors)
    return calls


# ------------------------------------------------------------------------------------------ nothing at start-up
def test_with_a_store_no_page_decodes_or_classifies_the_whole_set(engine_calls, forwards, decoded):
    at = run_app()
    assert_clean(at)
    assert len(picks(at)) == GALLERY_SIZE
    assert sum(decoded) <= GALLERY_SIZE + 1 and max(decoded) == 1  # 20 thumbnails and the shown image
    assert engine_calls.explain_batches == [1] * engine_calls["explain"]
    for page in (TSNE, ANALYSIS):
        at.switch_page(page).run()
        assert_clean(at)
    assert set(forwards) <= {1}, f"a page classified more than the image it shows: {forwards}"
    assert max(decoded) <= 8 and sum(decoded) < 100  # the analysis page's 16 cell thumbnails and two 8-image grids
    assert sidebar_accuracy(at) == f"{open_store(load_workspace(DEFAULT_WORKSPACE).store).class_summary().accuracy:.1%}"


def test_a_folder_with_a_store_is_listed_by_the_store_not_walked(monkeypatch, tmp_path, forwards):
    make_workspace(tmp_path)  # one PNG per class; the store's 3,000 rows point at them
    toml = write_toml(tmp_path, 3000)
    synthetic_store(tmp_path / "store-3000", 3000, load_workspace(toml).model_id)
    opened: list[int] = []
    original = FolderImageSet.image

    def image(self, i):
        opened.append(i)
        return original(self, i)

    def walk(*args, **kwargs):
        raise AssertionError("the image folder was walked although the store lists it")

    monkeypatch.setattr(models.datasets, "list_image_folder", walk)
    monkeypatch.setattr(FolderImageSet, "image", image)
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(toml)])
    at = run_app()
    assert_clean(at)
    assert "3000 test images" in " ".join(c.value for c in at.sidebar.caption)
    assert len(picks(at)) == GALLERY_SIZE and len(opened) <= GALLERY_SIZE + 1
    assert set(forwards) <= {1}
    assert any("the precomputed store `store-3000`" in c.value for c in at.caption)


# ------------------------------------------------------------------------------------------ same answers
def _answers(at) -> dict:
    """What a user reads on the explorer and the analysis page."""
    answers = {"draw": picks(at), "accuracy": sidebar_accuracy(at),
               "gallery": next(c.value.split(" Predictions:")[0] for c in at.caption
                               if c.value.startswith("The model gets"))}
    at.selectbox(key=E.filter).set_value("misclassified")
    at.selectbox(key="explorer.sort").set_value("loss").run()
    assert_clean(at)
    answers["worst"] = sorted(picks(at))
    answers["pager"] = next(c.value for c in at.caption if " of " in c.value and "page" in c.value)
    at.switch_page(ANALYSIS).run()
    assert_clean(at)
    answers["matrix"] = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["text"]
    answers["metrics"] = [(m.label, m.value) for m in at.main.metric]
    table = at.dataframe[0].value
    answers["per_class"] = table[["class", "support", "predicted as", "correct"]].values.tolist()
    answers["recall"] = np.round(table["recall"].to_numpy(), 6).tolist()
    answers["cell"] = picks(at, "analysis.cell.")
    return answers


def test_a_small_store_gives_the_same_predictions_and_counts_as_classifying_in_the_page(monkeypatch, forwards):
    with_store = _answers(run_app({"ws": "digits"}))
    assert set(forwards) <= {1}
    forwards.clear()
    monkeypatch.setattr(models.workspace, "store_path", lambda parsed: None)
    monkeypatch.setattr(models.workspace, "checkpoint_sidecars", lambda weights: ({}, None))  # no shipped logits
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    at = run_app({"ws": "digits"})
    assert any("Predictions: classified here" in c.value for c in at.caption)
    without = _answers(at)
    assert sum(forwards) >= len(load_workspace("digits").test_set), "without a store the page classifies the set"
    assert without == with_store
    assert len(with_store["worst"]) > 0 and len(with_store["draw"]) == GALLERY_SIZE


# ------------------------------------------------------------------------------------------ stores it cannot use
def _digits_with_store(tmp_path: Path, change) -> Path:
    """A copy of the digits workspace whose [data] store is a copy of the shipped store, changed by ``change``."""
    bundled = models.workspace.BUNDLED_DIR
    store = tmp_path / "digits-copy.store"
    shutil.copytree(bundled / "digits.store", store)
    manifest = json.loads((store / "_manifest.json").read_text())
    change(manifest)
    (store / "_manifest.json").write_text(json.dumps(manifest))
    text = (bundled / "digits.toml").read_text()
    text = text.replace('"../checkpoints/', f'"{(bundled / ".." / "checkpoints").resolve()}/')
    text = text.replace("[data]\n", f'[data]\nstore = "{store}"\n')
    toml = tmp_path / "digits.toml"
    toml.write_text(text)
    return toml


@pytest.mark.parametrize("case, says, overwrite", [
    ("another model", "was made by another model (`digits:000000000000`", True),
    ("unfinished", "is not finished (status *interrupted*", False),
])
def test_a_store_that_cannot_be_used_is_named_with_its_command_and_the_pages_fall_back(monkeypatch, tmp_path, case,
                                                                                        says, overwrite):
    change = {"another model": lambda m: m.update(model_id="digits:000000000000"),
              "unfinished": lambda m: m.update(status="interrupted")}[case]
    toml = _digits_with_store(tmp_path, change)
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(toml)])
    at = run_app()
    assert_clean(at)
    command = (f"gradcam precompute --workspace {toml.resolve()} --out {tmp_path / 'digits-copy.store'}"
               + (" --overwrite" if overwrite else ""))
    warnings = [w.value for w in at.warning if says in w.value]
    assert len(warnings) == 1 and f"`{command}`" in warnings[0], [w.value for w in at.warning]
    assert any("Predictions: the logits shipped with the model" in c.value for c in at.caption)
    assert len(picks(at)) == GALLERY_SIZE


def test_a_big_set_without_a_store_shows_the_command_instead_of_classifying(monkeypatch, pets_workspace, forwards):
    monkeypatch.setattr(store_source, "NO_STORE_LIMIT", 5)  # the 9-image folder counts as big
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(pets_workspace)])
    at = run_app()
    assert_clean(at)
    toml = pets_workspace.resolve()
    command = f"gradcam precompute --workspace {toml} --out {toml.with_name('pets.store')}"
    assert any(f"`{command}`" in w.value and "9 test images and no precomputed store" in w.value for w in at.warning)
    assert len(set(main_images(at).values())) == 3, "single images are still explained"
    assert sorted(picks(at)) == list(range(9))  # a draw from the labels alone
    assert at.selectbox(key="explorer.sort").disabled
    assert sidebar_accuracy(at) == "n/a"
    at.switch_page(ANALYSIS).run()
    assert_clean(at)
    assert any(f"`{command}`" in w.value for w in at.warning)
    assert set(forwards) <= {1}, f"the big set was classified: {forwards}"
