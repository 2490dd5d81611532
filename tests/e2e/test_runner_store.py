"""The runner and its job store: restarts are not failed attempts; a full disk is a 503 that heals."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from lean_mcp import LeanClient
from tests.e2e.runner_support import RunnerProcess, runner_env, running_runner
from tests.test_jobs_store_failures import fill, small_tmpfs

pytestmark = pytest.mark.timeout(240)

SLOW_PROOF = "-- standin: work 2\ntheorem slow : True := trivial\n"


def wait_until_running(client: LeanClient, proof_id: str, deadline_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while client.get_result(proof_id).status != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)


def test_a_valid_proof_survives_more_kill_9s_than_the_attempt_limit(tmp_path: Path) -> None:
    env = runner_env(tmp_path, LEAN_MCP_WORKERS="1")
    proof_id = ""
    for _ in range(6):  # one more than MAX_ATTEMPTS
        runner = RunnerProcess(tmp_path, env)
        try:
            runner.wait_ready()
            with LeanClient(runner.url) as client:
                proof_id = proof_id or client.submit(SLOW_PROOF).id
                wait_until_running(client, proof_id)
        finally:
            assert runner.stop(signal.SIGKILL) == -signal.SIGKILL
    with running_runner(tmp_path, env) as runner, LeanClient(runner.url) as client:
        result = client.wait(proof_id, timeout=60)
    assert (result.status, result.verdict) == ("finished", "proved"), result.error_message


def test_a_full_disk_is_a_503_naming_the_cause_and_the_runner_recovers(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path) as fs:
        env = runner_env(tmp_path, LEAN_MCP_DB=str(fs / "jobs.sqlite3"), LEAN_MCP_CACHE="false")
        with running_runner(tmp_path, env) as runner, httpx.Client(base_url=runner.url, timeout=30) as http:
            assert (
                http.post("/prove/check", data={"proof": "theorem a : True := trivial"}).json()["verdict"] == "proved"
            )
            filler = fill(fs)
            big = "theorem b : True := trivial\n" + "-- padding\n" * 20_000
            refused = http.post("/prove/submit", data={"proof": big})
            assert refused.status_code == 503 and "disk is full" in refused.json()["detail"], refused.text
            assert http.get("/health").status_code == 200
            snippets = {"snippets": [{"id": "s", "code": "theorem c : True := trivial"}]}
            assert http.post("/api/check", json=snippets).status_code == 503

            filler.unlink()
            deadline = time.monotonic() + 30
            while (answer := http.post("/prove/check", data={"proof": big})).status_code == 503:
                assert time.monotonic() < deadline, answer.text
                time.sleep(0.2)
            assert answer.json()["verdict"] == "proved"
        assert "Traceback" not in runner.log()
