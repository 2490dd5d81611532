"""`lean-mcp serve` over stdio, end to end: the SDK's real stdio client, the REPL stand-in behind it."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from .mcp_support import processes_of, raw_server, server_env, stdio_session, structured, text_of

pytestmark = pytest.mark.anyio

PROVED = "theorem add_zero' (n : Nat) : n + 0 = n := rfl\n"
SORRY = "theorem needs_work (n : Nat) : 0 + n = n := by\n  sorry\n"
REJECTED = "theorem wrong : 1 = 2 := by\n-- standin: error The rfl tactic failed.\n  rfl\n"
SLOW = "theorem slow : True := by\n-- standin: work {seconds}\n  trivial\n"


@pytest.mark.timeout(60)
async def test_the_tools_are_listed_with_output_schemas(tmp_path: Path) -> None:
    async with stdio_session(tmp_path) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == {"verify_proof", "submit_proof", "get_proof_result", "run_tactic", "try_tactics"}
    for name in ("verify_proof", "get_proof_result"):
        schema = tools[name].output_schema
        assert schema is not None
        assert {"verdict", "success", "status", "result", "proof_id"} <= set(schema["properties"])
    submit_schema = tools["submit_proof"].output_schema
    assert submit_schema is not None and "id" in submit_schema["properties"]
    properties = tools["verify_proof"].input_schema["properties"]
    assert {"proof", "path", "statement"} <= set(properties)
    assert tools["get_proof_result"].input_schema["required"] == ["proof_id"]
    description = tools["verify_proof"].description or ""
    for verdict in ("proved", "sorry", "rejected", "timeout"):
        assert verdict in description


@pytest.mark.timeout(90)
async def test_verdicts_come_back_structured_and_readable(tmp_path: Path) -> None:
    async with stdio_session(tmp_path) as session:
        proved = await session.call_tool("verify_proof", {"proof": PROVED})
        sorry = await session.call_tool("verify_proof", {"proof": SORRY})
        rejected = await session.call_tool("verify_proof", {"proof": REJECTED})
        timeout = await session.call_tool("verify_proof", {"proof": SLOW.format(seconds=60), "timeout": 1})

    data = structured(proved)
    assert (data["verdict"], data["success"], data["status"]) == ("proved", True, "finished")
    assert data["proof_id"]
    assert text_of(proved).startswith("PROVED: Lean accepted the proof")

    data = structured(sorry)
    assert (data["verdict"], data["success"]) == ("sorry", False)
    assert data["result"]["sorries"][0]["goal"] == "n : Nat\n⊢ 0 + n = n"
    text = text_of(sorry)
    assert text.startswith("SORRY:")
    assert "warning: declaration uses `sorry`" in text
    state_id = data["result"]["sorries"][0]["proof_state_id"]
    assert f"Goal left at the sorry at 2:2 (proof_state_id {state_id}):\n  n : Nat\n  ⊢ 0 + n = n" in text

    data = structured(rejected)
    assert (data["verdict"], data["success"]) == ("rejected", False)
    assert data["result"]["messages"][0]["severity"] == "error"
    text = text_of(rejected)
    assert text.splitlines()[0] == "REJECTED: Lean reported 1 error."
    assert "2:0 error: The rfl tactic failed." in text

    data = structured(timeout)
    assert (data["verdict"], data["success"], data["status"]) == ("timeout", False, "error")
    assert text_of(timeout).startswith("TIMEOUT:")
    assert text_of(timeout).splitlines()[1] == data["error_message"]
    assert not any(r.is_error for r in (proved, sorry, rejected, timeout))


@pytest.mark.timeout(90)
async def test_memory_limit_and_crash_are_results_and_the_next_proof_still_works(tmp_path: Path) -> None:
    big = "theorem big : True := by\n-- standin: memory 400\n-- standin: work 30\n  trivial\n"
    crash = "theorem boom : True := by\n-- standin: crash\n  trivial\n"
    async with stdio_session(tmp_path) as session:
        memory = await session.call_tool("verify_proof", {"proof": big, "memory_limit_mb": 150})
        crashed = await session.call_tool("verify_proof", {"proof": crash})
        after = await session.call_tool("verify_proof", {"proof": PROVED})

    data = structured(memory)
    assert (data["verdict"], data["success"], data["status"]) == ("memory_limit", False, "error")
    assert text_of(memory).startswith("MEMORY LIMIT:")
    assert data["error_message"] in text_of(memory)
    data = structured(crashed)
    assert (data["verdict"], data["success"], data["status"]) == ("error", False, "error")
    assert text_of(crashed).startswith("ERROR:")
    assert data["error_message"] in text_of(crashed)
    assert structured(after)["verdict"] == "proved"


@pytest.mark.timeout(90)
async def test_submit_then_poll_then_long_poll(tmp_path: Path) -> None:
    async with stdio_session(tmp_path) as session:
        submitted = await session.call_tool("submit_proof", {"proof": SLOW.format(seconds=1)})
        proof = structured(submitted)
        assert proof["status"] in ("pending", "running")
        assert proof["id"] in text_of(submitted)

        blocked = await session.call_tool("submit_proof", {"proof": SLOW.format(seconds=120)})
        still = await session.call_tool(
            "get_proof_result", {"proof_id": structured(blocked)["id"], "wait_seconds": 0.5}
        )
        assert structured(still)["status"] in ("pending", "running")
        assert structured(still)["verdict"] is None
        assert "get_proof_result" in text_of(still)

        answer = await session.call_tool("get_proof_result", {"proof_id": proof["id"], "wait_seconds": 60})
        data = structured(answer)
        assert (data["verdict"], data["proof_id"]) == ("proved", proof["id"])

        again = await session.call_tool("get_proof_result", {"proof_id": proof["id"]})
        assert structured(again)["verdict"] == "proved"

        configured = await session.call_tool(
            "submit_proof", {"proof": SLOW.format(seconds=60), "config": {"timeout": 1}}
        )
        late = await session.call_tool(
            "get_proof_result", {"proof_id": structured(configured)["id"], "wait_seconds": 60}
        )
        assert structured(late)["verdict"] == "timeout"


@pytest.mark.timeout(120)
async def test_twenty_concurrent_verify_calls_all_get_their_own_answer(tmp_path: Path) -> None:
    # Every proof declares the same name (and the texts differ, so no cache answers): a leak
    # between proofs would show as "already declared".
    proofs = [
        f"theorem shared_name : True := by\n-- standin: error failure number {i}\n  trivial\n"
        if i % 2
        else f"-- copy {i}\ntheorem shared_name : True := trivial\n"
        for i in range(20)
    ]
    results: dict[int, Any] = {}
    async with stdio_session(tmp_path) as session:

        async def verify(i: int) -> None:
            results[i] = await session.call_tool("verify_proof", {"proof": proofs[i]})

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(verify, i)

    for i in range(20):
        data = structured(results[i])
        if i % 2:
            assert data["verdict"] == "rejected"
            assert [m["data"] for m in data["result"]["messages"]] == [f"failure number {i}"]
        else:
            assert data["verdict"] == "proved", text_of(results[i])
    assert len({structured(r)["proof_id"] for r in results.values()}) == 20


@pytest.mark.timeout(90)
async def test_a_cancelled_call_stops_the_lean_work_and_the_next_call_works(tmp_path: Path) -> None:
    # One worker: if the cancelled proof kept its REPL busy, the next proof could not run.
    env = server_env(tmp_path, LEAN_MCP_WORKERS="1")
    async with stdio_session(tmp_path, env) as session:
        started = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            started.set()

        async with anyio.create_task_group() as tg:

            async def doomed() -> None:
                arguments = {"proof": SLOW.format(seconds=600)}
                await session.call_tool("verify_proof", arguments, progress_callback=on_progress)

            tg.start_soon(doomed)
            await started.wait()
            tg.cancel_scope.cancel()

        after = await session.call_tool("verify_proof", {"proof": PROVED})
        assert structured(after)["verdict"] == "proved"

        proof_id = await _logged_cancellation(tmp_path / "server.log")
        job = await session.call_tool("get_proof_result", {"proof_id": proof_id})
    data = structured(job)
    assert (data["status"], data["success"]) == ("error", False)
    assert "cancelled" in data["error_message"]


async def _logged_cancellation(log: Path) -> str:
    """The id of the proof the server logged as cancelled (waiting for the line if need be)."""
    for _ in range(200):
        found = re.search(r"Cancelled proof (\S+): its call was cancelled", await anyio.Path(log).read_text())
        if found:
            return found.group(1)
        await anyio.sleep(0.05)
    raise AssertionError("the server did not log the proof it cancelled")


@pytest.mark.timeout(60)
async def test_progress_is_reported_while_a_call_waits(tmp_path: Path) -> None:
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with stdio_session(tmp_path) as session:
        arguments = {"proof": SLOW.format(seconds=5)}
        result = await session.call_tool("verify_proof", arguments, progress_callback=on_progress)
    assert structured(result)["verdict"] == "proved"
    assert seen, "no progress notification arrived during a 5 s check"
    assert all(message and "waited" in message for _, message in seen)
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)


@pytest.mark.timeout(90)
async def test_bad_input_is_a_tool_error_with_a_clear_message_and_the_server_keeps_serving(tmp_path: Path) -> None:
    async with stdio_session(tmp_path) as session:
        empty = await session.call_tool("verify_proof", {"proof": "   \n"})
        huge = await session.call_tool("verify_proof", {"proof": "-- x\n" * (2 * 1024 * 1024)})
        unknown = await session.call_tool("get_proof_result", {"proof_id": "no-such-proof"})
        missing = await session.call_tool("verify_proof", {})
        negative = await session.call_tool("verify_proof", {"proof": PROVED, "timeout": -1})
        no_statement = await session.call_tool("verify_proof", {"proof": PROVED, "statement": " \n"})
        no_config_statement = await session.call_tool("submit_proof", {"proof": PROVED, "config": {"statement": ""}})
        fine = await session.call_tool("verify_proof", {"proof": PROVED})

    assert text_of(empty).count("Send the Lean source text of the proof.") == 1  # the hint, said once
    assert empty.is_error and "The proof is empty." in text_of(empty)
    assert huge.is_error and "10,485,760 bytes" in text_of(huge) and "--max-proof-bytes" in text_of(huge)
    assert unknown.is_error and "no-such-proof" in text_of(unknown)
    # Argument errors: one sentence naming the field and what to send, no pydantic dump or link.
    assert missing.is_error and "Give exactly one of `proof` (the Lean text) and `path`" in text_of(missing)
    assert negative.is_error and "`timeout` input should be greater than 0" in text_of(negative)
    assert "Send a JSON object with `proof` (string), `timeout` (number)" in text_of(negative)
    # An empty statement pins nothing: refused, never taken as "no statement" (an unpinned `proved`).
    for empty_statement in (no_statement, no_config_statement):
        assert empty_statement.is_error and "the statement is empty" in text_of(empty_statement)
    for wrong in (missing, negative, no_statement, no_config_statement):
        assert "pydantic" not in text_of(wrong) and "validation error" not in text_of(wrong)
    assert structured(fine)["verdict"] == "proved"


@pytest.mark.timeout(60)
async def test_a_lean_file_in_the_project_can_be_sent_by_path_and_nothing_outside_it(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "Proofs").mkdir(parents=True)
    (project / "Proofs" / "Good.lean").write_text(PROVED)
    (project / "Bad.lean").write_text(REJECTED)
    outside = tmp_path / "Secret.lean"
    outside.write_text(PROVED)
    (project / "Link.lean").symlink_to(outside)
    env = server_env(tmp_path, LEAN_MCP_PROJECT=str(project))
    async with stdio_session(tmp_path, env) as session:
        relative = await session.call_tool("verify_proof", {"path": "Proofs/Good.lean"})
        absolute = await session.call_tool("verify_proof", {"path": str(project / "Bad.lean")})
        submitted = await session.call_tool("submit_proof", {"path": "Proofs/Good.lean"})
        escaped = await session.call_tool("verify_proof", {"path": str(outside)})
        dotdot = await session.call_tool("verify_proof", {"path": "../Secret.lean"})
        linked = await session.call_tool("verify_proof", {"path": "Link.lean"})
        missing = await session.call_tool("verify_proof", {"path": "Nope.lean"})
        # `proof` is always Lean text: a proved file's name is not read, it is checked (and fails)
        guessed = await session.call_tool("verify_proof", {"proof": "Proofs/Good.lean"})
        both = await session.call_tool("verify_proof", {"proof": PROVED, "path": "Proofs/Good.lean"})
        neither = await session.call_tool("verify_proof", {})

    assert structured(guessed)["verdict"] != "proved"
    for wrong in (both, neither):
        assert wrong.is_error and "exactly one of `proof`" in text_of(wrong)
    assert structured(relative)["verdict"] == "proved"
    assert structured(absolute)["verdict"] == "rejected"
    assert "2:0 error: The rfl tactic failed." in text_of(absolute)
    assert structured(submitted)["status"] in ("pending", "running", "finished")
    for refused in (escaped, dotdot, linked):
        assert refused.is_error
        assert "is not inside a directory this server may read" in text_of(refused)
        assert "--allowed-roots" in text_of(refused)
    assert missing.is_error and "does not exist" in text_of(missing)


@pytest.mark.timeout(60)
async def test_text_arguments_that_read_as_json_stay_text(tmp_path: Path) -> None:
    # The SDK parses a string argument as JSON unless its field is a plain `str`: `proof`, `path` and
    # `statement` are text whatever they look like, and null still means "not given".
    project = tmp_path / "project"
    project.mkdir()
    (project / "[1].lean").write_text(PROVED)
    env = server_env(tmp_path, LEAN_MCP_PROJECT=str(project))
    async with stdio_session(tmp_path, env) as session:
        listed = await session.call_tool("verify_proof", {"proof": "[1]"})
        braced = await session.call_tool("verify_proof", {"proof": '{"theorem": 1}', "statement": "[2]"})
        by_path = await session.call_tool("verify_proof", {"proof": None, "path": "[1].lean", "statement": None})
        wrong_type = await session.call_tool("verify_proof", {"proof": ["theorem"]})

    for text in (listed, braced):
        assert not text.is_error, text_of(text)
        assert structured(text)["verdict"] != "proved"
    assert structured(by_path)["verdict"] == "proved"
    assert wrong_type.is_error and "`proof` input should be a valid string" in text_of(wrong_type)
    assert "Send a JSON object with `proof` (string), `timeout` (number)" in text_of(wrong_type)


@pytest.mark.timeout(60)
async def test_without_lean_the_server_lists_its_tools_and_explains_how_to_configure_lean(tmp_path: Path) -> None:
    env = server_env(tmp_path, repl=False, PATH="/usr/bin:/bin")
    async with stdio_session(tmp_path, env) as session:
        tools = (await session.list_tools()).tools
        verify = await session.call_tool("verify_proof", {"proof": PROVED})
        submit = await session.call_tool("submit_proof", {"proof": PROVED})
    assert len(tools) == 5
    for result in (verify, submit):
        assert result.is_error
        assert "No Lean found" in text_of(result)
        assert "LEAN_MCP_REPL" in text_of(result)


@pytest.mark.timeout(60)
async def test_a_job_store_that_cannot_be_opened_is_reported_by_every_call(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    env = server_env(tmp_path, LEAN_MCP_DB=str(tmp_path / "not-a-directory" / "jobs.sqlite3"))
    async with stdio_session(tmp_path, env) as session:
        tools = (await session.list_tools()).tools
        verify = await session.call_tool("verify_proof", {"proof": PROVED})
    assert len(tools) == 5
    assert verify.is_error
    assert "The job store" in text_of(verify) and "cannot be written" in text_of(verify)
    assert "not-a-directory" in text_of(verify) and "--db" in text_of(verify)


@pytest.mark.timeout(60)
async def test_stdout_carries_only_protocol_and_stdin_eof_stops_the_server_with_no_repl_left(
    tmp_path: Path,
) -> None:
    async with raw_server(tmp_path) as server:
        await server.initialize()
        noisy = "theorem noisy : True := by\n-- standin: stderr 5000\n-- standin: info hello\n  trivial\n"
        result = await server.call("verify_proof", {"proof": noisy})
        assert result["structuredContent"]["verdict"] == "proved"
        await server.call("verify_proof", {"proof": ""})
        assert processes_of(tmp_path) - {server.process.pid}, "the pool should have a live REPL"
        assert server.process.stdin is not None
        await server.process.stdin.aclose()
        lines = await server.rest_of_stdout()
        assert await server.process.wait() == 0
    for line in lines:
        assert json.loads(line)["jsonrpc"] == "2.0", line
    assert not processes_of(tmp_path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_the_server_mid_proof_with_no_repl_left(tmp_path: Path, signum: int) -> None:
    async with raw_server(tmp_path) as server:
        await server.initialize()
        await server.call("verify_proof", {"proof": PROVED})
        await server.send("tools/call", {"name": "verify_proof", "arguments": {"proof": SLOW.format(seconds=600)}})
        assert processes_of(tmp_path) - {server.process.pid}
        server.process.send_signal(signum)
        with anyio.fail_after(30):
            assert await server.process.wait() == 0
    assert not processes_of(tmp_path)
    assert "stopping" in (tmp_path / "server.log").read_text()


@pytest.mark.timeout(60)
async def test_an_infinite_timeout_is_a_tool_error_not_a_poisoned_job(tmp_path: Path) -> None:
    # JSON's 1e400 (or Infinity) is float('inf'): a job stored with it could not be read back at restart.
    async with raw_server(tmp_path) as server:
        await server.initialize()
        verify = await server.call("verify_proof", {"proof": PROVED, "timeout": float("inf")})
        submit = await server.call("submit_proof", {"proof": PROVED, "config": {"timeout": float("inf")}})
        fine = await server.call("verify_proof", {"proof": PROVED, "timeout": 30})
    for refused in (verify, submit):
        assert refused["isError"], refused
        assert "timeout" in refused["content"][0]["text"] and "finite" in refused["content"][0]["text"]
    assert fine["structuredContent"]["verdict"] == "proved"


@pytest.mark.timeout(60)
async def test_a_path_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Loop.lean").symlink_to(project / "Loop2.lean")
    (project / "Loop2.lean").symlink_to(project / "Loop.lean")
    (project / "Binary.lean").write_bytes(b"theorem t : True := trivial -- \xff\xfe\n")
    env = server_env(tmp_path, LEAN_MCP_PROJECT=str(project))
    async with stdio_session(tmp_path, env) as session:
        answers = {
            name: await session.call_tool("verify_proof", {"path": name})
            for name in ("Loop.lean", "Binary.lean", "~no-such-user-here/A.lean", "A\0B.lean", "x" * 5000 + ".lean")
        }
        fine = await session.call_tool("verify_proof", {"proof": PROVED})
        one_liner = await session.call_tool("verify_proof", {"proof": "theorem t : True := trivial -- as in A.lean"})
    assert structured(one_liner)["verdict"] == "proved", text_of(one_liner)
    for name, answer in answers.items():
        text = text_of(answer)
        assert answer.is_error, name
        assert text != "Error executing tool verify_proof" and name[:20] in text, text
        assert "Send the proof's text" in text, text
    assert "UTF-8" in text_of(answers["Binary.lean"])
    assert structured(fine)["verdict"] == "proved"


@pytest.mark.timeout(60)
async def test_a_request_line_that_cannot_be_read_is_answered_not_dropped(tmp_path: Path) -> None:
    async with raw_server(tmp_path) as server:
        await server.initialize()
        # A lone surrogate escape is legal JSON but not text: the SDK cannot read the request.
        request = await server.send("tools/call", {"name": "verify_proof", "arguments": {"proof": "x \ud800"}})
        with anyio.fail_after(20):
            surrogate = await server.response(request)
        await server.send_line(b"this is not json")
        with anyio.fail_after(20):
            garbage = await server.response(None)
        # Bytes that are not UTF-8 are refused, not replaced with U+FFFD and checked as something else.
        call = {"name": "verify_proof", "arguments": {"proof": "theorem t : True := trivial -- \udcff"}}
        line = json.dumps({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": call}, ensure_ascii=False)
        await server.send_line(line.encode("utf-8", "surrogateescape"))  # a raw 0xff byte
        with anyio.fail_after(20):
            latin = await server.response(77)
        fine = await server.call("verify_proof", {"proof": PROVED})
    assert "surrogate" in surrogate["error"]["message"], surrogate
    assert garbage["error"]["code"] == -32700 and "JSON" in garbage["error"]["message"], garbage
    assert "error" in latin and "UTF-8" in latin["error"]["message"], latin
    assert fine["structuredContent"]["verdict"] == "proved"
