"""AppTest fixtures: fresh Streamlit caches for every test, plain argv, and an engine-call counter."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest
import streamlit as st
import torch
import torchvision
from PIL import Image
from streamlit.runtime.pages_manager import PagesManager

from gradcam_core import CamEngine

ENGINE_METHODS = ("explain", "explain_classes", "explain_topk", "predict", "topk", "features", "activations")
@pytest.fixture(autouse=True)
def clear_streamlit_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    """Under AppTest ``sys.argv`` is pytest's; make it what ``streamlit run app.py`` gives (tests that need
    ``--workspace`` set it themselves)."""
    monkeypatch.setattr(sys, "argv", ["app.py"])


@pytest.fixture(autouse=True)
def navigation_mode(monkeypatch):
    """Every AppTest run goes through app.py, as on a server that has run app.py's st.navigation once.

    With a folder named pages/ next to app.py, Streamlit starts in its old multipage mode, in which a rerun of
    a page runs the page file alone; st.navigation switches that off for the whole process. AppTest resets the
    switch before every run, so without this each rerun after the first would skip app.py (the page still
    works, see test_a_page_run_without_app_py_draws_the_shell_itself, but the sidebar's widgets would get new
    ids and forget their values between the first run and the second).
    """
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


class EngineCalls(Counter):
    """How often each CamEngine entry point ran, and the batch size of every explain call."""

    def __init__(self):
        super().__init__()
        self.explain_batches: list[int] = []

    def engine_total(self) -> int:
        return sum(self.values())


@pytest.fixture
def engine_calls(monkeypatch) -> EngineCalls:
    calls = EngineCalls()
    for name in ENGINE_METHODS:
        original = getattr(CamEngine, name)

        def counting(self, images, *args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            if _name.startswith("explain"):
                calls.explain_batches.append(int(images.shape[0]))
            return _original(self, images, *args, **kwargs)

        monkeypatch.setattr(CamEngine, name, counting)
    return calls


@pytest.fixture
def pets_workspace(tmp_path):
    """A bring-your-own workspace: an untrained resnet18 state_dict and a 3-class ImageFolder (9 images), at 64x64;
    it records no test accuracy."""
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "fox"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / name / f"{i}.png")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None, num_classes=3).state_dict(), tmp_path / "weights.pt")
    path = tmp_path / "pets.toml"
    path.write_text('name = "pets"\n[model]\narch = "resnet18"\ncheckpoint = "weights.pt"\n'
                    '[data]\nroot = "images"\n[preprocessing]\ninput_size = [64, 64]\n')
    return path


@pytest.fixture
def without_stores(monkeypatch):
    """Every workspace as if it had no precomputed store (the bundled ones ship one): the pages' paths for a set
    without a store — classified in the page, a t-SNE of a subset computed on request."""
    import models.workspace

    monkeypatch.setattr(models.workspace, "store_path", lambda parsed: None)
