"""`LeanClient` and `AsyncLeanClient`: Python clients for a lean-runner compatible HTTP runner.

They speak lean-runner's API (`/prove/check`, `/prove/submit`, `/prove/result/{id}`) with the
form fields its own client sends, so they work against `lean-mcp runner` and against lean-runner.

    with LeanClient("http://localhost:8000") as client:
        result = client.verify("theorem t : 2 + 2 = 4 := rfl")
        print(result.verdict, result.success)

Differences from lean-runner's client, all on purpose:

- A proof is text, a path (`pathlib.Path`, `os.PathLike`, `anyio.Path`) or a *short* string ending
  in `.lean` with no newline naming a file; any other string is Lean text (so a long proof never
  raises `OSError: File name too long`).
- `verify_all` yields every input's result as it completes, each an `IndexedProofResult` whose
  `index` is the input's position; an input that could not be checked yields an error result
  (verdict `error`) instead of vanishing.
- The HTTP read timeout of a check is `max(timeout, config.timeout) + headroom` seconds (room for
  the queue and the transfer), so the runner, which enforces the Lean timeout, answers first.
- Errors are lean-mcp exceptions: RunnerUnreachableError (no connection), AuthenticationError
  (401), JobNotFoundError (404 on a result), ProofTooLargeError (413), InvalidProofError (400/422),
  RateLimitedError (429 after retries), RemoteError (anything else).

Retries (`retries=`, exponential backoff honouring `Retry-After`): every request is retried when
no connection could be made. Reads (result, health) and checks are also retried on 429/502/503/504
and on a dropped connection (checking again changes nothing and gives the same answer), but not
after a read timeout. A submit is retried only on 429/503 (the job was not created), never after a
dropped connection, which could queue the job twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import math
import os
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any, Generic, Self, TextIO, TypeVar

import anyio
import anyio.to_thread
import httpx
from pydantic import ValidationError

from ._errors import (
    InvalidProofError,
    LeanMCPError,
    RemoteError,
    RunnerUnreachableError,
)
from ._lean.source import read_proof_file
from ._models import (
    Proof,
    ProofConfig,
    ProofResult,
    RunTacticRequest,
    TacticResult,
    TryTacticsRequest,
    TryTacticsResult,
    Verdict,
)
from ._settings import DEFAULT_TIMEOUT
from ._wire import lean_runner

#: What a proof may be given as: Lean text, or a path to a `.lean` file.
ProofInput = str | os.PathLike[str]
ConfigInput = ProofConfig | Mapping[str, Any] | None

DEFAULT_URL = "http://localhost:8000"
#: Connections a client keeps open at most. Each check in flight holds one, so this also caps
#: `verify_all`'s concurrency; more makes httpx's pool bookkeeping (quadratic in connections) the cost.
DEFAULT_MAX_CONNECTIONS = 64
#: Longest string that may be read as a file path (a longer one is always Lean text).
MAX_PATH_CHARS = 1024
#: Read timeout of the short requests (submit, result, health), in seconds.
SHORT_READ_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
#: Seconds a `wait` poll asks the runner to hold the answer (`?wait=`), and the polling pace
#: against runners that answer at once.
LONG_POLL_SECONDS = 30.0
POLL_INTERVAL_MIN = 0.05
POLL_INTERVAL_MAX = 1.0

_HttpT = TypeVar("_HttpT", httpx.Client, httpx.AsyncClient)

_GET_RETRY = frozenset({429, 502, 503, 504})
_CHECK_RETRY = frozenset({429, 502, 503, 504})
_SUBMIT_RETRY = frozenset({429, 503})


class IndexedProofResult(ProofResult):
    """A `verify_all` result: a ProofResult plus `index`, the position of its input."""

    index: int


def read_proof(proof: ProofInput) -> str:
    """The Lean text of `proof`: the file's content for a path, else the string itself.

    A string is read as a path only when it ends in `.lean`, has no newline and is at most
    MAX_PATH_CHARS long. Raises InvalidProofError for a missing or unreadable file.
    """
    if isinstance(proof, str) and not _names_a_file(proof):
        return _unicode(proof)
    if not isinstance(proof, str | os.PathLike):
        raise InvalidProofError(f"A proof must be Lean text or a path to a .lean file, not {type(proof).__name__}.")
    return read_proof_file(proof)


def _unicode(text: str) -> str:
    """`text`, refused when it cannot be sent as UTF-8 (it holds a lone surrogate such as `\\ud800`)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise InvalidProofError(
            f"The proof text contains {bad!r} at offset {exc.start}, a lone surrogate, which is not Unicode text.",
            hint="Decode the proof's bytes as UTF-8 (no errors='surrogateescape') and send that text.",
        ) from None
    return text


def _names_a_file(text: str) -> bool:
    return len(text) <= MAX_PATH_CHARS and text.endswith(".lean") and "\n" not in text


async def _read_proof_async(proof: ProofInput) -> str:
    if isinstance(proof, str) and not _names_a_file(proof):
        return _unicode(proof)
    return await anyio.to_thread.run_sync(read_proof, proof)


def _config_of(config: ConfigInput) -> ProofConfig:
    """`config` as a ProofConfig; InvalidProofError (nothing sent) when it is not a valid one."""
    hint = "Pass e.g. {'timeout': 60} (seconds), or a ProofConfig."
    try:
        parsed = config if isinstance(config, ProofConfig) else ProofConfig.model_validate(dict(config or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidProofError(f"Invalid proof config: {problems}.", hint=hint) from None
    return parsed


def _config_json(config: ConfigInput) -> str:
    """The `config` form field: only what the caller set, so the runner's defaults apply to the rest."""
    if config is None:
        return "{}"
    if isinstance(config, ProofConfig):
        return config.model_dump_json(exclude_unset=True)
    return json.dumps(dict(config))


def _proof_id(proof: Proof | str) -> str:
    """The job id, escaped for use as one URL path segment."""
    return urllib.parse.quote(proof.id if isinstance(proof, Proof) else str(proof), safe="")


def _failure_result(error: Exception, index: int) -> IndexedProofResult:
    message = str(error) or type(error).__name__
    return _indexed(ProofResult.failure(Verdict.ERROR, message, error_type=type(error).__name__), index)


def _indexed(result: ProofResult, index: int) -> IndexedProofResult:
    return IndexedProofResult(**dict(result), index=index)


# --------------------------------------------------------------------------- one HTTP exchange


@dataclasses.dataclass(frozen=True)
class HttpCall:
    """One request to the runner and its retry policy (what `request()` sends)."""

    method: str
    path: str
    data: dict[str, str] | None = None
    json: Any = None
    params: dict[str, str] | None = None
    read_timeout: float = SHORT_READ_TIMEOUT
    retry_statuses: frozenset[int] = frozenset()
    #: True when resending after a dropped connection cannot do harm (reads, checks).
    idempotent: bool = False

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_timeout, connect=CONNECT_TIMEOUT, pool=None)

    def may_retry_transport(self, error: httpx.TransportError) -> bool:
        if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
            return True  # nothing reached the runner
        return self.idempotent and not isinstance(error, httpx.ReadTimeout)


def _backoff(attempt: int, response: httpx.Response | None = None) -> float:
    """Seconds to wait before retry `attempt` (0-based): Retry-After when given, else 0.25·2ⁿ (≤ 8)."""
    if response is not None:
        try:
            after = float(response.headers.get("retry-after", ""))
        except ValueError:
            after = math.nan
        if math.isfinite(after):
            return min(max(after, 0.0), 30.0)
    return min(0.25 * 2.0**attempt, 8.0)


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:  # e.g. a proxy's HTML error page: its words, not its markup
        words = " ".join(re.sub(r"<[^>]*>", " ", response.text).split())
        return words[:500] or response.reason_phrase
    if isinstance(data, dict) and "detail" in data:
        detail = data["detail"]
        return detail if isinstance(detail, str) else json.dumps(detail)
    return json.dumps(data)[:500]


def _raise_for_status(response: httpx.Response, call: HttpCall, base_url: str) -> None:
    """Turn an HTTP error answer into the matching lean-mcp exception, its hint said once."""
    code = response.status_code
    if code < 400:
        return
    detail, hint = _detail_and_hint(response)
    raise lean_runner.error_of_status(code, call.path, detail, hint, f"The runner at {base_url}")


def _detail_and_hint(response: httpx.Response) -> tuple[str, str | None]:
    """What the runner said, and its hint when it sent one apart (a lean-mcp runner does).

    A runner that sends only `detail` (lean-runner, or a proxy) gets the error class's own hint.
    """
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str) and isinstance(data.get("hint"), str):
        return data["message"], data["hint"]
    return _detail(response), None


def _transport_error(error: httpx.TransportError, call: HttpCall, base_url: str) -> RemoteError:
    if isinstance(error, httpx.ReadTimeout):
        return RemoteError(
            f"The runner at {base_url} did not answer {call.path} within {call.read_timeout:g} s.",
            hint="Raise the client's timeout= or headroom=, or check the runner's load.",
        )
    return RunnerUnreachableError(f"Cannot reach the runner at {base_url} ({type(error).__name__}: {error}).")


def _json_of(response: httpx.Response, base_url: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise RemoteError(
            f"The runner at {base_url} answered with something that is not JSON.",
            hint="Check that the URL is a lean-mcp or lean-runner runner's base URL.",
        ) from None


def _result_of(data: Any) -> ProofResult:
    """A ProofResult from the runner's JSON; the verdict is derived when the runner gives none."""
    try:
        result = ProofResult.model_validate(data)
    except ValidationError:
        raise RemoteError(
            f"The runner's answer is not a proof result: {json.dumps(data)[:300]}",
            hint="Check that the URL is a lean-mcp or lean-runner runner's base URL.",
        ) from None
    if result.verdict is None and result.done:
        result = _with_verdict(result)
    return result


_T = TypeVar("_T", TacticResult, TryTacticsResult)


def _tactic_answer(model: type[_T], data: Any) -> _T:
    """A tactic answer from the runner's JSON."""
    try:
        return model.model_validate(data)
    except ValidationError:
        raise RemoteError(
            f"The runner's answer is not a tactic result: {json.dumps(data)[:300]}",
            hint="Check that the URL is a lean-mcp runner with the repl backend.",
        ) from None


def _with_verdict(result: ProofResult) -> ProofResult:
    if result.status == "finished" and result.result is not None:
        fresh = ProofResult.from_output(result.result, lean_time=result.lean_time)
        return result.model_copy(update={"verdict": fresh.verdict})
    kind = result.result.status if result.result else None
    verdict = {"timeout": Verdict.TIMEOUT, "memory_limit_exceeded": Verdict.MEMORY_LIMIT}.get(str(kind), Verdict.ERROR)
    return result.model_copy(update={"verdict": verdict})


class _Protocol:
    """What both clients share: the calls they make and how answers are read (no I/O here)."""

    def __init__(self, base_url: str, timeout: float, api_key: str | None, retries: int, headroom: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.headroom = headroom
        self.headers = {"Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def check_call(self, code: str, config: ConfigInput) -> HttpCall:
        lean_timeout = _config_of(config).timeout
        return HttpCall(
            "POST",
            lean_runner.CHECK_PATH,
            data=lean_runner.prove_fields(code, _config_json(config)),
            read_timeout=max(self.timeout, lean_timeout) + self.headroom,
            retry_statuses=_CHECK_RETRY,
            idempotent=True,
        )

    @staticmethod
    def submit_call(code: str, config: ConfigInput) -> HttpCall:
        _config_of(config)  # refuse a bad config before sending anything
        data = lean_runner.prove_fields(code, _config_json(config))
        return HttpCall("POST", lean_runner.SUBMIT_PATH, data=data, retry_statuses=_SUBMIT_RETRY)

    @staticmethod
    def result_call(proof: Proof | str, wait: float = 0.0) -> HttpCall:
        params = {"wait": f"{wait:g}"} if wait > 0 else None
        return HttpCall(
            "GET",
            lean_runner.RESULT_PATH.format(proof_id=_proof_id(proof)),
            params=params,
            read_timeout=SHORT_READ_TIMEOUT + wait,
            retry_statuses=_GET_RETRY,
            idempotent=True,
        )

    @staticmethod
    def cancel_call(proof: Proof | str) -> HttpCall:
        return HttpCall("POST", lean_runner.CANCEL_PATH.format(proof_id=_proof_id(proof)), idempotent=True)

    @staticmethod
    def health_call() -> HttpCall:
        return HttpCall("GET", lean_runner.HEALTH_PATH, retry_statuses=_GET_RETRY, idempotent=True)

    def tactic_call(self, proof_state_id: str, tactic: str, timeout: float | None) -> HttpCall:
        body = {"proof_state_id": proof_state_id, "tactic": tactic, "timeout": timeout}
        return self._tactics_call("/tactic/run", RunTacticRequest, body, 1)

    def tries_call(self, proof_state_id: str, tactics: list[str], timeout: float | None) -> HttpCall:
        body = {"proof_state_id": proof_state_id, "tactics": tactics, "timeout": timeout}
        return self._tactics_call("/tactic/try", TryTacticsRequest, body, len(tactics))

    def _tactics_call(
        self, path: str, model: type[RunTacticRequest | TryTacticsRequest], body: dict[str, Any], count: int
    ) -> HttpCall:
        """One tactic request (refused before sending when its fields are invalid)."""
        try:
            request = model.model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise InvalidProofError(f"Invalid tactic request: {problems}.", hint="") from None
        read_timeout = max(self.timeout, (request.timeout or 0.0) * count) + self.headroom
        data = request.model_dump(mode="json", exclude_none=True)
        return HttpCall("POST", path, json=data, read_timeout=read_timeout, retry_statuses=_SUBMIT_RETRY)

    proof_of = staticmethod(lean_runner.proof_of)

    @staticmethod
    def wait_step(result: ProofResult, deadline: float | None, pause: float) -> tuple[bool, float, float]:
        """After one poll: (stop now, seconds to ask the runner to hold, seconds to sleep first)."""
        remaining = None if deadline is None else deadline - time.monotonic()
        if result.done or (remaining is not None and remaining <= 0):
            return True, 0.0, 0.0
        hold = LONG_POLL_SECONDS if remaining is None else min(LONG_POLL_SECONDS, remaining)
        return False, hold, min(pause, hold)


class _Progress:
    """A one-line progress bar on stderr (no dependencies): `verify_all  12/100 [##    ] 3.4/s`."""

    WIDTH = 24

    def __init__(self, total: int | None, enabled: bool, stream: TextIO | None = None) -> None:
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.tty = self.enabled and self.stream.isatty()
        self.lock = threading.Lock()

    def advance(self, result: ProofResult) -> None:
        with self.lock:
            self.done += 1
            self.failed += result.verdict is not None and not result.verdict.lean_finished
            now = time.monotonic()
            if now - self.last_draw >= (0.1 if self.tty else 2.0):
                self.last_draw = now
                self._draw(final=False)

    def close(self) -> None:
        with self.lock:
            self._draw(final=True)

    def _draw(self, final: bool) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        if self.total:
            filled = min(self.WIDTH, self.WIDTH * self.done // self.total)
            count = f"{self.done}/{self.total} [{'#' * filled}{' ' * (self.WIDTH - filled)}]"
        else:
            count = f"{self.done}"
        failed = f" {self.failed} failed" if self.failed else ""
        line = f"verify_all {count} {self.done / elapsed:.1f}/s{failed}"
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


def _total_of(proofs: object, total: int | None) -> int | None:
    if total is not None:
        return total
    try:
        return len(proofs)  # type: ignore[arg-type]
    except TypeError:
        return None


# --------------------------------------------------------------------------- the sync client


class _Client(Generic[_HttpT]):
    """The constructor both clients share; each opens its own kind of httpx client."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        api_key: str | None = None,
        retries: int = 3,
        headroom: float = 120.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self._protocol = _Protocol(base_url, timeout, api_key, retries, headroom)
        self.base_url = self._protocol.base_url
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http: _HttpT = self._open_http(base_url=self.base_url, headers=self._protocol.headers, limits=limits)

    def _open_http(self, **options: Any) -> _HttpT:
        raise NotImplementedError


class LeanClient(_Client[httpx.Client]):
    """A synchronous client for a lean-runner compatible runner (thread-safe).

    `timeout` is the longest one proof check is expected to take (seconds); a check's HTTP read
    timeout is `max(timeout, config.timeout) + headroom`. `api_key` is sent as a bearer token.
    `max_connections` caps the connections, hence the checks in flight (`verify_all` included).
    """

    def _open_http(self, **options: Any) -> httpx.Client:
        return httpx.Client(**options)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(self, call: HttpCall) -> Any:
        """Send one call with retries; its JSON answer, or the matching lean-mcp exception."""
        for attempt in range(self._protocol.retries + 1):
            last = attempt == self._protocol.retries
            try:
                response = self._http.request(
                    call.method, call.path, data=call.data, json=call.json, params=call.params, timeout=call.timeout()
                )
            except httpx.TransportError as exc:
                if last or not call.may_retry_transport(exc):
                    raise _transport_error(exc, call, self.base_url) from exc
                time.sleep(_backoff(attempt))
                continue
            if response.status_code in call.retry_statuses and not last:
                time.sleep(_backoff(attempt, response))
                continue
            _raise_for_status(response, call, self.base_url)
            return _json_of(response, self.base_url)
        raise AssertionError("unreachable")

    def health(self) -> dict[str, Any]:
        """The runner's `/health` answer."""
        data: dict[str, Any] = self.request(self._protocol.health_call())
        return data

    def verify(self, proof: ProofInput, config: ConfigInput = None) -> ProofResult:
        """Check `proof` and wait for its final result."""
        return _result_of(self.request(self._protocol.check_call(read_proof(proof), config)))

    def submit(self, proof: ProofInput, config: ConfigInput = None) -> Proof:
        """Queue `proof` for checking; returns at once with the job's `Proof` handle (`.id`)."""
        return self._protocol.proof_of(self.request(self._protocol.submit_call(read_proof(proof), config)))

    def get_result(self, proof: Proof | str) -> ProofResult:
        """The job's current result (status pending, running, finished or error); no waiting."""
        return _result_of(self.request(self._protocol.result_call(proof)))

    def wait(self, proof: Proof | str, timeout: float | None = None) -> ProofResult:
        """Poll until the job is done or `timeout` seconds pass; the result as of then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause, hold = POLL_INTERVAL_MIN, 0.0
        while True:
            started = time.monotonic()
            result = _result_of(self.request(self._protocol.result_call(proof, hold)))
            stop, hold, sleep = self._protocol.wait_step(result, deadline, pause)
            if stop:
                return result
            if time.monotonic() - started < sleep:  # the runner did not hold the answer: pace the polls
                time.sleep(sleep)
                pause = min(pause * 2, POLL_INTERVAL_MAX)

    def cancel(self, proof: Proof | str) -> ProofResult:
        """Cancel a queued or running job (lean-mcp runners only)."""
        return _result_of(self.request(self._protocol.cancel_call(proof)))

    def run_tactic(self, proof_state_id: str, tactic: str, timeout: float | None = None) -> TacticResult:
        """Run `tactic` on a sorry's proof state (`Sorry.proof_state_id`; lean-mcp runners, repl backend)."""
        call = self._protocol.tactic_call(proof_state_id, tactic, timeout)
        return _tactic_answer(TacticResult, self.request(call))

    def try_tactics(self, proof_state_id: str, tactics: list[str], timeout: float | None = None) -> TryTacticsResult:
        """Run each of `tactics` from the same proof state; one result per tactic."""
        call = self._protocol.tries_call(proof_state_id, tactics, timeout)
        return _tactic_answer(TryTacticsResult, self.request(call))

    def verify_all(
        self,
        proofs: Iterable[ProofInput],
        config: ConfigInput = None,
        total: int | None = None,
        max_workers: int = 128,
        progress_bar: bool = True,
    ) -> Generator[IndexedProofResult, None, None]:
        """Check many proofs concurrently; yield each result as it completes, tagged with its `index`.

        At most `max_workers` checks are in flight; `proofs` is read lazily. An input that could
        not be checked (unreadable file, runner error) yields a result with verdict `error`.
        """
        progress = _Progress(_total_of(proofs, total), progress_bar)
        source = enumerate(proofs)
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_workers))
        pending: set[concurrent.futures.Future[IndexedProofResult]] = set()
        broken: Exception | None = None  # what `proofs` raised: re-raised once the accepted inputs are yielded
        try:
            while True:
                try:
                    for index, proof in source if broken is None else ():
                        pending.add(executor.submit(self._verify_indexed, index, proof, config))
                        if len(pending) >= max_workers:
                            break
                except Exception as exc:
                    broken = exc
                if not pending:
                    break
                done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    progress.advance(result)
                    yield result
            if broken is not None:
                raise broken
        finally:
            for future in pending:
                future.cancel()
            executor.shutdown(wait=False, cancel_futures=True)
            progress.close()

    def _verify_indexed(self, index: int, proof: ProofInput, config: ConfigInput) -> IndexedProofResult:
        try:
            return _indexed(self.verify(proof, config), index)
        except (LeanMCPError, ValueError) as exc:
            return _failure_result(exc, index)


# --------------------------------------------------------------------------- the async client


class AsyncLeanClient(_Client[httpx.AsyncClient]):
    """The asynchronous client: `LeanClient`'s methods as coroutines (`verify_all` is an async iterator)."""

    def _open_http(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**options)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    close = aclose

    async def request(self, call: HttpCall) -> Any:
        """Send one call with retries; its JSON answer, or the matching lean-mcp exception."""
        for attempt in range(self._protocol.retries + 1):
            last = attempt == self._protocol.retries
            try:
                response = await self._http.request(
                    call.method, call.path, data=call.data, json=call.json, params=call.params, timeout=call.timeout()
                )
            except httpx.TransportError as exc:
                if last or not call.may_retry_transport(exc):
                    raise _transport_error(exc, call, self.base_url) from exc
                await anyio.sleep(_backoff(attempt))
                continue
            if response.status_code in call.retry_statuses and not last:
                await anyio.sleep(_backoff(attempt, response))
                continue
            _raise_for_status(response, call, self.base_url)
            return _json_of(response, self.base_url)
        raise AssertionError("unreachable")

    async def health(self) -> dict[str, Any]:
        """The runner's `/health` answer."""
        data: dict[str, Any] = await self.request(self._protocol.health_call())
        return data

    async def verify(self, proof: ProofInput, config: ConfigInput = None) -> ProofResult:
        """Check `proof` and wait for its final result."""
        code = await _read_proof_async(proof)
        return _result_of(await self.request(self._protocol.check_call(code, config)))

    async def submit(self, proof: ProofInput, config: ConfigInput = None) -> Proof:
        """Queue `proof` for checking; returns at once with the job's `Proof` handle (`.id`)."""
        code = await _read_proof_async(proof)
        return self._protocol.proof_of(await self.request(self._protocol.submit_call(code, config)))

    async def get_result(self, proof: Proof | str) -> ProofResult:
        """The job's current result (status pending, running, finished or error); no waiting."""
        return _result_of(await self.request(self._protocol.result_call(proof)))

    async def wait(self, proof: Proof | str, timeout: float | None = None) -> ProofResult:  # noqa: ASYNC109
        """Poll until the job is done or `timeout` seconds pass; the result as of then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause, hold = POLL_INTERVAL_MIN, 0.0
        while True:
            started = time.monotonic()
            result = _result_of(await self.request(self._protocol.result_call(proof, hold)))
            stop, hold, sleep = self._protocol.wait_step(result, deadline, pause)
            if stop:
                return result
            if time.monotonic() - started < sleep:
                await anyio.sleep(sleep)
                pause = min(pause * 2, POLL_INTERVAL_MAX)

    async def cancel(self, proof: Proof | str) -> ProofResult:
        """Cancel a queued or running job (lean-mcp runners only)."""
        return _result_of(await self.request(self._protocol.cancel_call(proof)))

    async def run_tactic(
        self,
        proof_state_id: str,
        tactic: str,
        timeout: float | None = None,  # noqa: ASYNC109 - Lean's limit for the tactic
    ) -> TacticResult:
        """Run `tactic` on a sorry's proof state (`Sorry.proof_state_id`; lean-mcp runners, repl backend)."""
        call = self._protocol.tactic_call(proof_state_id, tactic, timeout)
        return _tactic_answer(TacticResult, await self.request(call))

    async def try_tactics(
        self,
        proof_state_id: str,
        tactics: list[str],
        timeout: float | None = None,  # noqa: ASYNC109 - Lean's limit for each tactic
    ) -> TryTacticsResult:
        """Run each of `tactics` from the same proof state; one result per tactic."""
        call = self._protocol.tries_call(proof_state_id, tactics, timeout)
        return _tactic_answer(TryTacticsResult, await self.request(call))

    async def verify_all(
        self,
        proofs: Iterable[ProofInput] | AsyncIterable[ProofInput],
        config: ConfigInput = None,
        total: int | None = None,
        max_workers: int = 128,
        progress_bar: bool = True,
    ) -> AsyncGenerator[IndexedProofResult, None]:
        """Check many proofs concurrently; yield each result as it completes, tagged with its `index`.

        `proofs` may be a sync or an async iterable, read lazily; at most `max_workers` checks are
        in flight. An input that could not be checked yields a result with verdict `error`.
        Leaving the loop early cancels the checks still in flight. Runs on asyncio (its checks
        are asyncio tasks, so an abandoned iterator can be closed from any task).
        """
        progress = _Progress(_total_of(proofs, total), progress_bar)
        source = _aiter_of(proofs)
        pending: set[asyncio.Task[IndexedProofResult]] = set()
        index, exhausted = 0, False
        broken: Exception | None = None  # what `proofs` raised: re-raised once the accepted inputs are yielded
        try:
            while True:
                while not exhausted and len(pending) < max(1, max_workers):
                    try:
                        proof = await anext(source)
                    except StopAsyncIteration:
                        exhausted = True
                    except Exception as exc:
                        exhausted, broken = True, exc
                    else:
                        pending.add(asyncio.ensure_future(self._verify_indexed(index, proof, config)))
                        index += 1
                if not pending:
                    break
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    result = task.result()
                    progress.advance(result)
                    yield result
            if broken is not None:
                raise broken
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
            progress.close()

    async def _verify_indexed(self, index: int, proof: ProofInput, config: ConfigInput) -> IndexedProofResult:
        try:
            return _indexed(await self.verify(proof, config), index)
        except (LeanMCPError, ValueError) as exc:
            return _failure_result(exc, index)


async def _aiter_of(proofs: Iterable[ProofInput] | AsyncIterable[ProofInput]) -> AsyncIterator[ProofInput]:
    if isinstance(proofs, AsyncIterable):
        async for proof in proofs:
            yield proof
    else:
        for proof in proofs:
            yield proof
