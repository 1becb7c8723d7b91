"""`--engine ray` writes the same rows as `--engine local` (a local Ray with 2 CPUs, ~200 images)."""

from __future__ import annotations

import pytest

from store.precompute import precompute
from tests.store.conftest import assert_same_rows, read_table

OPTIONS = {"limit": 200, "shard_size": 64, "batch_size": 32}


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_and_local_engines_write_the_same_rows(local_ray, tmp_path):
    local = precompute("shapes", tmp_path / "local.store", engine="local", **OPTIONS)
    remote = precompute("shapes", tmp_path / "ray.store", engine="ray", concurrency=1, **OPTIONS)
    assert (local.rows, remote.rows) == (200, 200)
    assert remote.manifest["engine"] == "ray" and "ray" in remote.manifest["runs"][-1]["versions"]
    assert_same_rows(read_table(tmp_path / "ray.store"), read_table(tmp_path / "local.store"), exact=False)
    assert local_ray.is_initialized(), "a Ray the caller started is left running"
