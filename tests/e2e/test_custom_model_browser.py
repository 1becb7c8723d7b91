"""A user's own model class in a real browser: `nets.py:XRayClassifier` + a checkpoint + an ImageFolder, described
by a five-line TOML, served with `--workspace`, explained in Chromium at its own layers."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from tests.e2e.browser_helpers import RENDER_MS, assert_no_traceback, streamlit_server

pytestmark = pytest.mark.browser
VIEWER = '[data-testid="cam-viewer"]'

NETS_PY = '''
from torch import nn


class XRayClassifier(nn.Module):
    def __init__(self, num_classes=2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True))
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean(dim=(2, 3)))
'''


@pytest.fixture(scope="module")
def custom_workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xray")
    (folder / "nets.py").write_text(NETS_PY)
    namespace: dict = {}
    exec(compile(NETS_PY, "nets.py", "exec"), namespace)  # the same class, built here for its checkpoint
    torch.manual_seed(0)
    torch.save(namespace["XRayClassifier"](num_classes=2).state_dict(), folder / "xray.pt")
    rng = np.random.default_rng(0)
    for name in ("normal", "pneumonia"):
        (folder / "images" / name).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "images" / name / f"{i}.png")
    toml = folder / "xray.toml"
    toml.write_text('[model]\nsource = "python"\nfactory = "nets.py:XRayClassifier"\ncheckpoint = "xray.pt"\n'
                    '[data]\nroot = "images"\n[preprocessing]\ninput_size = [64, 64]\n')
    return toml


def test_the_dashboard_explains_a_custom_class(browser, artifacts_dir, custom_workspace):
    log = artifacts_dir / "e2e" / "custom_model.server.log"
    with streamlit_server(log, extra_args=("--", "--workspace", str(custom_workspace))) as url:
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(url + "/")
        viewer = page.locator(f'{VIEWER}[data-layer="body.0"]')
        viewer.wait_for(timeout=RENDER_MS)  # the last Conv2d is the default layer, drawn
        assert_no_traceback(page)
        picker = page.locator("[data-testid='stSidebar']").get_by_role("combobox", name="Workspace")
        assert picker.input_value() == "xray.toml (from --workspace)"
        assert "nets.py:XRayClassifier + xray.pt" in page.locator("[data-testid='stSidebar']").inner_text()
        options = page.get_by_role("combobox", name="Layer").locator("option").all_inner_texts()
        assert any(text.startswith("stem.0") for text in options), options
        assert any(text.startswith("body.0") for text in options), options
        picker = page.get_by_role("combobox", name="Layer")
        picker.select_option(next(o.get_attribute("value") for o in picker.locator("option").all()
                                  if (o.get_attribute("value") or "").startswith("stem.0")))
        page.locator(f'{VIEWER}[data-layer="stem.0"]').wait_for(timeout=RENDER_MS)
        assert re.search(r"(normal|pneumonia)", page.content())
        page.screenshot(path=str(artifacts_dir / "e2e" / "custom_model.png"))
        page.close()
