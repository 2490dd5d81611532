"""A runner killed with SIGKILL and started again on the same job store answers every accepted id."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lean_mcp import LeanClient
from tests.e2e.mcp_support import processes_of
from tests.e2e.runner_support import RunnerProcess, runner_env, running_runner

pytestmark = pytest.mark.timeout(120)

SLOW = "-- standin: work 0.2\ntheorem t{n} : {n} + 0 = {n} := rfl\n"


def wait_for_no_processes(tmp_path: Path, deadline_seconds: float = 20.0) -> set[int]:
    deadline = time.monotonic() + deadline_seconds
    while (left := processes_of(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_sigkill_then_restart_answers_every_accepted_id(tmp_path: Path) -> None:
    env = runner_env(tmp_path, LEAN_MCP_WORKERS="1")
    first = RunnerProcess(tmp_path, env)
    try:
        first.wait_ready()
        with LeanClient(first.url) as client:
            accepted = [client.submit(SLOW.format(n=n)).id for n in range(20)]
            done_before = client.wait(accepted[0], timeout=30)
            assert done_before.status == "finished"
            statuses = {client.get_result(i).status for i in accepted}
            assert "pending" in statuses  # the kill lands with work still queued
    finally:
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    # The killed runner's REPLs see their stdin close and exit on their own.
    assert wait_for_no_processes(tmp_path) == set()

    with running_runner(tmp_path, env) as second, LeanClient(second.url) as client:
        results = [client.wait(proof_id, timeout=60) for proof_id in accepted]
        assert [r.proof_id for r in results] == accepted
        assert [(r.status, r.verdict) for r in results] == [("finished", "proved")] * len(accepted)
    assert wait_for_no_processes(tmp_path) == set()


def test_sigterm_stops_the_runner_cleanly(tmp_path: Path) -> None:
    env = runner_env(tmp_path)
    with running_runner(tmp_path, env) as runner, LeanClient(runner.url) as client:
        assert client.verify("theorem t : True := trivial").success is True
        assert runner.stop(signal.SIGTERM) == 0
    assert wait_for_no_processes(tmp_path) == set()
    log = runner.log()
    assert "listening on http://127.0.0.1:" in log
    assert "Traceback" not in log


def test_a_runner_without_lean_says_what_to_do(tmp_path: Path) -> None:
    env = runner_env(tmp_path, LEAN_MCP_BACKEND="auto", PATH="/usr/bin:/bin")
    del env["LEAN_MCP_REPL"]
    argv = [sys.executable, "-m", "lean_mcp.cli", "runner", "--port", "0"]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "lean-mcp runner: No Lean found" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_busy_port_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = [sys.executable, "-m", "lean_mcp.cli", "runner", "--host", "127.0.0.1", "--port", str(port)]
        done = subprocess.run(argv, env=runner_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"Cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr
