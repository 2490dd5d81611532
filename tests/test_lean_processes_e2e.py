"""Lean children under supervision: bounded output, answers tied to requests, a bounded import wait,
an allow-listed environment, and no Lean process outliving a server killed with SIGKILL."""

from __future__ import annotations

import os
import resource
import shlex
import signal
import stat
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest

from lean_mcp._backends.lean_cli import LeanCliBackend
from lean_mcp._lean.supervise import child_environment
from lean_mcp._models import ProofConfig, Verdict
from lean_mcp._repl.pool import ReplPool
from lean_mcp._repl.process import ReplOutOfStep, ReplProcess
from lean_mcp._repl.protocol import command_request
from lean_mcp._settings import LeanLimits, Settings
from tests.e2e.mcp_support import processes_of
from tests.e2e.runner_support import RunnerProcess, runner_env
from tests.procs import pid_alive
from tests.standin import standin_command

PROVED = "theorem t : True := trivial\n"
CFG = ProofConfig(timeout=20)
SECRETS = {
    "LEAN_MCP_API_KEY": "server-secret",
    "LEAN_MCP_REMOTE_API_KEY": "remote-secret",
    "OPENAI_API_KEY": "sk-not-for-lean",
    "GITHUB_TOKEN": "ghp-not-for-lean",
}
#: Runs the REPL as a child, the way `lake env repl` does.
WRAPPER = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"]


# -- output ----------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_proof_that_floods_stdout_gets_error_and_its_repl_is_replaced() -> None:
    limits = LeanLimits(max_output_bytes=1_000_000)
    async with ReplPool(standin_command(), workers=1, limits=limits) as pool:
        first_pid = (await pool.check(PROVED, CFG), pool.health()["pids"][0])[1]
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        flooded = await pool.check("-- standin: flood 300000000\n" + PROVED, CFG)
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
        assert grown_mb < 50, f"the server's peak memory grew by {grown_mb:.0f} MB"
        assert flooded.verdict == Verdict.ERROR
        assert "more than 1,000,000 bytes" in (flooded.error_message or "")
        assert "--max-output-bytes" in (flooded.error_message or "")
        assert not pid_alive(first_pid)
        assert (await pool.check(PROVED, CFG)).verdict == Verdict.PROVED
        assert pool.health()["output_kills"] == 1


# -- answers tied to requests ------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_late_second_answer_is_refused_as_the_answer_of_another_request() -> None:
    repl = await ReplProcess.start(standin_command())
    try:
        assert await repl.request(command_request("-- standin: answer-twice 0.3\n" + PROVED), seconds=20) == {"env": 0}
        with pytest.raises(ReplOutOfStep, match="env 0 where env 1 was due"):
            await repl.request(command_request("-- standin: work 1\n-- standin: error boom\n" + PROVED), seconds=20)
        assert not repl.alive
    finally:
        await repl.aclose()


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_an_early_second_answer_is_seen_before_the_next_request_is_sent() -> None:
    repl = await ReplProcess.start(standin_command())
    try:
        with pytest.raises(ReplOutOfStep):  # seen with the answer, or as unread bytes before the next request
            await repl.request(command_request("-- standin: answer-twice\n" + PROVED), seconds=20)
            await anyio.sleep(0.3)
            await repl.request(command_request(PROVED), seconds=20)
        assert not repl.alive
    finally:
        await repl.aclose()


@pytest.mark.anyio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("delay", ["", "0.3"], ids=["at-once", "late"])
async def test_no_proof_gets_the_answer_of_a_repl_that_answered_twice(delay: str) -> None:
    async with ReplPool(standin_command(), workers=1) as pool:
        first = await pool.check(f"-- standin: answer-twice {delay}\n" + PROVED, CFG)
        assert first.verdict in (Verdict.PROVED, Verdict.ERROR)  # never another proof's verdict
        await anyio.sleep(0.1)
        wrong = await pool.check("-- standin: work 1\ntheorem w : True := trivial\n-- standin: error boom\n", CFG)
        assert wrong.verdict == Verdict.REJECTED
        assert [m.data for m in wrong.messages] == ["boom"]
        assert (await pool.check(PROVED, CFG)).verdict == Verdict.PROVED
        assert pool.health()["out_of_step"] >= 1


# -- the import wait ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_repl_wedged_before_its_first_answer_holds_a_request_no_longer_than_its_timeout() -> None:
    limits = LeanLimits(import_timeout=300)
    async with ReplPool(standin_command(import_seconds=3600), workers=1, limits=limits) as pool:
        started = time.monotonic()
        result = await pool.check("import Mathlib\n" + PROVED, ProofConfig(timeout=1))
        assert time.monotonic() - started < 5
        assert result.verdict == Verdict.TIMEOUT
        assert "still importing" in (result.error_message or "")
        started = time.monotonic()
        again = await pool.check("import Mathlib\n" + PROVED, ProofConfig(timeout=1))
        assert again.verdict == Verdict.TIMEOUT and time.monotonic() - started < 5
        assert pool.health()["repl_starts"] == 1  # the second request waited on the same import


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_the_import_timeout_kills_a_wedged_import() -> None:
    limits = LeanLimits(import_timeout=1)
    async with ReplPool(standin_command(import_seconds=3600), workers=1, limits=limits) as pool:
        first = await pool.check("import Mathlib\n" + PROVED, ProofConfig(timeout=0.5))
        assert "still importing" in (first.error_message or "")
        await anyio.sleep(0.6)
        second = await pool.check("import Mathlib\n" + PROVED, ProofConfig(timeout=5))
        assert second.verdict == Verdict.TIMEOUT
        assert "importing the proof's header within the 1 s timeout" in (second.error_message or "")
        assert pool.health()["live"] == 0


# -- environment -------------------------------------------------------------------------------


def test_the_child_environment_is_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**SECRETS, "LEAN_PATH": "/lp", "LAKE_HOME": "/lh", "LC_ALL": "C.UTF-8"}.items():
        monkeypatch.setenv(name, value)
    env = child_environment({"LEAN_SYSROOT": "/sys", "LEAN_MCP_DB": "/x", "AWS_SECRET_ACCESS_KEY": "no"})
    assert not set(SECRETS) & set(env)
    assert {"LEAN_MCP_DB", "AWS_SECRET_ACCESS_KEY"}.isdisjoint(env)
    assert (env["LEAN_PATH"], env["LAKE_HOME"], env["LC_ALL"], env["LEAN_SYSROOT"]) == ("/lp", "/lh", "C.UTF-8", "/sys")
    assert env["PATH"] == os.environ["PATH"]


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_repl_cannot_see_the_servers_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LEAN_PATH", "/some/lean/path")
    probes = "".join(f"-- standin: env {name}\n" for name in [*SECRETS, "LEAN_PATH"])
    async with ReplPool(standin_command(), workers=1) as pool:
        result = await pool.check(probes + PROVED, CFG)
    seen = [m.data for m in result.messages]
    assert seen == [f"{name} is unset" for name in SECRETS] + ["LEAN_PATH=/some/lean/path"]


@pytest.mark.timeout(60)
def test_lean_cannot_see_the_servers_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    lean = tmp_path / "lean"
    lean.write_text("#!/bin/sh\ncat > /dev/null\nenv\n")  # prints its environment, one line each
    lean.chmod(lean.stat().st_mode | stat.S_IEXEC)

    async def main() -> list[str]:
        async with LeanCliBackend.from_settings(Settings(lean=str(lean), project=str(tmp_path))) as backend:
            result = await backend.check(PROVED, CFG)
        return [m.data for m in result.messages]

    lines = anyio.run(main)
    assert any(line.startswith("PATH=") for line in lines)
    assert not [line for line in lines if any(secret in line for secret in SECRETS.values())]


# -- a server killed with SIGKILL ---------------------------------------------------------------


@pytest.mark.timeout(120)
def test_lean_processes_die_with_a_server_killed_with_sigkill(tmp_path: Path) -> None:
    """A real runner, its REPL a grandchild (as under `lake env`) busy on a proof that never ends."""
    env = runner_env(tmp_path, LEAN_MCP_WORKERS="1", LEAN_MCP_REPL=shlex.join([*WRAPPER, *standin_command()]))
    runner = RunnerProcess(tmp_path, env)
    try:
        runner.wait_ready()
        httpx.post(f"{runner.url}/prove/submit", data={"proof": "-- standin: hang\n" + PROVED}, timeout=10)
        deadline = time.monotonic() + 30
        while len(lean := processes_of(tmp_path) - {runner.process.pid}) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the guardian, the wrapper and the stand-in under it
        assert len(lean) >= 3, lean
    finally:
        assert runner.stop(signal.SIGKILL) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while (left := {pid for pid in lean if pid_alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == set()
