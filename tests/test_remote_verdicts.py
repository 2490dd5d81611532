"""The remote backends never read a remote's non-answer as proved (real HTTP, scripted runners)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lean_mcp.backends.remote import KiminaBackend, LeanRunnerBackend
from lean_mcp.models import ProofConfig, Verdict
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
