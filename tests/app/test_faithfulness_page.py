"""The Faithfulness page through AppTest: the table of every method x layer with intervals and best marks, kept per
sample; the per-image CSV; a shortcut workspace's marker in plain words; the sanity check's verdicts.

The table's metric passes are made small (4 deletion/insertion steps, one ROAD fraction, 200 bootstrap draws, 3
images) through ``faithfulness_view.TABLE_OPTIONS``; the page, the layers, the methods and the inputs are the real
ones.
"""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
import torch
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from dashboard import faithfulness_view
from dashboard.faithfulness_view import BEST_MARK, METRICS
from gradcam_core import CAM_METHODS, METHOD_NAMES
from gradcam_core.faithfulness import table_layers
from models import load_workspace
from tests.app.helpers import assert_clean, run_app

PAGE = "pages/faithfulness.py"
IMAGES = 3
CELL = re.compile(rf"^(?:{BEST_MARK} )?-?\d\.\d{{3}} \[-?\d\.\d{{2}}, -?\d\.\d{{2}}\]$")
SCORE_COLUMNS = ("Deletion AUC", "Insertion AUC", "ROAD", "Pointing game (object)", "Energy in object mask")


@pytest.fixture
def small_table(monkeypatch):
    """A small table, and a count of the tables computed."""
    monkeypatch.setattr(faithfulness_view, "TABLE_OPTIONS",
                        {"steps": 4, "road_fractions": (0.5,), "n_boot": 200})
    computed = []
    original = faithfulness_view.faithfulness_table

    def counting(engine, images, layers, **kwargs):
        computed.append((int(images.shape[0]), list(layers), torch.get_num_threads()))
        return original(engine, images, layers, **kwargs)

    monkeypatch.setattr(faithfulness_view, "faithfulness_table", counting)
    return computed


@pytest.fixture
def downloads(monkeypatch):
    """Every file the app hands the browser (download data included): (bytes, mimetype, file name)."""
    files = []
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        files.append((path_or_data, mimetype, filename))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return files


def open_page(workspace: str = "shapes", images: int = IMAGES):
    at = run_app({"ws": workspace})
    at.switch_page(PAGE).run()
    assert_clean(at)
    at.number_input(key="faithfulness.count").set_value(images).run()
    return at


def column(frame, title: str) -> str:
    found = [name for name in frame.columns if name.startswith(title)]
    assert len(found) == 1, (title, list(frame.columns))
    return found[0]


@pytest.mark.slow
def test_the_table_has_every_method_and_layer_with_intervals_and_one_best_cell_per_score(small_table, downloads):
    at = open_page()
    assert at.title[0].value == "Faithfulness"
    assert not at.dataframe, "the table is computed on request, not when the page opens"
    assert not small_table
    threads = torch.get_num_threads()
    at.button(key="faithfulness.compute").click().run()
    assert_clean(at)
    assert torch.get_num_threads() == threads, "the page must restore torch's thread count"
    assert [(count, threads_used) for count, _, threads_used in small_table] == [(IMAGES, 1)]

    shapes = load_workspace("shapes")
    layers = table_layers(shapes.model, shapes.default_layer, shapes.input_size)
    frame = at.dataframe[0].value
    assert sorted(zip(frame["Method"], frame["Layer"], strict=True)) == sorted(
        (CAM_METHODS[m].title, layer) for m in METHOD_NAMES for layer in layers)
    for title in SCORE_COLUMNS:
        cells = frame[column(frame, title)]
        assert all(CELL.match(cell) for cell in cells), list(cells)
        assert sum(cell.startswith(BEST_MARK) for cell in cells) == 1, (title, list(cells))
    assert "% of image)" in column(frame, "Energy in object mask"), "the object's area share belongs beside it"
    assert not any(name.startswith(("Pointing game (marker)", "Energy on marker")) for name in frame.columns)
    text = " ".join(m.value for m in at.markdown)
    for metric in ("deletion", "insertion", "road", "pointing", "energy"):
        assert METRICS[metric].explanation in text
    assert len(at.get("plotly_chart")) == 1, "the selected (or best) row's curves"

    rows = list(csv.DictReader(io.StringIO(csv_download(downloads))))
    assert len(rows) == IMAGES * len(METHOD_NAMES) * len(layers)
    assert {"image", "target", "method", "layer", "deletion", "insertion", "road", "road_morf", "road_lerf",
            "pointing", "energy"} <= set(rows[0])
    sample = faithfulness_view.table_sample(len(shapes.test_set), IMAGES, 0)
    assert sorted({int(row["image"]) for row in rows}) == sample.tolist()
    gradcam = [float(row["deletion"]) for row in rows if row["method"] == "gradcam" and row["layer"] == layers[0]]
    shown = frame[column(frame, "Deletion AUC")][(frame["Method"] == "Grad-CAM") & (frame["Layer"] == layers[0])]
    assert shown.iloc[0].lstrip(f"{BEST_MARK} ").startswith(f"{np.mean(gradcam):.3f}")


def csv_download(downloads) -> str:
    found = [data for data, mime, name in downloads if mime == "text/csv"]
    assert found, [(mime, name) for _, mime, name in downloads]
    return found[-1].decode() if isinstance(found[-1], bytes) else found[-1]


@pytest.mark.slow
def test_the_same_sample_is_kept_and_another_one_asks_first(small_table, downloads):
    at = open_page()
    at.button(key="faithfulness.compute").click().run()
    at.run()  # any rerun (a row selection, the sanity section) draws the kept table
    assert len(small_table) == 1 and at.dataframe
    at.number_input(key="faithfulness.count").set_value(IMAGES - 1).run()
    assert not at.dataframe and at.button(key="faithfulness.compute"), "another sample is computed on request"
    at.number_input(key="faithfulness.count").set_value(IMAGES).run()
    assert at.dataframe and len(small_table) == 1, "back to the first sample: kept, not recomputed"


@pytest.mark.slow
def test_shapes_shortcut_says_the_maps_point_at_the_marker_not_the_object(small_table):
    at = open_page("shapes-shortcut")
    at.button(key="faithfulness.compute").click().run()
    assert_clean(at)
    frame = at.dataframe[0].value
    marker_peak = frame[column(frame, "Pointing game (marker)")]
    object_peak = frame[column(frame, "Pointing game (object)")]
    assert "% of image)" in column(frame, "Energy on marker")
    assert not any(cell.startswith(BEST_MARK) for cell in marker_peak), "a finding, not a score to maximise"
    finding = [w.value for w in at.warning if "marker" in w.value and "heat" in w.value]
    assert len(finding) == 1, [w.value for w in at.warning]
    assert "looks at the small coloured marker, not at the shape" in finding[0]
    on_marker, on_object = re.search(r"on the marker in (\d+)% of the images, on the object in (\d+)%",
                                     finding[0]).groups()
    assert int(on_marker) > int(on_object)
    default = frame["Layer"] == load_workspace("shapes-shortcut").default_layer
    peaks = [float(cell.lstrip(f"{BEST_MARK} ").split()[0]) for cell in marker_peak[default]]
    object_peaks = [float(cell.lstrip(f"{BEST_MARK} ").split()[0]) for cell in object_peak[default]]
    # the sentence's percentages are the table's means over the methods at the default layer (shown to 3 decimals)
    assert abs(int(on_marker) - 100 * np.mean(peaks)) <= 1 and abs(int(on_object) - 100 * np.mean(object_peaks)) <= 1


@pytest.mark.slow
def test_the_sanity_check_runs_on_a_button_and_gives_every_method_a_verdict():
    at = open_page(images=2)
    assert not verdicts(at)
    at.button(key="faithfulness.sanity_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    titles = [CAM_METHODS[m].title for m in METHOD_NAMES]
    found = verdicts(at)
    assert sorted(title for title, _ in found) == sorted(titles)
    assert all(kind == ("success" if verdict == "passes" else "error") for (_, verdict), kind in found.items()), found
    chart = at.get("plotly_chart")[-1].proto.spec
    assert '"Rank correlation with the original map"' in chart and '"SSIM with the original map"' in chart
    at.run()
    assert verdicts(at) == found, "kept: a rerun draws the verdicts without the button"


def verdicts(at) -> dict[tuple[str, str], str]:
    """{(method title, 'passes' | 'fails'): 'success' | 'error'}: each verdict and how it is drawn."""
    found = {}
    for kind in ("success", "error"):
        for message in getattr(at, kind):
            match = re.match(r"^(\S+) (passes|fails): ", message.value)
            if match:
                found[match.groups()] = kind
    return found
