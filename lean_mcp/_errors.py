"""One exception family. Each error says what happened (`message`) and what to do (`hint`).

A proof that Lean rejects, a timeout or a crashed REPL is *not* an exception: it is a
`ProofResult` with a verdict. Exceptions are for requests that could not be served at all.

    LeanMCPError                    .message, .hint; str(error) is "message hint", each once
    ├── ConfigurationError          no Lean found, a bad flag or LEAN_MCP_* value
    ├── InvalidProofError           empty, not text, unreadable file (HTTP 400/422)
    │   └── ProofTooLargeError      past --max-proof-bytes (HTTP 413)
    ├── JobNotFoundError            unknown or pruned job id (HTTP 404)
    ├── ProofStateError             unknown, expired or dead proof_state_id (HTTP 404)
    ├── TacticModeUnavailableError  run_tactic / try_tactics off the repl backend (HTTP 501)
    ├── BusyError                   every worker busy past --queue-timeout (HTTP 429)
    │   └── QueueFullError          the job queue is at --max-queue (HTTP 429)
    │       └── RateLimitedError    the same, as a client sees it: the runner answered 429
    ├── BackendUnavailableError     the backend cannot be started or reached (HTTP 503)
    └── RemoteError                 a runner answered with an error, or not at all; .status_code
        ├── AuthenticationError     401: missing or wrong API key
        ├── RunnerUnreachableError  no connection to the runner's URL
        └── RateLimitedError        (also a QueueFullError, above)

Over HTTP the runner sends `{"detail": "message hint", "message": ..., "hint": ...}`; the client
rebuilds the error from `message` and `hint`, so the hint is said once on both sides.
"""

from __future__ import annotations


class LeanMCPError(Exception):
    """Base of every lean-mcp error: `message` says what happened, `hint` what to do next.

    `hint` defaults to the class's own; pass `hint=""` when the message already says what to do
    (a message that already ends with its hint is not repeated either).
    """

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        if not self.hint or self.message.endswith(self.hint):
            return self.message
        return f"{self.message} {self.hint}"


class ConfigurationError(LeanMCPError):
    """lean-mcp is not configured well enough to check proofs (no Lean found, bad flag value)."""

    hint = "Run `lean-mcp doctor` to see what was found and how to fix it."


class InvalidProofError(LeanMCPError):
    """The submitted proof text (or path) cannot be checked as given."""

    hint = "Send the Lean source text of the proof."


class ProofTooLargeError(InvalidProofError):
    """The proof is larger than the configured limit (`--max-proof-bytes`)."""

    hint = "Split the proof, or raise --max-proof-bytes / LEAN_MCP_MAX_PROOF_BYTES."


class JobNotFoundError(LeanMCPError):
    """No job has this id (never submitted here, or pruned by retention)."""

    hint = "Use the id returned by submit; finished jobs are pruned after the retention period."


class ProofStateError(LeanMCPError):
    """A proof-state handle that names no live proof state (unknown, expired, or its REPL is gone)."""

    hint = "Verify the proof (with its sorries) again to get fresh proof_state_ids for its goals."


class TacticModeUnavailableError(LeanMCPError):
    """The backend has no proof states: tactic mode needs the `repl` backend."""

    hint = "Start lean-mcp with `--backend repl` and a REPL command (--repl / LEAN_MCP_REPL)."


class BusyError(LeanMCPError):
    """Every Lean worker stayed busy past the queue deadline."""

    hint = "Retry later, or raise --workers / --queue-timeout."


class QueueFullError(BusyError):
    """The job queue is at its configured maximum length."""

    hint = "Retry later, or raise --max-queue / LEAN_MCP_MAX_QUEUE."


class BackendUnavailableError(LeanMCPError):
    """The configured backend cannot be started or reached."""


class StoreUnavailableError(BackendUnavailableError):
    """The job store cannot be written (disk full, read-only, corrupt): no new work is accepted."""

    hint = "Check --db / LEAN_MCP_DB: it must name a writable file on a disk with free space."


class RemoteError(LeanMCPError):
    """A remote runner answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status_code: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code


class AuthenticationError(RemoteError):
    """The runner refused the request's credentials (HTTP 401)."""

    hint = "Set the API key the runner expects (LEAN_MCP_API_KEY / api_key=...)."


class RunnerUnreachableError(RemoteError):
    """No connection could be made to the runner's URL."""

    hint = "Check that the runner is up (`lean-mcp runner`) and that the URL is right."


class RateLimitedError(RemoteError, QueueFullError):
    """The runner answered 429: its queue is full (or its workers stayed busy). `except QueueFullError`
    catches it as it catches the in-process error."""

    hint = "Retry later; the runner is at its queue limit."
