"""LeanClient / AsyncLeanClient and the remote backends against scripted HTTP servers.

The servers here are real uvicorn servers on 127.0.0.1 that answer like lean-runner (its
dialect: `success` true despite a sorry, no `verdict`, failures as `result.status`) or like a
runner in trouble (429, 503, dropped connections), so the client's error mapping, retry policy
and the remote backends' strict verdicts are exercised over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from lean_mcp import (
    AsyncLeanClient,
    AuthenticationError,
    InvalidProofError,
    JobNotFoundError,
    LeanClient,
    ProofConfig,
    RateLimitedError,
    RemoteError,
    RunnerUnreachableError,
    Verdict,
)
from lean_mcp._backends.remote import KiminaBackend, LeanRunnerBackend
from lean_mcp._client import MAX_PATH_CHARS, read_proof

pytestmark = pytest.mark.timeout(60)

SORRY_RESPONSE = {
    "env": 0,
    "messages": [],  # lean-runner drops warnings, so the sorry warning is gone
    "sorries": [{"pos": {"line": 1, "column": 30}, "endPos": {"line": 1, "column": 35}, "goal": "⊢ False"}],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ScriptedServer:
    """A real HTTP server whose handlers the test writes; records every request it saw."""

    def __init__(self, routes: dict[str, Callable[[Request, dict[str, str]], Response]]) -> None:
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self.routes = routes

        async def handle(request: Request) -> Response:
            body = await request.body()
            ctype = request.headers.get("content-type", "")
            fields: dict[str, str] = {}
            if ctype.startswith("application/x-www-form-urlencoded"):
                fields = {k: str(v) for k, v in (await request.form()).items()}
            elif ctype.startswith("application/json"):
                fields = {"json": body.decode()}
            key = f"{request.method} {request.url.path}"
            self.requests.append((request.method, request.url.path, fields, dict(request.headers)))
            handler = self.routes.get(key) or self.routes.get(f"{request.method} *")
            if handler is None:
                return JSONResponse({"detail": "Not Found"}, status_code=404)
            return handler(request, fields)

        app = Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the scripted server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def paths(self) -> list[str]:
        return [f"{method} {path}" for method, path, _, _ in self.requests]


def lean_runner_result(status: str, result: dict[str, Any] | None, success: bool | None = None, **extra: Any) -> Any:
    return {"success": success, "status": status, "result": result, "error_message": extra.get("error_message")}


@pytest.fixture
def lean_runner_like() -> Iterator[ScriptedServer]:
    """A server speaking lean-runner's dialect: a sorry proof is `success: true`, no verdict."""
    jobs: dict[str, int] = {}

    def check(_request: Request, fields: dict[str, str]) -> Response:
        if "sorry" in fields["proof"]:
            return JSONResponse(lean_runner_result("finished", SORRY_RESPONSE, success=True))
        return JSONResponse(lean_runner_result("finished", {"env": 0, "messages": []}, success=True))

    def submit(_request: Request, fields: dict[str, str]) -> Response:
        job_id = f"job-{len(jobs)}"
        jobs[job_id] = 0
        return JSONResponse({"id": job_id})

    def result(request: Request, _fields: dict[str, str]) -> Response:
        job_id = request.url.path.rsplit("/", 1)[-1]
        if job_id not in jobs:
            return JSONResponse({"detail": "no such job"}, status_code=404)
        jobs[job_id] += 1
        if jobs[job_id] < 3:  # pending for two polls, as a real queue would be
            return JSONResponse(lean_runner_result("running" if jobs[job_id] > 1 else "pending", None))
        return JSONResponse(lean_runner_result("finished", SORRY_RESPONSE, success=True))

    routes = {
        "POST /prove/check": check,
        "POST /prove/submit": submit,
        "GET *": result,
    }
    with ScriptedServer(routes) as server:
        yield server


# --------------------------------------------------------------------------- proof inputs


def test_a_long_proof_string_is_text_not_a_path() -> None:
    proof = "theorem t : True := trivial\n" + "-- padding\n" * 2000 + "-- x.lean"
    assert read_proof(proof) == proof
    one_line = "a" * (MAX_PATH_CHARS + 10) + ".lean"  # too long to be a file name: text
    assert read_proof(one_line) == one_line


def test_paths_of_every_kind_are_read(tmp_path: Path) -> None:
    path = tmp_path / "two.lean"
    path.write_text("theorem two : 1 + 1 = 2 := rfl\n", encoding="utf-8")
    for given in (path, str(path), anyio.Path(path)):
        assert read_proof(given) == "theorem two : 1 + 1 = 2 := rfl\n"


def test_text_that_is_not_unicode_is_a_clear_error() -> None:
    with pytest.raises(InvalidProofError, match="surrogate"):
        read_proof("theorem t : True := trivial -- \ud800")


def test_a_missing_lean_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidProofError, match="does not exist"):
        read_proof(str(tmp_path / "missing.lean"))


@pytest.mark.timeout(10)
def test_a_path_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.lean"
    os.mkfifo(fifo)  # reading it would block forever
    for path in (str(fifo), Path("/dev/zero")):
        with pytest.raises(InvalidProofError, match="not a regular file"):
            read_proof(path)


# --------------------------------------------------------------------------- errors and retries


def test_an_unreachable_runner_names_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with LeanClient(url, retries=1) as client, pytest.raises(RunnerUnreachableError, match=url):
        client.verify("theorem t : True := trivial")


def test_status_codes_become_lean_mcp_errors() -> None:
    def refuse(_request: Request, _fields: dict[str, str]) -> Response:
        return JSONResponse({"detail": "Missing or wrong API key"}, status_code=401)

    def full(_request: Request, _fields: dict[str, str]) -> Response:
        return JSONResponse({"detail": "queue full"}, status_code=429, headers={"Retry-After": "0"})

    def missing(_request: Request, _fields: dict[str, str]) -> Response:
        return JSONResponse({"detail": "no such job"}, status_code=404)

    routes = {"POST /prove/check": refuse, "POST /prove/submit": full, "GET *": missing}
    with ScriptedServer(routes) as server, LeanClient(server.url, retries=2) as client:
        with pytest.raises(AuthenticationError, match="API key"):
            client.verify("x")
        with pytest.raises(RateLimitedError):
            client.submit("x")
        with pytest.raises(JobNotFoundError, match="nope"):
            client.get_result("nope")
        # 429 is retried (nothing was queued); 401 and 404 are not.
        assert server.paths().count("POST /prove/submit") == 3
        assert server.paths().count("POST /prove/check") == 1


def test_a_proxy_error_page_or_a_non_json_answer_says_what_to_do() -> None:
    def bad_gateway(_request: Request, _fields: dict[str, str]) -> Response:
        return HTMLResponse("<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>", status_code=502)

    def not_a_runner(_request: Request, _fields: dict[str, str]) -> Response:
        return HTMLResponse("<html>Welcome to my homepage</html>")

    def other_json(_request: Request, _fields: dict[str, str]) -> Response:
        return JSONResponse({"message": "hello"})

    routes = {"POST /prove/check": bad_gateway, "POST /prove/submit": not_a_runner, "GET *": other_json}
    with ScriptedServer(routes) as server, LeanClient(server.url, retries=1) as client:
        with pytest.raises(RemoteError) as gateway:
            client.verify("theorem t : True := trivial")
        with pytest.raises(RemoteError) as homepage:
            client.submit("theorem t : True := trivial")
        with pytest.raises(RemoteError, match="not a proof result"):
            client.get_result("some-id")
    assert gateway.value.status_code == 502
    assert "502 Bad Gateway nginx" in str(gateway.value) and "<" not in str(gateway.value)
    assert "runner's log" in str(gateway.value)
    assert "not JSON" in str(homepage.value) and "URL" in str(homepage.value)


def test_busy_runner_is_retried_until_it_answers() -> None:
    answers = iter([(503, "0"), (429, "nan"), (503, "-inf"), (200, "")])

    def flaky(_request: Request, _fields: dict[str, str]) -> Response:
        code, after = next(answers)
        if code != 200:
            return JSONResponse({"detail": "busy"}, status_code=code, headers={"Retry-After": after})
        return JSONResponse(lean_runner_result("finished", {"env": 0, "messages": []}, success=True))

    with ScriptedServer({"POST /prove/check": flaky}) as server, LeanClient(server.url) as client:
        result = client.verify("theorem t : True := trivial")
    assert result.verdict == Verdict.PROVED
    assert server.paths() == ["POST /prove/check"] * 4


def test_client_sends_lean_runners_form_fields_and_bearer_token(lean_runner_like: ScriptedServer) -> None:
    with LeanClient(lean_runner_like.url, api_key="s3cret") as client:
        client.verify("theorem t : True := trivial", ProofConfig(timeout=12))
    _method, _path, fields, headers = lean_runner_like.requests[-1]
    assert fields["proof"] == "theorem t : True := trivial"
    assert json.loads(fields["config"]) == {"timeout": 12}
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["content-type"] == "application/x-www-form-urlencoded"


def test_verdict_is_derived_when_the_runner_gives_none(lean_runner_like: ScriptedServer) -> None:
    with LeanClient(lean_runner_like.url) as client:
        result = client.verify("theorem t : False := by sorry")
    assert result.verdict == Verdict.SORRY


def test_verify_all_yields_every_input_with_its_index(lean_runner_like: ScriptedServer, tmp_path: Path) -> None:
    proofs = ["theorem a : True := trivial", str(tmp_path / "missing.lean"), "theorem b : False := sorry"] * 5
    with LeanClient(lean_runner_like.url) as client:
        results = list(client.verify_all(proofs, max_workers=4, progress_bar=False))
    assert sorted(r.index for r in results) == list(range(15))
    by_index = {r.index: r for r in results}
    assert {by_index[i].verdict for i in range(0, 15, 3)} == {Verdict.PROVED}
    assert all("does not exist" in (by_index[i].error_message or "") for i in range(1, 15, 3))
    assert {by_index[i].verdict for i in range(2, 15, 3)} == {Verdict.SORRY}


def test_async_verify_all_takes_async_iterables(lean_runner_like: ScriptedServer) -> None:
    async def proofs() -> Any:
        for n in range(10):
            yield f"theorem t{n} : True := trivial"

    async def collect() -> list[int]:
        async with AsyncLeanClient(lean_runner_like.url) as client:
            return [r.index async for r in client.verify_all(proofs(), max_workers=3, progress_bar=False)]

    assert sorted(asyncio.run(collect())) == list(range(10))


def test_progress_bar_goes_to_stderr(lean_runner_like: ScriptedServer, capsys: pytest.CaptureFixture[str]) -> None:
    with LeanClient(lean_runner_like.url) as client:
        list(client.verify_all(["theorem t : True := trivial"] * 3, progress_bar=True))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "verify_all 3/3" in captured.err


def _proofs_then_a_broken_source() -> Iterator[str]:
    yield "theorem a : True := trivial"
    yield "theorem b : True := trivial"
    raise RuntimeError("the proof source broke")


def test_verify_all_yields_what_it_accepted_before_the_source_raised(lean_runner_like: ScriptedServer) -> None:
    with LeanClient(lean_runner_like.url) as client:
        seen = []
        with pytest.raises(RuntimeError, match="the proof source broke"):
            for result in client.verify_all(_proofs_then_a_broken_source(), progress_bar=False):
                seen.append((result.index, result.verdict))
    assert sorted(seen) == [(0, Verdict.PROVED), (1, Verdict.PROVED)]

    async def collect() -> list[tuple[int, Verdict | None]]:
        got = []
        async with AsyncLeanClient(lean_runner_like.url) as client:
            with pytest.raises(RuntimeError, match="the proof source broke"):
                async for result in client.verify_all(_proofs_then_a_broken_source(), progress_bar=False):
                    got.append((result.index, result.verdict))
        return got

    assert sorted(asyncio.run(collect())) == [(0, Verdict.PROVED), (1, Verdict.PROVED)]


def test_a_bad_config_is_a_clear_lean_mcp_error(lean_runner_like: ScriptedServer) -> None:
    with LeanClient(lean_runner_like.url) as client:
        with pytest.raises(InvalidProofError, match="finite"):
            client.verify("theorem t : True := trivial", {"timeout": float("inf")})
        with pytest.raises(InvalidProofError, match="timeout"):
            client.submit("theorem t : True := trivial", {"timeout": "soon"})
    assert lean_runner_like.requests == []


# --------------------------------------------------------------------------- remote backends


def test_lean_runner_backend_never_passes_a_sorry(lean_runner_like: ScriptedServer) -> None:
    async def check() -> Any:
        async with LeanRunnerBackend(lean_runner_like.url) as backend:
            assert backend.health()["reachable"] is False  # this server has no /health
            result = await backend.check("theorem t : False := by sorry", ProofConfig(timeout=10))
            assert backend.health()["reachable"] is True  # but it answered a check
            return result

    result = anyio.run(check)
    assert result.verdict == Verdict.SORRY
    assert result.success is False
    # submit, then polled until finished
    assert lean_runner_like.paths()[1] == "POST /prove/submit"
    assert lean_runner_like.paths()[-1] == "GET /prove/result/job-0"


def test_lean_runner_failure_kinds_map_to_verdicts() -> None:
    def submit(_request: Request, _fields: dict[str, str]) -> Response:
        return JSONResponse({"id": "j"})

    def result(_request: Request, _fields: dict[str, str]) -> Response:
        failure = {"status": "memory_limit_exceeded", "return_code": -9}
        message = "Process was killed due to memory limit (512 MB)"
        return JSONResponse(lean_runner_result("error", failure, error_message=message))

    async def check(url: str) -> Any:
        async with LeanRunnerBackend(url) as backend:
            return await backend.check("x", ProofConfig(timeout=10))

    with ScriptedServer({"POST /prove/submit": submit, "GET *": result}) as server:
        outcome = anyio.run(check, server.url)
    assert outcome.verdict == Verdict.MEMORY_LIMIT
    assert outcome.status == "error"
    assert outcome.result.return_code == -9
    assert "memory limit" in outcome.messages[0].data


def test_remote_backends_report_a_down_runner_as_error_with_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def check(backend_type: type[LeanRunnerBackend] | type[KiminaBackend]) -> Any:
        async with backend_type(url, retries=0) as backend:
            assert backend.health()["reachable"] is False
            result = await backend.check("theorem t : True := trivial", ProofConfig(timeout=5))
            health = backend.health()
            assert health["reachable"] is False
            assert url in health["error"]
            return result

    for backend_type in (LeanRunnerBackend, KiminaBackend):
        result = anyio.run(check, backend_type)
        assert result.verdict == Verdict.ERROR
        assert result.success is False
        assert url in (result.error_message or "")


def test_kimina_backend_maps_responses_and_errors() -> None:
    def api_check(request: Request, fields: dict[str, str]) -> Response:
        snippet = json.loads(fields["json"])["snippets"][0]
        code = snippet["code"]
        if "slow" in code:
            item = {"id": snippet["id"], "time": 5.0, "error": "Lean REPL command timed out in 5 seconds"}
        elif "sorry" in code:
            item = {"id": snippet["id"], "time": 0.1, "response": SORRY_RESPONSE}
        else:
            item = {"id": snippet["id"], "time": 0.1, "response": {"env": 0}}
        return JSONResponse({"results": [item]})

    async def check_all(url: str) -> list[Any]:
        async with KiminaBackend(url) as backend:
            return [
                await backend.check(code, ProofConfig(timeout=5))
                for code in ("theorem t : True := trivial", "theorem f : False := sorry", "slow")
            ]

    with ScriptedServer({"POST /api/check": api_check}) as server:
        proved, sorry, slow = anyio.run(check_all, server.url)
    assert (proved.verdict, proved.lean_time) == (Verdict.PROVED, 0.1)
    assert sorry.verdict == Verdict.SORRY
    assert slow.verdict == Verdict.TIMEOUT
    assert slow.status == "error"


def test_leaving_verify_all_early_stops_feeding(lean_runner_like: ScriptedServer) -> None:
    async def first_of_many() -> int:
        async with AsyncLeanClient(lean_runner_like.url) as client:
            results = client.verify_all((f"theorem t{n} : True := trivial" for n in range(1000)), max_workers=4)
            async for result in results:
                await results.aclose()
                return result.index
        raise AssertionError("no result")

    assert 0 <= asyncio.run(first_of_many()) < 4
    checks = lean_runner_like.paths().count("POST /prove/check")
    assert checks < 1000  # the rest of the generator was never sent

    with LeanClient(lean_runner_like.url) as client:
        for _result in client.verify_all((f"theorem s{n} : True := trivial" for n in range(1000)), max_workers=4):
            break
    assert lean_runner_like.paths().count("POST /prove/check") - checks < 1000
