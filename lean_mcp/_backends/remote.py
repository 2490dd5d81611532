"""Remote backends: proofs checked by another runner over HTTP.

- `LeanRunnerBackend` (`--backend remote`) drives a lean-runner compatible runner (`lean-mcp
  runner`, or lean-runner itself): it submits the proof (`/prove/submit`) and polls
  `/prove/result/{id}` (a lean-mcp runner holds each poll until the job finishes, so this costs
  no latency). Submit + poll survives slow links and proxies that cut long requests, and lets a
  cancelled check cancel the remote job (`/prove/cancel/{id}`, lean-mcp runners only).
- `KiminaBackend` (`--backend kimina`) sends each proof to a Kimina server's `/api/check`.

Both derive the verdict themselves from the Lean output (so a `sorry` never passes as proved,
whatever the remote's `success` says), and both turn a runner that is down, refuses the key or
answers garbage into a result with verdict `error` whose message names the URL.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import anyio

from .._client import AsyncLeanClient, HttpCall
from .._errors import ConfigurationError, InvalidProofError, LeanMCPError
from .._models import FailureKind, LeanOutput, ProofConfig, ProofResult, Verdict
from .._settings import DEFAULT_TIMEOUT, Settings
from .._wire import kimina
from .._wire.lean_runner import not_a_lean_answer
from .base import Backend

logger = logging.getLogger(__name__)

#: How many checks are sent to the remote at once (the remote queues beyond its own workers).
REMOTE_CONCURRENCY = 64
#: Seconds beyond the Lean timeout a remote check may take (its queue, transfer) before we give up.
REMOTE_HEADROOM = 120.0

_VERDICT_OF_KIND = {
    FailureKind.TIMEOUT: Verdict.TIMEOUT,
    FailureKind.MEMORY_LIMIT_EXCEEDED: Verdict.MEMORY_LIMIT,
}


class RemoteBackend(Backend):
    """What both remote backends share: the HTTP client, health probe, identity and error mapping."""

    def __init__(
        self, url: str, *, api_key: str | None = None, retries: int = 3, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.url = url.rstrip("/")
        self._client = AsyncLeanClient(self.url, timeout, api_key=api_key, retries=retries, headroom=REMOTE_HEADROOM)
        self._remote_health: dict[str, Any] | None = None
        self._health_error: str | None = None
        self._answered = False  # the remote has answered a check since the last failure
        # The remote's Lean and libraries can change without our knowing: its cached answers
        # are only trusted within this backend's lifetime.
        self._session = uuid.uuid4().hex[:12]

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteBackend:
        """The backend for `settings.remote_url` with `settings.remote_api_key`."""
        if not settings.remote_url:
            raise ConfigurationError(f"--backend {cls.name} needs --remote-url (LEAN_MCP_REMOTE_URL).")
        return cls(settings.remote_url, api_key=settings.remote_api_key, timeout=settings.timeout)

    async def start(self) -> None:
        """Ask the remote for its /health once (a runner that is down is reported, not fatal)."""
        await self.refresh_health()

    async def refresh_health(self) -> None:
        try:
            self._remote_health = await self._client.health()
            self._health_error = None
        except LeanMCPError as exc:
            self._health_error = str(exc)
            logger.warning("The %s runner at %s is not answering /health: %s", self.name, self.url, exc)

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def identity(self) -> str:
        version = (self._remote_health or {}).get("version")
        return f"{self.name}:{self.url}" + (f"@{version}" if version else "") + f"|session={self._session}"

    @property
    def capacity(self) -> int:
        return REMOTE_CONCURRENCY

    def health(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "url": self.url,
            "reachable": self._health_error is None and (self._remote_health is not None or self._answered),
            "remote": self._remote_health,
            "error": self._health_error,
        }

    def _answered_now(self, result: ProofResult) -> ProofResult:
        """Note that the remote answered (health shows it reachable again)."""
        self._answered, self._health_error = True, None
        return result

    def _unavailable(self, error: LeanMCPError) -> ProofResult:
        """A result saying the remote could not check the proof (never a pass); health shows why."""
        text = str(error)
        self._answered, self._health_error = False, text
        message = text if self.url in text else f"The {self.name} runner at {self.url} failed: {text}"
        return ProofResult.failure(Verdict.ERROR, message, error_type=type(error).__name__)


class LeanRunnerBackend(RemoteBackend):
    """Checks proofs on a lean-runner compatible runner: submit, then poll for the result."""

    name = "remote"

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        proof_id: str | None = None
        try:
            proof_id = (await self._client.submit(code, config)).id
            result = await self._client.wait(proof_id, timeout=config.timeout + REMOTE_HEADROOM)
        except InvalidProofError:
            raise
        except LeanMCPError as exc:
            return self._unavailable(exc)
        except anyio.get_cancelled_exc_class():
            if proof_id is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await self._cancel_quietly(proof_id)
            raise
        if not result.done:
            await self._cancel_quietly(proof_id)
            waited = config.timeout + REMOTE_HEADROOM
            message = f"The runner at {self.url} did not finish job {proof_id} within {waited:g} s."
            return ProofResult.failure(Verdict.TIMEOUT, message)
        return self._answered_now(strict_result(result))

    async def _cancel_quietly(self, proof_id: str) -> None:
        try:
            await self._client.cancel(proof_id)
        except LeanMCPError as exc:  # lean-runner has no cancel endpoint
            logger.debug("Could not cancel remote job %s: %s", proof_id, exc)


def strict_result(result: ProofResult) -> ProofResult:
    """A remote's final result with our verdict rules re-applied (sorry is never a pass).

    The remote's job id and cache flag are dropped: the local job service sets its own.
    """
    if result.status == "finished" and result.result is not None and result.result.status is None:
        problem = not_a_lean_answer(result.result, "the remote runner")
        if problem is None:
            return ProofResult.from_output(result.result, lean_time=result.lean_time)
        return ProofResult.failure(Verdict.ERROR, problem, lean_time=result.lean_time, error_type="remote_error")
    output = result.result or LeanOutput()
    verdict = result.verdict
    if verdict is None or verdict.lean_finished:
        verdict = _VERDICT_OF_KIND.get(output.status, Verdict.ERROR) if output.status else Verdict.ERROR
    return ProofResult.failure(
        verdict,
        result.error_message or "The remote runner reported a failure without a message.",
        lean_time=result.lean_time,
        return_code=output.return_code,
        error_type=output.error_type,
        kind=output.status,
    )


class KiminaBackend(RemoteBackend):
    """Checks proofs on a Kimina Lean Server through `POST /api/check`, one snippet per proof."""

    name = "kimina"

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        snippet_id = uuid.uuid4().hex
        call = HttpCall(
            "POST",
            kimina.CHECK_PATH,
            json=kimina.check_request(snippet_id, code, config.timeout),
            read_timeout=config.timeout + REMOTE_HEADROOM,
            retry_statuses=frozenset({429, 503}),
            idempotent=True,
        )
        try:
            data = await self._client.request(call)
            return self._answered_now(kimina.result_of(kimina.first_result(data), self.url))
        except LeanMCPError as exc:
            return self._unavailable(exc)
