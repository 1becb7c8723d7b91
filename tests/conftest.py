"""Shared by every test folder: where tests leave screenshots and other artifacts (gitignored)."""

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
#: torch's intra-op thread count when the tests were collected, before any test ran
PROCESS_THREADS = torch.get_num_threads()


@pytest.fixture(scope="module", autouse=True)
def torch_threads_as_the_process_has_them(request):
    """Every test module leaves torch's thread count as it found it: a leaked setting makes every later module
    run, and time, differently depending on the order (``pytest -p randomly``). A module may run with one thread
    (a module-scoped fixture that restores it, or ``one_torch_thread`` below); this fixture is set up before and
    torn down after those, so the module that leaks is the one that fails."""
    yield
    leaked = torch.get_num_threads()
    if leaked != PROCESS_THREADS:
        torch.set_num_threads(PROCESS_THREADS)  # the next modules start as the process did
        pytest.fail(f"{request.node.nodeid} left torch with {leaked} threads, not the process's {PROCESS_THREADS}; "
                    "restore it when the module ends (a module-scoped fixture, or one_torch_thread)")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = REPO_ROOT / "artifacts"
    path.mkdir(exist_ok=True)
    return path


def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_torch_thread():
    """Tests that time or hammer many tiny engine calls: on a busy 2-core machine two intra-op threads made each
    call ~18x slower than one."""
    yield from _one_thread()


@pytest.fixture(scope="module")
def one_torch_thread_per_module():
    """A module of small nets on a busy 2-core machine (one intra-op thread was faster there and steadier); a
    folder uses it from an autouse fixture of its conftest, a module with ``pytest.mark.usefixtures``."""
    yield from _one_thread()
