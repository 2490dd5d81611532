"""Helpers for the runner end-to-end tests: `lean-mcp runner` as a real subprocess.

The runner listens on an ephemeral port of 127.0.0.1, checks proofs with the REPL stand-in and
keeps its jobs in a SQLite file under the test's tmp_path; its log goes to `runner.log` there.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.standin import standin_command

REPO = Path(__file__).resolve().parents[2]
RUNNER = [sys.executable, "-m", "lean_mcp.cli", "runner"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def runner_env(tmp_path: Path, *, work_seconds: float = 0.0, **extra: str) -> dict[str, str]:
    """The runner's environment: the stand-in REPL, the job store in `tmp_path`, two workers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAN_MCP_") and k != "ELAN_HOME"}
    env.update(
        PYTHONPATH=str(REPO),
        HOME=str(tmp_path),
        LEAN_MCP_BACKEND="repl",
        LEAN_MCP_REPL=shlex.join(standin_command(work_seconds=work_seconds)),
        LEAN_MCP_DB=str(tmp_path / "jobs.sqlite3"),
        LEAN_MCP_WORKERS="2",
        LEAN_MCP_LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


class RunnerProcess:
    """One `lean-mcp runner` subprocess and its URL."""

    def __init__(
        self, tmp_path: Path, env: dict[str, str], port: int | None = None, command: Sequence[str] = RUNNER
    ) -> None:
        self.tmp_path = tmp_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "runner.log"
        argv = [*command, "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, deadline_seconds: float = 60.0) -> None:
        """Block until /health answers 200 (fails with the runner's log if it dies first)."""
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the runner exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the runner did not become ready:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig`, wait for the exit (killing after 20 s), and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@contextmanager
def running_runner(
    tmp_path: Path, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[RunnerProcess]:
    """A ready runner; stopped with SIGTERM (then SIGKILL) when the block ends."""
    runner = RunnerProcess(tmp_path, env or runner_env(tmp_path), port)
    try:
        runner.wait_ready()
        yield runner
    finally:
        runner.stop()
