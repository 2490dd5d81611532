"""The runner's tactic routes, for step provers that do not speak MCP.

    POST /tactic/run   {"proof_state_id", "tactic", "timeout"?}    → TacticResult
    POST /tactic/try   {"proof_state_id", "tactics", "timeout"?}   → TryTacticsResult

`proof_state_id` comes from a sorry of a `/prove/check` result on the `repl` backend. A bad,
expired or dead id answers 404, another backend 501, each with a `detail` saying what to do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._jobs.service import ProofService
from ._models import RunTacticRequest, TryTacticsRequest

_M = TypeVar("_M", bound=BaseModel)


def tactic_routes(service: Callable[[], ProofService], body_limit: int) -> list[Route]:
    """The two routes, over the service `service()` returns at request time."""
    from ._http_runner import _bad_request, _describe_validation, _parse_json_body, _read_body

    async def parsed(request: Request, model: type[_M]) -> _M:
        data = _parse_json_body(await _read_body(request, body_limit))
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise _bad_request(f"Invalid request body: {_describe_validation(exc, '')}.", 422) from None

    async def run(request: Request) -> Response:
        body = await parsed(request, RunTacticRequest)
        result = await service().backend.run_tactic(body.proof_state_id, body.tactic, timeout=body.timeout)
        return JSONResponse(result.model_dump(mode="json", by_alias=True))

    async def try_many(request: Request) -> Response:
        body = await parsed(request, TryTacticsRequest)
        result = await service().backend.try_tactics(body.proof_state_id, body.tactics, timeout=body.timeout)
        return JSONResponse(result.model_dump(mode="json", by_alias=True))

    handlers: list[tuple[str, Callable[[Request], Awaitable[Response]]]] = [
        ("/tactic/run", run),
        ("/tactic/try", try_many),
    ]
    return [Route(path, handler, methods=["POST"]) for path, handler in handlers]
