"""Channel ranking of one activation: hand-built activations with a known order."""

import numpy as np
import pytest

from analysis.channels import channel_mean_map, rank_channels


def test_rank_channels_known_order():
    act = np.zeros((5, 2, 2), dtype=np.float32)
    act[0] = 1.0  # mean 1.0, max 1.0
    act[1, 0, 0] = 8.0  # mean 2.0, max 8.0
    act[2] = 3.0  # mean 3.0, max 3.0
    act[3] = -1.0  # mean -1.0, max -1.0
    act[4, 1, 1] = 2.0  # mean 0.5, max 2.0
    idx, vals = rank_channels(act, "mean")
    np.testing.assert_array_equal(idx, [2, 1, 0, 4, 3])
    np.testing.assert_allclose(vals, [3.0, 2.0, 1.0, 0.5, -1.0])
    idx, vals = rank_channels(act, "max", top=3)
    np.testing.assert_array_equal(idx, [1, 2, 4])
    np.testing.assert_allclose(vals, [8.0, 3.0, 2.0])
    assert idx.dtype == np.int64 and vals.dtype == np.float32
    assert rank_channels(act, top=50)[0].size == 5


def test_rank_channels_ties_keep_channel_order_and_errors():
    act = np.ones((4, 3, 3))
    np.testing.assert_array_equal(rank_channels(act)[0], [0, 1, 2, 3])
    with pytest.raises(ValueError, match="acts\\[i\\]"):
        rank_channels(np.ones((2, 4, 3, 3)))
    with pytest.raises(ValueError, match="'median'"):
        rank_channels(act, "median")
    with pytest.raises(ValueError, match="top"):
        rank_channels(act, top=0)


def test_channel_mean_map():
    act = np.stack([np.full((2, 3), 1.0), np.full((2, 3), 3.0), np.arange(6.0).reshape(2, 3)])
    out = channel_mean_map(act)
    assert out.shape == (2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, (1.0 + 3.0 + np.arange(6.0).reshape(2, 3)) / 3)
    np.testing.assert_allclose(channel_mean_map(act, [0, 1]), np.full((2, 3), 2.0))
    with pytest.raises(ValueError, match="channel 3 is out of range"):
        channel_mean_map(act, [3])
