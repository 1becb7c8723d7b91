"""One ``streamlit run`` on a free port for the benchmarks and the browser tests: started, waited for until it
answers ``/_stcore/health``, and always terminated."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class ServerError(RuntimeError):
    """The server exited or did not answer in time; the message ends with its log's tail."""


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:<port>, no trailing slash
    spawned: float  # epoch seconds at spawn
    process: subprocess.Popen


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_run(script: str | Path, cwd: Path, log_path: Path, extra_args: Sequence[str] = (),
                  env: dict | None = None, start_s: float = 180) -> Iterator[Server]:
    """``streamlit run script [extra_args]`` headless, without file watching; yields once it answers."""
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        spawned = time.time()
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
             "--server.fileWatcherType", "none", "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", *extra_args],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + start_s
            while not _healthy(port):
                if process.poll() is not None:
                    raise ServerError(f"streamlit run {script} exited with {process.returncode}; its log:\n"
                                      f"{log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise ServerError(f"streamlit run {script} did not answer /_stcore/health in {start_s:.0f} s")
                time.sleep(0.05)
            yield Server(f"http://127.0.0.1:{port}", spawned, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False
