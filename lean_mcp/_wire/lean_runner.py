"""lean-runner's wire: routes, request fields, the submit answer and the error ↔ status mapping.

The runner (`http_runner`) answers with these shapes and `LeanClient` / the remote backend read
them, so both sides agree by construction.
"""

from __future__ import annotations

from typing import Any

from .._errors import (
    AuthenticationError,
    BackendUnavailableError,
    BusyError,
    ConfigurationError,
    InvalidProofError,
    JobNotFoundError,
    LeanMCPError,
    ProofStateError,
    ProofTooLargeError,
    RateLimitedError,
    RemoteError,
    TacticModeUnavailableError,
)
from .._models import LeanOutput, Proof

HEALTH_PATH = "/health"
CHECK_PATH = "/prove/check"
SUBMIT_PATH = "/prove/submit"
#: Path templates with `{proof_id}` (Starlette's syntax; `.format(proof_id=...)` for a client).
RESULT_PATH = "/prove/result/{proof_id}"
CANCEL_PATH = "/prove/cancel/{proof_id}"

_STATUS_OF_ERROR: tuple[tuple[type[LeanMCPError], int], ...] = (
    (AuthenticationError, 401),
    (JobNotFoundError, 404),
    (ProofStateError, 404),
    (TacticModeUnavailableError, 501),
    (ProofTooLargeError, 413),
    (InvalidProofError, 400),
    (BusyError, 429),
    (ConfigurationError, 503),
    (BackendUnavailableError, 503),
    (RemoteError, 502),
)


def prove_fields(code: str, config_json: str) -> dict[str, str]:
    """The form fields of `/prove/check` and `/prove/submit`, as lean-runner's client sends them."""
    return {"proof": code, "config": config_json}


def submit_answer(proof: Proof) -> dict[str, str]:
    """The runner's answer to `/prove/submit` (`id` for lean-runner's client, `proof_id` as well)."""
    return {"id": proof.id, "proof_id": proof.id, "status": str(proof.status)}


def proof_of(data: Any) -> Proof:
    """The job handle in a runner's submit answer; RemoteError when it has none."""
    if not isinstance(data, dict) or not (data.get("id") or data.get("proof_id")):
        raise RemoteError(f"The runner's submit answer has no job id: {data!r}")
    return Proof(id=str(data.get("id") or data["proof_id"]), status=data.get("status") or "pending")


def status_code_of(error: LeanMCPError) -> int:
    """The HTTP status a lean-mcp error is answered with (500 when nothing more precise fits)."""
    for kind, code in _STATUS_OF_ERROR:
        if isinstance(error, kind):
            return code
    return 500


def error_body(error: LeanMCPError) -> dict[str, Any]:
    """An error answer: `detail` as every lean-runner client reads it; `message` and `hint` apart."""
    return {"detail": str(error), "message": error.message, "hint": error.hint}


def error_of_status(code: int, path: str, detail: str, hint: str | None, where: str) -> LeanMCPError:
    """The lean-mcp error for a runner's error answer `code` to `path` (`where` names the runner)."""
    if code == 401:
        return AuthenticationError(f"{where} refused the request: {detail}", status_code=code, hint=hint)
    if code == 404 and path.startswith(RESULT_PATH.split("{", maxsplit=1)[0]):
        job = path.rsplit("/", 1)[-1]
        return JobNotFoundError(f"{where} has no job {job!r}: {detail}", hint=hint)
    if code == 404 and path.startswith("/tactic/"):
        return ProofStateError(detail, hint=hint)
    if code == 501 and path.startswith("/tactic/"):
        return TacticModeUnavailableError(f"{where} has no tactic mode: {detail}", hint=hint)
    if code == 413:
        return ProofTooLargeError(detail, hint=hint)
    if code in (400, 422):
        return InvalidProofError(detail, hint=hint)
    if code == 429:
        return RateLimitedError(f"{where} is at its queue limit: {detail}", status_code=code, hint=hint)
    hint = "Check the runner's log (or the proxy in front of it), then retry." if hint is None else hint
    return RemoteError(f"{where} answered {code} to {path}: {detail}", status_code=code, hint=hint)


def not_a_lean_answer(output: LeanOutput, where: str) -> str | None:
    """Why a remote's output is not Lean's answer to the proof, or None when it is.

    Lean's answer is a REPL command response (`env`, `messages`, `sorries`). A REPL-level error
    (`{"message": "Unknown environment."}`) or an empty object says nothing about the proof:
    read as a command response it would pass as proved.
    """
    extra = output.model_extra or {}
    if "message" in extra and "messages" not in output.model_fields_set:
        return f"The Lean REPL behind {where} answered with an error: {extra['message']}"
    if output.status is not None:
        return f"The answer of {where} is a failure record ({output.status.value}), not a Lean result."
    if not output.model_fields_set & {"env", "messages", "sorries"}:
        return f"The answer of {where} is not a Lean result: {output.model_dump_json()[:200]}"
    return None
