"""The remote backends never read a remote's non-answer as proved (real HTTP, scripted runners)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lean_mcp._backends.remote import KiminaBackend, LeanRunnerBackend
from lean_mcp._jobs.service import ProofService
from lean_mcp._jobs.store import JobStore
from lean_mcp._models import ProofConfig, ProofResult, Verdict
from tests.test_client import ScriptedServer, lean_runner_result

pytestmark = pytest.mark.timeout(60)

#: `result` objects a runner may send with status "finished" that are not Lean's answer to the proof.
NOT_LEAN_ANSWERS: dict[str, Any] = {
    "repl_error": {"message": "Unknown environment."},
    "failure_record": {"status": "timeout", "return_code": -9},
    "empty": {},
}


@pytest.mark.parametrize("name", sorted(NOT_LEAN_ANSWERS))
def test_a_finished_result_that_is_not_lean_output_is_never_proved(name: str) -> None:
    def submit(_request: Request, _fields: dict[str, str]) -> Response:
        return JSONResponse({"id": "j"})

    def result(_request: Request, _fields: dict[str, str]) -> Response:
        return JSONResponse(lean_runner_result("finished", NOT_LEAN_ANSWERS[name], success=True))

    async def check(url: str) -> Any:
        async with LeanRunnerBackend(url) as backend:
            return await backend.check("theorem t : True := trivial", ProofConfig(timeout=10))

    with ScriptedServer({"POST /prove/submit": submit, "GET *": result}) as server:
        outcome = anyio.run(check, server.url)
    assert outcome.success is False
    assert outcome.verdict in (Verdict.ERROR, Verdict.TIMEOUT)
    assert outcome.status == "error"
    assert outcome.messages and outcome.messages[0].severity == "error"
    if name == "repl_error":
        assert "Unknown environment." in outcome.messages[0].data


@pytest.mark.parametrize("name", ["repl_error", "failure_record", "empty"])
def test_a_kimina_response_that_is_not_lean_output_is_never_proved(name: str) -> None:
    def api_check(_request: Request, fields: dict[str, str]) -> Response:
        snippet = json.loads(fields["json"])["snippets"][0]
        return JSONResponse({"results": [{"id": snippet["id"], "time": 0.1, "response": NOT_LEAN_ANSWERS[name]}]})

    async def check(url: str) -> Any:
        async with KiminaBackend(url) as backend:
            return await backend.check("theorem t : True := trivial", ProofConfig(timeout=10))

    with ScriptedServer({"POST /api/check": api_check}) as server:
        outcome = anyio.run(check, server.url)
    assert outcome.success is False
    assert outcome.status == "error"
    assert outcome.messages and outcome.messages[0].severity == "error"


def test_a_remote_runners_answers_are_not_served_from_cache_after_a_restart(tmp_path: Path) -> None:
    """The remote's Lean may be upgraded without our knowing: a new process asks it again."""
    answer = {"result": {"env": 0, "messages": []}}

    def submit(_request: Request, _fields: dict[str, str]) -> Response:
        return JSONResponse({"id": "j"})

    def result(_request: Request, _fields: dict[str, str]) -> Response:
        return JSONResponse(lean_runner_result("finished", answer["result"], success=True))

    async def verify(url: str) -> ProofResult:
        backend = LeanRunnerBackend(url)
        async with backend, ProofService(backend, JobStore(str(tmp_path / "jobs.db"))) as service:
            return await service.verify("theorem t : True := trivial", ProofConfig(timeout=10))

    with ScriptedServer({"POST /prove/submit": submit, "GET *": result}) as server:
        first = anyio.run(verify, server.url)
        answer["result"] = {"env": 0, "messages": [{"severity": "error", "pos": {"line": 1, "column": 0}, "data": "x"}]}
        second = anyio.run(verify, server.url)
    assert first.verdict == Verdict.PROVED
    assert (second.cached, second.verdict) == (False, Verdict.REJECTED)
