"""Shared by every test folder: where tests leave screenshots and other artifacts (gitignored)."""

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = REPO_ROOT / "artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def one_torch_thread():
    """Tests that time or hammer many tiny engine calls: on a busy 2-core machine two intra-op threads made each
    call ~18x slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
