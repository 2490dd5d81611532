"""Remote backends end to end: front ends whose backend is a `lean-mcp runner` over the REPL pool.

MCP client ──stdio──▶ lean-mcp serve --backend remote ──HTTP──▶ lean-mcp runner ──▶ REPL pool
lean-mcp check --backend remote|kimina ──HTTP──▶ lean-mcp runner ──▶ REPL pool
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from lean_mcp import ProofConfig, ProofResult, Verdict
from lean_mcp._backends.remote import KiminaBackend, LeanRunnerBackend

from .mcp_support import server_env, stdio_session, structured, text_of
from .runner_support import REPO, RunnerProcess, free_port, runner_env, running_runner

# on one xdist worker, so the module's runner starts once
pytestmark = [pytest.mark.timeout(90), pytest.mark.xdist_group("test_runner_remote")]

PROVED = "theorem add_zero' (n : Nat) : n + 0 = n := rfl\n"
SORRY = "theorem needs_work (n : Nat) : 0 + n = n := by\n  sorry\n"
REJECTED = "theorem wrong : 1 = 2 := by\n-- standin: error The rfl tactic failed.\n  rfl\n"
AUTH = {"Authorization": "Bearer k3y"}
HANG = "theorem stuck : True := by\n-- standin: hang\n  trivial\n"


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    tmp_path = tmp_path_factory.mktemp("remote-runner")
    with running_runner(tmp_path, runner_env(tmp_path, LEAN_MCP_API_KEY="k3y")) as process:
        yield process


def test_mcp_server_with_remote_backend_reaches_the_pool(runner: RunnerProcess, tmp_path: Path) -> None:
    env = server_env(
        tmp_path,
        repl=False,
        LEAN_MCP_BACKEND="remote",
        LEAN_MCP_REMOTE_URL=runner.url,
        LEAN_MCP_REMOTE_API_KEY="k3y",
    )

    async def session_calls() -> list[dict[str, object]]:
        async with stdio_session(tmp_path, env) as session:
            return [
                structured(await session.call_tool("verify_proof", {"proof": proof}))
                for proof in (PROVED, SORRY, REJECTED)
            ]

    proved, sorry, rejected = anyio.run(session_calls)
    assert (proved["verdict"], proved["success"]) == ("proved", True)
    assert (sorry["verdict"], sorry["success"]) == ("sorry", False)
    assert rejected["verdict"] == "rejected"
    # The runner's own job store holds the three proofs: they really went over HTTP to its pool.
    health = httpx.get(f"{runner.url}/health", headers=AUTH).json()
    assert health["stats"]["submitted"] >= 3
    assert health["stats"]["backend"]["backend"] == "repl"


def test_mcp_server_reports_a_down_runner_as_an_error_verdict(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = server_env(tmp_path, repl=False, LEAN_MCP_BACKEND="remote", LEAN_MCP_REMOTE_URL=url)

    async def call() -> tuple[dict[str, object], str]:
        async with stdio_session(tmp_path, env) as session:
            result = await session.call_tool("verify_proof", {"proof": PROVED})
            return structured(result), text_of(result)

    data, text = anyio.run(call)
    assert (data["verdict"], data["success"], data["status"]) == ("error", False, "error")
    assert url in str(data["error_message"])
    assert url in text


@pytest.mark.parametrize("backend", ["remote", "kimina"])
def test_cli_check_through_a_remote_runner(runner: RunnerProcess, tmp_path: Path, backend: str) -> None:
    good, bad = tmp_path / "good.lean", tmp_path / "bad.lean"
    good.write_text(PROVED, encoding="utf-8")
    bad.write_text(SORRY, encoding="utf-8")
    env = server_env(tmp_path, repl=False)
    argv = [sys.executable, "-m", "lean_mcp.cli", "check", str(good), str(bad), "--json"]
    argv += ["--backend", backend, "--remote-url", runner.url, "--remote-api-key", "k3y"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 1, done.stderr  # not every file is proved
    verdicts = [json.loads(line)["verdict"] for line in done.stdout.splitlines()]
    assert verdicts == ["proved", "sorry"]


def test_remote_backends_against_our_runner(runner: RunnerProcess) -> None:
    async def check_with(backend: LeanRunnerBackend | KiminaBackend) -> list[Verdict | None]:
        async with backend:
            assert backend.health()["reachable"] is True
            assert backend.identity.startswith(f"{backend.name}:{runner.url}@")
            verdicts = []
            for code, timeout in ((PROVED, 10.0), (SORRY, 10.0), (REJECTED, 10.0), (HANG, 1.0)):
                verdicts.append((await backend.check(code, ProofConfig(timeout=timeout))).verdict)
            return verdicts

    expected = [Verdict.PROVED, Verdict.SORRY, Verdict.REJECTED, Verdict.TIMEOUT]
    assert anyio.run(check_with, LeanRunnerBackend(runner.url, api_key="k3y")) == expected
    assert anyio.run(check_with, KiminaBackend(runner.url, api_key="k3y")) == expected


def test_a_wrong_key_is_an_error_verdict_naming_the_runner(runner: RunnerProcess) -> None:
    async def check() -> ProofResult:
        async with LeanRunnerBackend(runner.url, api_key="wrong") as backend:
            return await backend.check(PROVED, ProofConfig(timeout=10))

    result = anyio.run(check)
    assert (result.verdict, result.success) == (Verdict.ERROR, False)
    assert runner.url in (result.error_message or "")
    assert "API key" in (result.error_message or "")


def test_cancelling_a_remote_check_cancels_the_remote_job(runner: RunnerProcess) -> None:
    def cancelled() -> int:
        count: int = httpx.get(f"{runner.url}/health", headers=AUTH).json()["stats"]["cancelled"]
        return count

    async def cancel_midway() -> None:
        async with LeanRunnerBackend(runner.url, api_key="k3y") as backend:
            with anyio.move_on_after(1.0):
                await backend.check(HANG, ProofConfig(timeout=60))

    before = cancelled()
    anyio.run(cancel_midway)
    assert cancelled() == before + 1
