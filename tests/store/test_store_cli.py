"""`gradcam precompute` on the command line: light import, default --out, clear errors, a SIGKILL mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from cli.main import main
from store.precompute import precompute
from store.schema import shard_files
from tests.store.conftest import assert_same_rows, read_table

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_subcommand_loads_neither_torch_nor_ray():
    code = "import sys, cli.main; cli.main.build_parser(); print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_cli_writes_the_store_named_by_the_workspace(folder_ws, capsys):
    folder_ws.write_text(folder_ws.read_text().replace('root = "images"\n', 'root = "images"\nstore = "pets.store"\n'))
    assert main(["precompute", "--workspace", str(folder_ws), "--quiet", "--workers", "0", "--shard-size", "8"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {folder_ws.parent / 'pets.store'}: 30 rows of 30 images" in out
    assert ds.dataset(folder_ws.parent / "pets.store", format="parquet").count_rows() == 30


def test_cli_errors_name_the_problem_and_the_fix(folder_ws, capsys):
    assert main(["precompute", "--workspace", str(folder_ws), "--quiet"]) == 2
    assert "names no store; give --out STORE" in capsys.readouterr().err
    assert main(["precompute", "--workspace", str(folder_ws), "--out", str(folder_ws.parent / "s"), "--quiet",
                 "--batch-size", "0"]) == 2
    assert "batch-size must be at least 1, got 0" in capsys.readouterr().err
    assert main(["precompute", "--workspace", "no-such-workspace", "--out", "x", "--quiet"]) == 2
    assert "unknown workspace 'no-such-workspace'" in capsys.readouterr().err
    (folder_ws.parent / "notes.txt").write_text("a file, not a folder")
    assert main(["precompute", "--workspace", str(folder_ws), "--out", str(folder_ws.parent / "notes.txt" / "s"),
                 "--quiet"]) == 2
    assert "notes.txt" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_mid_run_leaves_only_whole_shards_and_the_rerun_completes_the_same_table(tmp_path):
    options = {"limit": 320, "shard_size": 32, "batch_size": 16}
    out = tmp_path / "killed.store"
    command = [sys.executable, "-m", "cli", "precompute", "--workspace", "shapes", "--out", str(out), "--quiet",
               "--limit", "320", "--shard-size", "32", "--batch-size", "16"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(shard_files(out)) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = len(shard_files(out))
    assert 3 <= killed_at < 10
    for path in shard_files(out):
        assert pq.read_metadata(path).num_rows == 32  # every visible shard is whole
    assert ds.dataset(out, format="parquet").count_rows() == 32 * killed_at  # any leftover tmp file is invisible

    resumed = precompute("shapes", out, **options)
    assert (resumed.shards_resumed, resumed.shards_written) == (killed_at, 10 - killed_at)  # none redone
    assert not list(out.glob("*.tmp"))
    fresh = tmp_path / "fresh.store"
    precompute("shapes", fresh, **options)
    assert_same_rows(read_table(out), read_table(fresh))
