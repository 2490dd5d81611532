"""The runner's tactic routes (POST /tactic/run, /tactic/try) and the clients' run_tactic / try_tactics,
through a real `lean-mcp runner` on 127.0.0.1 over the REPL stand-in."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from lean_mcp import AsyncLeanClient, LeanClient
from lean_mcp._errors import InvalidProofError, ProofStateError, TacticModeUnavailableError
from lean_mcp._models import ProofStatus

from .runner_support import runner_env, running_runner

SKETCH = "theorem complex_and (p q r : Prop) (h1 : p ∧ q) (h2 : q → r) : p ∧ r := by\n  sorry\n"


@pytest.mark.timeout(90)
def test_a_step_prover_drives_a_proof_over_http_with_the_sync_client(tmp_path: Path) -> None:
    with running_runner(tmp_path) as runner, LeanClient(runner.url) as client:
        start = client.verify(SKETCH).sorries[0].proof_state_id
        assert start is not None
        tried = client.try_tactics(start, ["apply And.intro", "bogus"])
        assert [r.proof_status for r in tried.results] == [ProofStatus.INCOMPLETE, ProofStatus.ERROR]
        split = tried.results[0].proof_state_id
        assert split is not None
        left = client.run_tactic(split, "exact h1.left", timeout=30)
        assert left.proof_state_id is not None
        done = client.run_tactic(left.proof_state_id, "exact h2 h1.right")
        assert done.proof_status == ProofStatus.COMPLETED and all(c.passed for c in done.checks)
        with pytest.raises(ProofStateError, match="No proof state has the id 'ps_nope'"):
            client.run_tactic("ps_nope", "rfl")
        with pytest.raises(InvalidProofError, match="tactics"):
            client.try_tactics(start, [])  # refused before it is sent
        raw = httpx.post(f"{runner.url}/tactic/run", json={"proof_state_id": start}, timeout=10)
        assert raw.status_code == 422 and "tactic" in raw.json()["detail"]
        gone = httpx.post(f"{runner.url}/tactic/try", json={"proof_state_id": "ps_x", "tactics": ["rfl"]}, timeout=10)
        assert gone.status_code == 404 and "Verify the proof" in gone.json()["detail"]


@pytest.mark.timeout(90)
def test_the_async_client_and_a_tactic_timeout(tmp_path: Path) -> None:
    async def main(url: str) -> None:
        async with AsyncLeanClient(url) as client:
            start = (await client.verify(SKETCH)).sorries[0].proof_state_id
            assert start is not None
            step = await client.run_tactic(start, "apply And.intro")
            assert len(step.goals) == 2
            slow = await client.run_tactic(start, "skip\n-- standin: hang", timeout=0.5)
            assert slow.failure == "timeout" and slow.proof_status == ProofStatus.ERROR
            with pytest.raises(ProofStateError, match="killed while running a tactic"):
                await client.try_tactics(start, ["skip"])

    with running_runner(tmp_path) as runner:
        anyio.run(main, runner.url)


@pytest.mark.timeout(120)
def test_a_runner_on_another_backend_answers_501_naming_repl(tmp_path: Path) -> None:
    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    with running_runner(upstream_dir) as upstream:
        env = runner_env(tmp_path, LEAN_MCP_BACKEND="remote", LEAN_MCP_REMOTE_URL=upstream.url)
        with (
            running_runner(tmp_path, env) as front,
            LeanClient(front.url) as client,
            pytest.raises(TacticModeUnavailableError, match=r"`remote` backend has no proof states.*`repl`"),
        ):
            client.run_tactic("ps_x", "rfl")
