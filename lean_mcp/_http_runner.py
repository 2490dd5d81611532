"""The HTTP runner: lean-runner's and Kimina's HTTP APIs over the durable job service.

lean-runner routes (bodies form-encoded exactly as its client sends them, or JSON):

    GET  /health                      the runner's real state (backend, queue, version)
    POST /prove/check                 proof + config → the final ProofResult
    POST /prove/submit                proof + config → {"id", "proof_id", "status"} at once
    GET  /prove/result/{id}[?wait=S]  the job's current ProofResult (404 for unknown ids);
                                      `wait` (ours) holds the answer up to S seconds for the job to finish
    POST /prove/cancel/{id}           (ours) cancel a queued or running job

Kimina routes: `POST /api/check` (snippets batch) and its older `POST /verify`.

Tactic routes (`http_tactics`): `POST /tactic/run` and `POST /tactic/try` on the proof states
of a result's sorries (repl backend).

Errors are `{"detail": "..."}` with 400 (malformed config or body), 401 (missing or wrong bearer
token, when an API key is set), 404, 413 (body or proof too large), 422 (missing `proof`),
429 (queue full or workers busy), 501 (no tactic mode on this backend), 503 (backend
unavailable). Every job goes through the job service, so accepted jobs survive a restart of the runner.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from . import __version__
from ._errors import (
    BackendUnavailableError,
    InvalidProofError,
    LeanMCPError,
)
from ._jobs.service import ProofService
from ._models import ProofConfig
from ._server.auth import BearerAuth, bearer_ok
from ._server.runtime import open_service
from ._settings import Settings
from ._wire import kimina, lean_runner
from ._wire.lean_runner import status_code_of

__all__ = ["PUBLIC_PATHS", "create_app", "status_code_of"]

logger = logging.getLogger(__name__)
_M = TypeVar("_M", bound=BaseModel)

#: Paths that answer without the bearer token.
PUBLIC_PATHS = frozenset({"/health"})
#: Longest `?wait=` a result request may hold the connection, in seconds.
MAX_RESULT_WAIT = 60.0

# --------------------------------------------------------------------------- request bodies


class _ProveRequest(BaseModel):
    proof: str
    config: ProofConfig


def _bad_request(detail: str, status_code: int = 400) -> HTTPException:
    return HTTPException(status_code=status_code, detail=detail)


def _describe_validation(error: ValidationError, prefix: str) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "")
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


_TOO_BIG = (
    "the limit is {limit:,} bytes (the server's --max-request-bytes). "
    "Send a smaller proof, or fewer snippets per request."
)


def _refuse_declared_length(request: Request, limit: int) -> None:
    """413 at once when the request says its body is larger than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _bad_request(f"The request body is {int(declared):,} bytes; {_TOO_BIG.format(limit=limit)}", 413)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    _refuse_declared_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _bad_request(f"The request body is too large: {_TOO_BIG.format(limit=limit)}", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _loads(text: str | bytes, what: str) -> Any:
    """JSON from a client: anything that cannot be read (not JSON, nested too deeply) is a 400."""
    try:
        return json.loads(text)
    except RecursionError:
        raise _bad_request(f"{what} is nested too deeply to read; send a flat JSON object.") from None
    except ValueError as exc:
        raise _bad_request(f"{what} is not valid JSON: {exc}.") from None


def _parse_json_body(body: bytes) -> dict[str, Any]:
    data = _loads(body or b"{}", "The request body")
    if not isinstance(data, dict):
        raise _bad_request("The request body must be a JSON object.")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise _bad_request("The request body is nested too deeply to read; send a flat JSON object.") from None
    except UnicodeEncodeError as exc:  # a lone surrogate escape such as "\ud800": legal JSON, not text
        bad = exc.object[exc.start : exc.end]
        raise _bad_request(
            f"The request body contains {bad!r}, a lone UTF-16 surrogate, which is not Unicode text. "
            "Send the proof as valid Unicode (UTF-8)."
        ) from None
    return data


def _parse_form_body(body: bytes) -> dict[str, str]:
    """An urlencoded form; bytes that are not UTF-8 are refused rather than replaced."""
    try:
        return dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError as exc:
        raise _bad_request(f"The form body is not valid UTF-8 ({exc.reason}). Send the proof as UTF-8 text.") from None


async def _parse_multipart_body(request: Request, body: bytes, limit: int) -> dict[str, str]:
    """A multipart form read from `body` (already cut off at the limit); an uploaded file is its text."""

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    fields: dict[str, str] = {}
    async with Request(request.scope, replay).form(max_part_size=limit) as form:
        for key, value in form.items():
            if not isinstance(value, UploadFile):
                fields[key] = value
                continue
            try:  # e.g. `curl -F proof=@Foo.lean`
                fields[key] = (await value.read()).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _bad_request(f"The uploaded {key!r} is not UTF-8 text ({exc.reason}).") from None
    return fields


def _parse_config(raw: Any) -> ProofConfig:
    """`config` as lean-runner sends it (a JSON string) or as a JSON object; unknown keys are ignored."""
    if raw is None or raw == "":
        raw = {}
    if isinstance(raw, str):
        raw = _loads(raw, "Field 'config'")
    if not isinstance(raw, dict):
        raise _bad_request("Field 'config' must be a JSON object, e.g. {\"timeout\": 60}.")
    try:
        config = ProofConfig.model_validate(raw)
    except ValidationError as exc:
        raise _bad_request(f"Field {_describe_validation(exc, 'config')}.") from None
    return config


async def _prove_request(request: Request, limit: int) -> _ProveRequest:
    """`proof` and `config` from a form-encoded, multipart or JSON body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: Mapping[str, Any]
    body = await _read_body(request, limit)
    if content_type == "multipart/form-data":
        fields = await _parse_multipart_body(request, body, limit)
    else:
        fields = _parse_json_body(body) if content_type == "application/json" else _parse_form_body(body)
    proof = fields.get("proof")
    if proof is None:
        raise _bad_request(
            "Field 'proof' is required: the Lean source text to check. Send it form-encoded "
            "(proof=...&config=...) or in a JSON object with Content-Type: application/json.",
            422,
        )
    if not isinstance(proof, str):
        raise _bad_request("Field 'proof' must be a string of Lean source text.", 422)
    return _ProveRequest(proof=proof, config=_parse_config(fields.get("config")))


def _json_model(data: BaseModel) -> Response:
    """`data` as a JSON response, serialised once (by pydantic, straight to JSON)."""
    return Response(data.model_dump_json(), media_type="application/json")


# --------------------------------------------------------------------------- the app


class _Runner:
    """The route handlers, over one ProofService (given, or opened by the app's lifespan)."""

    def __init__(self, settings: Settings, service: ProofService | None) -> None:
        self.settings = settings
        self._service = service
        self.body_limit = settings.request_limit_bytes

    @property
    def service(self) -> ProofService:
        if self._service is None:
            raise BackendUnavailableError("The runner is starting or stopping; retry in a moment.")
        return self._service

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        if self._service is not None:
            yield
            return
        async with open_service(self.settings) as service:
            self._service = service
            try:
                yield
            finally:
                self._service = None

    async def health(self, request: Request) -> Response:
        stats = self.service.stats()
        answer: dict[str, Any] = {"status": "ok", "message": "lean-mcp runner is up", "version": __version__}
        if not bearer_ok(request.headers, self.settings.api_key):
            return JSONResponse(answer)  # without the key: alive or not, nothing about the machine
        backend = stats.get("backend")
        backend = backend if isinstance(backend, dict) else {"backend": backend}
        return JSONResponse(
            {
                **answer,
                "backend": backend.get("backend"),
                "live_repls": backend.get("live"),
                "queue_length": stats.get("queued"),
                "running": stats.get("running"),
                "stats": stats,
            }
        )

    async def check(self, request: Request) -> Response:
        body = await _prove_request(request, self.body_limit)
        return _json_model(await self.service.verify(body.proof, body.config))

    async def submit(self, request: Request) -> Response:
        body = await _prove_request(request, self.body_limit)
        proof = await self.service.submit(body.proof, body.config)
        return JSONResponse(lean_runner.submit_answer(proof))

    async def result(self, request: Request) -> Response:
        proof_id = request.path_params["proof_id"]
        result = await self.service.get_result(proof_id)
        wait = _wait_seconds(request.query_params.get("wait"))
        if wait > 0 and not result.done:
            result = await self.service.wait(proof_id, timeout=wait)
        return _json_model(result)

    async def cancel(self, request: Request) -> Response:
        return _json_model(await self.service.cancel(request.path_params["proof_id"]))

    async def kimina_check(self, request: Request) -> Response:
        body = _parse_kimina(kimina.CheckRequest, await self._json_body(request))
        ids = [s.id for s in body.snippets]
        if len(set(ids)) != len(ids):
            raise _bad_request("Snippet ids must be unique within one request.")
        config = ProofConfig(timeout=body.timeout)
        items = await self._check_snippets([(s.id, s.code) for s in body.snippets], config, body.debug)
        return Response(kimina.check_answer(items), media_type="application/json")

    async def kimina_verify(self, request: Request) -> Response:
        body = _parse_kimina(kimina.VerifyRequest, await self._json_body(request))
        snippets = [(str(c.custom_id), c.proof if c.proof is not None else c.code or "") for c in body.codes]
        config = ProofConfig(timeout=body.timeout, use_cache=not body.disable_cache)
        items = await self._check_snippets(snippets, config, debug=False)
        return JSONResponse({"results": [kimina.verify_item(item) for item in items]})

    async def _json_body(self, request: Request) -> dict[str, Any]:
        return _parse_json_body(await _read_body(request, self.body_limit))

    async def _check_snippets(
        self, snippets: Sequence[tuple[str, str]], config: ProofConfig, debug: bool
    ) -> list[kimina.CheckResult]:
        """Check every snippet through the job service; invalid ones get an `error` of their own."""
        answers = await self.service.check_each([code for _, code in snippets], config)
        return [
            kimina.invalid_item(snippet_id, answer)
            if isinstance(answer, InvalidProofError)
            else kimina.result_item(snippet_id, answer, debug)
            for (snippet_id, _), answer in zip(snippets, answers, strict=True)
        ]


def _wait_seconds(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise _bad_request(f"Query parameter 'wait' must be a number of seconds, got {text!r}.") from None
    if not math.isfinite(value) or value < 0:
        raise _bad_request(f"Query parameter 'wait' must be a non-negative number of seconds, got {text!r}.")
    return min(value, MAX_RESULT_WAIT)


def _parse_kimina(model: type[_M], data: dict[str, Any]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _bad_request(f"Invalid request body: {_describe_validation(exc, '')}.", 422) from None


async def _lean_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LeanMCPError)
    code = status_code_of(exc)
    if code >= 500:
        logger.warning("Request failed: %s", exc)
    headers = {"Retry-After": "1"} if code == 429 else None
    # `detail` as every lean-runner client reads it; `message` and `hint` apart for lean-mcp's client.
    return JSONResponse(lean_runner.error_body(exc), status_code=code, headers=headers)


async def _unexpected_error(_request: Request, exc: Exception) -> Response:
    """A 500 that still says what happened and what to do (uvicorn logs the traceback)."""
    detail = (
        f"The runner failed unexpectedly ({type(exc).__name__}: {exc}). The details are in the runner log; "
        "retry, and if it keeps failing run `lean-mcp doctor` or restart the runner."
    )
    return JSONResponse({"detail": detail}, status_code=500)


async def _client_gone(_request: Request, _exc: Exception) -> Response:
    """The client hung up (or was cut off for being too slow) before its body arrived: nobody to answer."""
    return Response(status_code=400)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_app(service: ProofService | None = None, settings: Settings | None = None) -> Starlette:
    """The runner's ASGI app over `service`; with no service, its lifespan opens one from `settings`."""
    settings = settings or Settings.load()
    runner = _Runner(settings, service)
    handlers: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        (lean_runner.HEALTH_PATH, runner.health, ["GET"]),
        (lean_runner.CHECK_PATH, runner.check, ["POST"]),
        (lean_runner.SUBMIT_PATH, runner.submit, ["POST"]),
        (lean_runner.RESULT_PATH, runner.result, ["GET"]),
        (lean_runner.CANCEL_PATH, runner.cancel, ["POST"]),
        (kimina.CHECK_PATH, runner.kimina_check, ["POST"]),
        (kimina.VERIFY_PATH, runner.kimina_verify, ["POST"]),
    ]
    from ._http_tactics import tactic_routes  # it builds on this module's body parsing

    tactic = tactic_routes(lambda: runner.service, runner.body_limit)
    middleware = (
        [Middleware(BearerAuth, api_key=settings.api_key, public_paths=PUBLIC_PATHS, no_oauth=True)]
        if settings.api_key
        else []
    )
    return Starlette(
        routes=[*(Route(path, handler, methods=methods) for path, handler, methods in handlers), *tactic],
        middleware=middleware,
        exception_handlers={
            LeanMCPError: _lean_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _unexpected_error,
        },
        lifespan=runner.lifespan,
    )
