"""The one disk cache: what is saved comes back, anything else is a miss (never an error, never unpickled)."""

import os
import stat

import numpy as np
import pytest

from analysis.disk_cache import CACHE_ENV, DiskCache, cache_key, default_cache_dir
from tests.pickles import CreatesAFile


def test_saved_arrays_and_meta_come_back(tmp_path):
    cache = DiskCache(tmp_path / "cache", "features")
    key = cache_key("model", 3, np.arange(5))
    assert cache.load(key) is None
    arrays = {"features": np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32), "labels": np.arange(4)}
    assert cache.save(key, arrays, {"seconds": 1.5})
    found = cache.load(key)
    assert found.meta == {"seconds": 1.5}
    assert found.arrays.keys() == arrays.keys()
    for name, value in arrays.items():
        np.testing.assert_array_equal(found.arrays[name], value)
        assert found.arrays[name].dtype == value.dtype
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache.path(key).name]  # no temp file left


def test_the_key_covers_every_part_and_array_content():
    base = cache_key("m", {"perplexity": 30.0, "seed": 0}, np.zeros(3, np.float32))
    assert base == cache_key("m", {"seed": 0, "perplexity": 30.0}, np.zeros(3, np.float32))  # dict order is not
    assert base != cache_key("m", {"perplexity": 30.0, "seed": 1}, np.zeros(3, np.float32))
    assert base != cache_key("m", {"perplexity": 30.0, "seed": 0}, np.zeros(3, np.float64))
    assert base != cache_key("m", {"perplexity": 30.0, "seed": 0}, np.array([0, 0, 1], np.float32))
    assert base != cache_key("n", {"perplexity": 30.0, "seed": 0}, np.zeros(3, np.float32))


def test_a_file_written_for_another_key_is_a_miss(tmp_path):
    cache = DiskCache(tmp_path, "tsne")
    cache.save("a" * 64, {"xy": np.zeros((2, 2))})
    other = "a" * 40 + "b" * 24  # same file name (40 characters), another key
    assert cache.path(other) == cache.path("a" * 64)
    assert cache.load(other) is None


@pytest.mark.parametrize("content", [b"", b"not a zip file" * 20, "half"])
def test_a_damaged_file_is_a_miss(tmp_path, content):
    cache = DiskCache(tmp_path, "tsne")
    cache.save("k", {"xy": np.ones((50, 2))})
    data = cache.path("k").read_bytes()
    cache.path("k").write_bytes(data[: len(data) // 2] if content == "half" else content)
    assert cache.load("k") is None


def test_a_pickle_in_the_cache_folder_is_never_run(tmp_path):
    cache = DiskCache(tmp_path, "tsne")
    target = tmp_path / "pwned.txt"
    np.savez(cache.path("k"), xy=np.array([CreatesAFile(target)], dtype=object), __key__=np.array("k"),
             __meta__=np.array("{}"))
    assert cache.load("k") is None
    assert not target.exists()


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root can write anywhere")
def test_a_read_only_folder_warns_and_keeps_going(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.warns(RuntimeWarning, match="could not write the cache file"):
            assert DiskCache(folder, "tsne").save("k", {"xy": np.zeros(2)}) is False
    finally:
        folder.chmod(stat.S_IRWXU)


def test_a_file_where_the_folder_should_be_warns_and_keeps_going(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    with pytest.warns(RuntimeWarning, match=f"set \\${CACHE_ENV}"):
        assert DiskCache(blocker, "tsne").save("k", {"xy": np.zeros(2)}) is False


def test_the_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir().parts[-2:] == ("gradcam-dashboard", "embeddings")
