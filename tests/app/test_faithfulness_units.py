"""The Faithfulness view's pieces that need no page: the shared thread setting, the stores, the sample, the marker
boxes and the shortcut sentence."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import streamlit as st
import torch

from dashboard import faithfulness_view as fv


def in_thread(fn):
    """Start ``fn`` in a new thread (as Streamlit runs each script run)."""
    thread = threading.Thread(target=fn)
    thread.start()
    return thread


def test_overlapping_computations_each_run_on_one_thread_and_give_the_process_count_back():
    before = torch.get_num_threads()
    first_inside, first_may_end, late_inside, late_may_end = (threading.Event() for _ in range(4))
    counts = {}

    def computation(name, inside, may_end):
        with fv.one_torch_thread():
            counts[name] = torch.get_num_threads()
            inside.set()
            may_end.wait(10)

    first = in_thread(lambda: computation("first", first_inside, first_may_end))
    assert first_inside.wait(10)
    # a session whose run starts while the first computation holds one thread, and ends after it
    late = in_thread(lambda: computation("late", late_inside, late_may_end))
    assert late_inside.wait(10)
    with fv.one_torch_thread():
        counts["main"] = torch.get_num_threads()
    assert torch.get_num_threads() == before
    first_may_end.set()
    first.join(10)
    late_may_end.set()
    late.join(10)
    assert counts == {"first": 1, "late": 1, "main": 1}
    fresh = []
    in_thread(lambda: fresh.append(torch.get_num_threads())).join(10)
    assert fresh == [before], "threads started afterwards get the process's count, not a computation's 1"


def test_a_store_keeps_what_was_computed_and_asking_computes_nothing():
    @st.cache_data(show_spinner=False)
    def store(name: str, _value=None):
        return fv.require(_value)

    computed = []

    def compute():
        computed.append(1)
        return {"value": len(computed)}

    with pytest.raises(fv.NotStored):
        store("a")
    assert fv.stored_or_computed(store, ("a",), compute) == {"value": 1}
    assert fv.stored_or_computed(store, ("a",), compute) == {"value": 1}
    assert fv.stored_or_computed(store, ("b",), compute) == {"value": 2}
    assert len(computed) == 2


def test_the_sample_is_seeded_sorted_and_distinct():
    first = fv.table_sample(2000, 12, 0)
    np.testing.assert_array_equal(first, fv.table_sample(2000, 12, 0))
    assert len(set(first.tolist())) == 12 and list(first) == sorted(first)
    assert not np.array_equal(first, fv.table_sample(2000, 12, 1))
    assert fv.table_sample(5, 12, 0).tolist() == [0, 1, 2, 3, 4], "never more images than the set has"


class Markers:
    """A test set whose second image has no marker."""

    def marker_box(self, i):
        return None if i == 1 else (2, 3, 4, 6)


def test_marker_boxes_are_the_test_sets_boxes():
    regions = fv.marker_boxes(Markers(), np.array([0, 1]), (8, 8))
    assert regions[0].sum() == 2 * 3 and regions[0, 2:4, 3:6].all() and not regions[1].any()
    assert fv.marker_boxes(object(), np.array([0]), (8, 8)) is None


def finding(energy_marker: float, energy_object: float) -> fv.ShortcutFinding:
    return fv.ShortcutFinding(layer="head.0", methods=7, marker_share=0.012, object_share=0.11,
                              energy_marker=energy_marker, energy_object=energy_object, peak_marker=0.9,
                              peak_object=0.02, strongest=("hirescam", "stem.0", 42.0))


def test_the_shortcut_sentence_says_which_way_the_numbers_point():
    shortcut = fv.shortcut_sentence(finding(0.08, 0.11))
    assert "looks at the small coloured marker, not at the shape" in shortcut
    assert "6.7× its share of the image" in shortcut and "1.0× its share" in shortcut
    assert "on the marker in 90% of the images, on the object in 2%" in shortcut
    assert "HiResCAM at `stem.0`, 42×" in shortcut
    assert "do not single out the marker" in fv.shortcut_sentence(finding(0.01, 0.5))


def test_a_dataframe_selection_gives_its_first_row():
    assert fv.selected_row({"selection": {"rows": [3], "columns": []}}) == 3
    assert fv.selected_row({"selection": {"rows": []}}) is None
    assert fv.selected_row(None) is None
