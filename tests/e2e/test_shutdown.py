"""SIGTERM stops both HTTP servers cleanly (`server.listen`): exit 0, no Lean process left, and no
accepted job lost: a request in flight gets its answer, queued jobs finish after a restart."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from lean_mcp import LeanClient, ProofResult
from tests.e2e.mcp_support import http_server, processes_of, server_env, stdio_session, structured
from tests.e2e.runner_support import RunnerProcess, runner_env, running_runner

pytestmark = pytest.mark.timeout(120)

SLOW = "-- standin: work {seconds}\ntheorem t{n} : {n} + 0 = {n} := rfl\n"


def _wait_for_no_processes(tmp_path: Path, deadline_seconds: float = 20.0) -> set[int]:
    deadline = time.monotonic() + deadline_seconds
    while (left := processes_of(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_sigterm_on_the_runner_answers_the_request_in_flight_and_keeps_the_queue(tmp_path: Path) -> None:
    env = runner_env(tmp_path, LEAN_MCP_WORKERS="1")
    runner = RunnerProcess(tmp_path, env)
    in_flight: list[ProofResult] = []
    try:
        runner.wait_ready()
        with LeanClient(runner.url) as client:
            waiter = threading.Thread(target=lambda: in_flight.append(client.verify(SLOW.format(seconds=1.5, n=0))))
            waiter.start()
            deadline = time.monotonic() + 20
            while client.health().get("running", 0) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            queued = [client.submit(SLOW.format(seconds=0.2, n=n)).id for n in range(1, 9)]
            assert runner.stop(signal.SIGTERM) == 0
            waiter.join(30)
    finally:
        runner.stop(signal.SIGKILL)
    log = runner.log()
    assert "Traceback" not in log and "Received SIGTERM; stopping." in log
    # The verify in flight had its answer before the runner went away.
    assert [(r.status, r.verdict) for r in in_flight] == [("finished", "proved")]
    assert _wait_for_no_processes(tmp_path) == set()

    with running_runner(tmp_path, env) as again, LeanClient(again.url) as client:
        results = [client.wait(proof_id, timeout=60) for proof_id in queued]
    assert [(r.status, r.verdict) for r in results] == [("finished", "proved")] * len(queued), results
    assert "Re-running" in again.log()  # the SIGTERM did land with jobs still queued


async def _mcp_over_http(url: str, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    async with (
        httpx2.AsyncClient(timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return [structured(await session.call_tool(name, arguments)) for name, arguments in calls]


@pytest.mark.anyio
async def test_sigterm_on_the_mcp_http_server_keeps_every_submitted_job(tmp_path: Path) -> None:
    env = server_env(tmp_path, LEAN_MCP_WORKERS="1")
    log_path = tmp_path / "server.log"
    async with http_server(tmp_path, env) as (process, url):
        proofs = [("submit_proof", {"proof": SLOW.format(seconds=0.3, n=n)}) for n in range(8)]
        submitted = [proof["id"] for proof in await _mcp_over_http(url, proofs)]
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            assert await process.wait() == 0
    log = log_path.read_text()
    assert "Traceback" not in log and "Received SIGTERM; stopping." in log
    assert not processes_of(tmp_path)

    # Started again on the same job store (over stdio this time), it answers every id.
    async with stdio_session(tmp_path, env) as session:
        results = []
        for proof_id in submitted:
            answer = await session.call_tool("get_proof_result", {"proof_id": proof_id, "wait_seconds": 60})
            results.append(structured(answer))
    assert [(r["status"], r["verdict"]) for r in results] == [("finished", "proved")] * len(submitted)
    assert "Re-running" in log_path.read_text()  # the SIGTERM did land with jobs still queued
