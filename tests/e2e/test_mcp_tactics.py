"""run_tactic and try_tactics over MCP stdio, end to end: the SDK's stdio client, `lean-mcp serve`, the
REPL stand-in. The agent's walkthrough: verify a sketch with sorries, run tactics on its goals, verify
the finished proof."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from .mcp_support import server_env, stdio_session, structured, text_of

pytestmark = pytest.mark.anyio

SKETCH = "theorem complex_and (p q r : Prop) (h1 : p ∧ q) (h2 : q → r) : p ∧ r := by\n  sorry\n"
FINISHED = (
    "theorem complex_and (p q r : Prop) (h1 : p ∧ q) (h2 : q → r) : p ∧ r := by\n"
    "  apply And.intro\n  exact h1.left\n  exact h2 h1.right\n"
)


@pytest.mark.timeout(90)
async def test_verify_a_sketch_then_run_tactics_on_its_goal_then_verify_the_finished_proof(tmp_path: Path) -> None:
    async with stdio_session(tmp_path) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        sketch = await session.call_tool("verify_proof", {"proof": SKETCH})
        start = structured(sketch)["result"]["sorries"][0]["proof_state_id"]
        assert f"(proof_state_id {start})" in text_of(sketch)

        split = await session.call_tool("run_tactic", {"proof_state_id": start, "tactic": "apply And.intro"})
        step = structured(split)
        assert step["proof_status"] == "incomplete" and len(step["goals"]) == 2
        assert text_of(split).startswith("INCOMPLETE: 2 goals left.")
        assert "case left" in text_of(split) and step["proof_state_id"] in text_of(split)

        tried = await session.call_tool(
            "try_tactics", {"proof_state_id": step["proof_state_id"], "tactics": ["exact h1.left", "omega_typo"]}
        )
        left, typo = structured(tried)["results"]
        assert left["proof_status"] == "incomplete" and len(left["goals"]) == 1
        assert typo["proof_status"] == "error" and typo["proof_state_id"] is None
        assert "[2] omega_typo\nERROR: the tactic failed" in text_of(tried)

        done = await session.call_tool(
            "run_tactic", {"proof_state_id": left["proof_state_id"], "tactic": "exact h2 h1.right"}
        )
        finished = structured(done)
        assert finished["proof_status"] == "completed" and finished["goals"] == []
        assert {c["name"]: c["passed"] for c in finished["checks"]} == {
            "repl_completed": True,
            "no_errors": True,
            "no_sorry": True,
            "trusted_text": True,
        }
        assert text_of(done).startswith("COMPLETED") and "verify_proof" in text_of(done)

        proved = structured(await session.call_tool("verify_proof", {"proof": FINISHED}))
    assert proved["verdict"] == "proved"
    for name in ("run_tactic", "try_tactics"):
        schema = tools[name].output_schema
        assert schema is not None and "proof_state_id" in schema["properties"]
    assert tools["run_tactic"].input_schema["required"] == ["proof_state_id", "tactic"]
    assert tools["try_tactics"].input_schema["required"] == ["proof_state_id", "tactics"]


@pytest.mark.timeout(90)
async def test_dead_and_unknown_ids_are_tool_errors_that_say_to_verify_again(tmp_path: Path) -> None:
    async with stdio_session(tmp_path) as session:
        start = structured(await session.call_tool("verify_proof", {"proof": SKETCH}))["result"]["sorries"][0]
        crashed = await session.call_tool(
            "run_tactic", {"proof_state_id": start["proof_state_id"], "tactic": "skip\n-- standin: crash"}
        )
        after = await session.call_tool("run_tactic", {"proof_state_id": start["proof_state_id"], "tactic": "skip"})
        unknown = await session.call_tool("run_tactic", {"proof_state_id": "ps_made_up", "tactic": "skip"})
        empty = await session.call_tool("try_tactics", {"proof_state_id": "ps_made_up", "tactics": []})
        again = structured(await session.call_tool("verify_proof", {"proof": SKETCH}))
    assert structured(crashed)["failure"] == "crash"
    assert text_of(crashed).startswith("ERROR (crash)")
    assert after.is_error and "is gone" in text_of(after) and "Verify the proof" in text_of(after)
    assert unknown.is_error and "No proof state has the id 'ps_made_up'" in text_of(unknown)
    assert empty.is_error
    fresh = again["result"]["sorries"][0]["proof_state_id"]
    assert fresh and fresh != start["proof_state_id"]  # not served from the cache with a dead id


@pytest.mark.timeout(90)
async def test_the_lean_backend_answers_the_tactic_tools_with_an_error_naming_repl(tmp_path: Path) -> None:
    lean = tmp_path / "lean"
    lean.write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo "Lean (version 4.15.0, test)"; fi\n')
    lean.chmod(lean.stat().st_mode | stat.S_IXUSR)
    env = server_env(tmp_path, repl=False, LEAN_MCP_BACKEND="lean", LEAN_MCP_LEAN=str(lean))
    async with stdio_session(tmp_path, env) as session:
        run = await session.call_tool("run_tactic", {"proof_state_id": "ps_x", "tactic": "rfl"})
        tried = await session.call_tool("try_tactics", {"proof_state_id": "ps_x", "tactics": ["rfl"]})
    for result in (run, tried):
        assert result.is_error
        assert "`lean` backend has no proof states" in text_of(result)
        assert "--backend repl" in text_of(result)
