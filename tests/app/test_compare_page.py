"""The "Compare models" page: the shortcut story told on its own (one heart, then a seeded sample), the difference
view, the sample's numbers, an upload, a pair that must wait for the button, and a pair that cannot be compared."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import compare_view
from dashboard.state import CompareState as C
from tests.app.helpers import APP, RUN_TIMEOUT, assert_clean

COMPARE = "pages/compare.py"


@pytest.fixture(autouse=True)
def report_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADCAM_CACHE_DIR", str(tmp_path))


def open_compare(**state) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    at.query_params["ws"] = "shapes"
    for key, value in state.items():
        at.session_state[key] = value
    return at.switch_page(COMPARE).run()


def page_text(at: AppTest) -> str:
    return "\n".join(e.value for e in [*at.markdown, *at.success, *at.caption, *at.info])


def captions(at: AppTest) -> list[str]:
    return [caption for image in at.image for caption in image.captions]


def only_result():
    """The Agreement the page computed (the page's shared cache holds exactly one)."""
    entries = list(compare_view.agreement_results().entries.values())
    assert len(entries) == 1
    return entries[0]


@pytest.mark.slow
def test_the_page_tells_the_shortcut_story_on_its_own():
    at = open_compare()  # nothing chosen: the bundled pair on the story's heart, the sample computed on opening
    assert_clean(at)
    text = page_text(at)
    assert at.session_state[C.workspace_a] == "shapes" and at.session_state[C.workspace_b] == "shapes-shortcut"
    assert "**A · shapes** predicts **heart**" in text and "**B · shapes-shortcut** predicts **circle**" in text
    assert "**shapes-shortcut** looks at the small coloured marker" in text
    assert "**shapes** looks at the heart itself" in text
    story = re.search(r"shapes-shortcut puts (\d+)× more of its attention on the marker than shapes", text)
    assert story, text
    result = only_result()
    on_marker = result.energy_marker_mean
    assert result.n == 200 and int(story.group(1)) == round(on_marker[1] / on_marker[0])
    assert int(story.group(1)) >= 3
    metrics = {m.label: m.value for m in at.main.metric}
    assert metrics["Same prediction"] == f"{result.agreement_rate:.0%}"
    assert metrics["Map rank correlation"] == f"{result.spearman_mean:.2f}"
    assert metrics["Attention on the marker"].endswith(f"{on_marker[1]:.1%}")
    assert any(c.startswith("Difference: red where A (shapes) looks more") for c in captions(at))
    assert any(c.startswith("B · shapes-shortcut: where it looks (for circle)") for c in captions(at))
    top5 = [d.value for d in at.dataframe if len(d.value) == 5]
    assert top5[0]["class"].iloc[0] == "heart" and top5[1]["class"].iloc[0] == "circle"

    disagree = next(b for b in at.button if b.key and b.key.startswith("compare.disagree."))
    index = int(disagree.key.rsplit(".", 1)[1])
    disagree.click().run()  # shows that image above; the sample's numbers come from the cache
    assert at.session_state[C.index] == index
    assert f"test image #{index} of shapes-shortcut" in " ".join(captions(at))
    assert len(compare_view.agreement_results().entries) == 1


def test_an_upload_compares_and_a_costly_sample_waits_for_the_button(monkeypatch):
    monkeypatch.setattr(compare_view, "AUTO_AGREEMENT_WORK", 0)
    at = open_compare(**{"compare.n": 12})
    assert_clean(at)
    assert not at.main.metric and not compare_view.agreement_results().entries
    button = next(b for b in at.button if b.label == "Compare on 12 images")
    at.segmented_control(key=C.source).set_value("upload").run()
    pixels = np.zeros((40, 40, 3), np.uint8)
    pixels[10:30, 10:30] = (250, 200, 20)
    data = io.BytesIO()
    Image.fromarray(pixels).save(data, format="PNG")
    at.file_uploader(key=C.uploader).set_value(("square.png", data.getvalue(), "image/png")).run()
    assert_clean(at)
    assert any("uploaded image square.png" in c for c in captions(at))
    assert "predicts" in page_text(at) and not at.main.metric
    button = next(b for b in at.button if b.label == "Compare on 12 images")
    button.click().run()
    assert_clean(at)
    assert only_result().n == 12 and at.main.metric


def test_two_models_of_other_classes_get_a_note_and_no_agreement_rate():
    at = open_compare(**{"compare.b": "digits", "compare.n": 10, "compare.source": "a", "compare.index": 5})
    assert_clean(at)
    assert any("different classes" in i.value for i in at.info)
    assert {m.label: m.value for m in at.main.metric}["Same prediction"] == "n/a"
    assert "Attention on the object" in {m.label for m in at.main.metric}  # shapes' masks: both maps are measured


GRAY_NET = '''from torch import nn


class GrayNet(nn.Module):
    """Takes RGB, but its first convolution reads one channel (it averages the colours first)."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    def forward(self, x):
        return self.head(self.conv(x.mean(1, keepdim=True)))
'''


def test_models_that_take_other_images_are_refused_with_a_message(tmp_path, monkeypatch):
    (tmp_path / "gray.py").write_text(GRAY_NET)
    toml = tmp_path / "gray.toml"
    toml.write_text('name = "gray"\n[model]\nsource = "python"\nfactory = "gray.py:GrayNet"\nclass_names = ["a", "b"]\n'
                    '[preprocessing]\ninput_size = [32, 32]\n')
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(toml)])
    at = open_compare(**{"compare.b": str(toml)})
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "cannot be compared" in errors[0] and "1-channel" in errors[0], errors
    assert not at.image and not at.main.metric
