"""The examples in `examples/` run unchanged against a local `lean-mcp runner`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.runner_support import REPO, RunnerProcess, runner_env, running_runner

# on one xdist worker, so the module's runner starts once
pytestmark = [pytest.mark.timeout(120), pytest.mark.xdist_group("test_runner_examples")]

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    """Two workers, each proof takes 0.3 s: a job is visibly running before it finishes."""
    tmp_path = tmp_path_factory.mktemp("examples")
    with running_runner(
        tmp_path, runner_env(tmp_path, work_seconds=0.3, LEAN_MCP_WORKERS="2", LEAN_MCP_CACHE="false")
    ) as process:
        yield process


def example_env(runner: RunnerProcess) -> dict[str, str]:
    return {**os.environ, "LEAN_MCP_URL": runner.url, "PYTHONPATH": str(REPO)}


def run_example(name: str, runner: RunnerProcess) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env=example_env(runner),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return done


def wait_until_idle(runner: RunnerProcess) -> None:
    """Block until the runner has nothing queued or running (examples must not see others' jobs)."""
    while True:
        health = httpx.get(f"{runner.url}/health").json()
        if health["queue_length"] == 0 and health["running"] == 0:
            return
        time.sleep(0.05)


def occupy_the_workers(runner: RunnerProcess) -> None:
    """Queue a proof ahead for each worker, so the example's job starts out pending."""
    wait_until_idle(runner)
    for n in range(2):
        # long enough to outlast the example's start-up (a new Python process) on a loaded machine
        form = {"proof": f"-- standin: work 5\ntheorem ahead{n} : True := trivial\n", "config": "{}"}
        assert httpx.post(f"{runner.url}/prove/submit", data=form).status_code == 200


def test_seed_sync_example_prints_the_submitted_job(runner: RunnerProcess) -> None:
    occupy_the_workers(runner)
    out = run_example("submit_and_get_result.py", runner).stdout
    first, _, rest = out.partition("\n")
    assert first.startswith("Proof submitted with ID: ")
    result = json.loads(rest)
    assert result["status"] in ("pending", "running")
    assert result["proof_id"] == first.removeprefix("Proof submitted with ID: ")


def test_seed_async_example_prints_the_result(runner: RunnerProcess) -> None:
    wait_until_idle(runner)
    out = run_example("async_submit_and_get_result.py", runner).stdout
    first, _, rest = out.partition("\n")
    result = json.loads(rest)
    assert result["proof_id"] == first.removeprefix("Proof submitted with ID: ")
    assert result["status"] in ("running", "finished")  # it slept 1 s; the proof takes 0.3 s
    if result["status"] == "finished":
        assert (result["success"], result["verdict"]) == (True, "proved")


def test_watch_status_goes_pending_running_finished(tmp_path: Path) -> None:
    """Deterministic: the example's job is held pending behind a hanging proof until the example
    has printed `pending`, runs for 1 s (the polling example sees it), and the cache could answer it."""
    env = runner_env(tmp_path, work_seconds=1.0, LEAN_MCP_WORKERS="1", LEAN_MCP_CACHE="true")
    with running_runner(tmp_path, env) as runner:
        run_example("watch_status.py", runner)  # the same proof is now in the result cache
        ahead = httpx.post(
            f"{runner.url}/prove/submit", data={"proof": "-- standin: hang\ntheorem ahead : True := trivial\n"}
        ).json()["id"]
        while httpx.get(f"{runner.url}/health").json()["running"] != 1:
            time.sleep(0.05)
        example = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "watch_status.py")],
            env={**example_env(runner), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            assert example.stdout is not None
            lines = [example.stdout.readline(), example.stdout.readline()]
            assert lines[1] == "status: pending\n", lines
            httpx.post(f"{runner.url}/prove/cancel/{ahead}")
            rest, _ = example.communicate(timeout=60)
        finally:
            if example.poll() is None:
                example.kill()
                example.wait()
    out = "".join(lines) + rest
    statuses = [line.removeprefix("status: ") for line in out.splitlines() if line.startswith("status: ")]
    assert statuses == ["pending", "running", "finished"]
    assert "verdict: proved, success: True" in out
    assert example.returncode == 0


def test_verify_and_verify_all_examples(runner: RunnerProcess) -> None:
    verify = run_example("verify.py", runner).stdout
    assert "proved: success=True" in verify
    assert "sorry: success=False" in verify
    many = run_example("verify_all.py", runner)
    indexes = sorted(int(line.split(":")[0][1:]) for line in many.stdout.splitlines())
    assert indexes == list(range(21))
    assert "#20: sorry" in many.stdout
    assert "verify_all 21/21" in many.stderr
    assert "20/20 proved" in run_example("async_verify_all.py", runner).stdout
