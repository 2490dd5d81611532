"""Kimina Lean Server's wire: `/api/check` (snippets) and its older `/verify` (codes).

The runner's Kimina routes answer with these shapes and `KiminaBackend` sends and reads them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .._errors import LeanMCPError, RemoteError
from .._models import LeanOutput, ProofResult, Verdict
from .lean_runner import not_a_lean_answer

CHECK_PATH = "/api/check"
VERIFY_PATH = "/verify"
#: Kimina's default per-snippet timeout for /api/check, and for its older /verify.
CHECK_TIMEOUT = 30.0
VERIFY_TIMEOUT = 300.0


class Snippet(BaseModel):
    """One proof of an `/api/check` batch."""

    id: str
    code: str


class CheckRequest(BaseModel):
    """The body of `POST /api/check`."""

    model_config = ConfigDict(extra="ignore")

    snippets: list[Snippet] = Field(min_length=1)
    timeout: float = Field(default=CHECK_TIMEOUT, gt=0, allow_inf_nan=False)
    debug: bool = False
    reuse: bool = True
    infotree: str | None = None


class VerifyCode(BaseModel):
    """One proof of a `/verify` batch (`proof` or `code`)."""

    model_config = ConfigDict(extra="ignore")

    custom_id: str | int
    proof: str | None = None
    code: str | None = None


class VerifyRequest(BaseModel):
    """The body of `POST /verify`."""

    model_config = ConfigDict(extra="ignore")

    codes: list[VerifyCode] = Field(min_length=1)
    timeout: float = Field(default=VERIFY_TIMEOUT, gt=0, allow_inf_nan=False)
    infotree_type: str | None = None
    disable_cache: bool = False


def check_request(snippet_id: str, code: str, timeout: float) -> dict[str, Any]:
    """An `/api/check` body for one snippet (Kimina's timeout is a whole number of seconds)."""
    return {
        "snippets": [{"id": snippet_id, "code": code}],
        "timeout": max(1, math.ceil(timeout)),
        "debug": False,
        "reuse": True,
    }


@dataclasses.dataclass(slots=True)
class CheckResult:
    """One result of an `/api/check` answer: exactly one of `response` (Lean answered) and `error` (it could not)."""

    id: str
    time: float
    response: LeanOutput | None
    error: str | None
    diagnostics: dict[str, Any] | None
    verdict: Verdict | None
    proof_id: str | None


#: `{"results": [...]}` of `/api/check`, serialised in one pass (each `response` by its model, to its own keys).
_CHECK_ANSWER = TypeAdapter(dict[str, list[CheckResult]])


def check_answer(results: list[CheckResult]) -> bytes:
    """The JSON body of an `/api/check` answer."""
    return _CHECK_ANSWER.dump_json({"results": results}, by_alias=True)


def result_item(snippet_id: str, result: ProofResult, debug: bool) -> CheckResult:
    """One `/api/check` result: Lean's output as `response`, or the reason it has none as `error`."""
    if result.status == "finished" and result.result is not None:
        response, error = result.result, None
    else:
        response, error = None, result.error_message or f"The proof could not be checked (status {result.status})."
    return CheckResult(
        id=snippet_id,
        time=result.lean_time or 0.0,
        response=response,
        error=error,
        diagnostics={"proof_id": result.proof_id, "cached": result.cached} if debug else None,
        verdict=result.verdict,
        proof_id=result.proof_id,
    )


def invalid_item(snippet_id: str, error: LeanMCPError) -> CheckResult:
    """The `/api/check` result of a snippet refused before checking."""
    return CheckResult(
        id=snippet_id, time=0.0, response=None, error=error.message, diagnostics=None, verdict=None, proof_id=None
    )


def verify_item(item: CheckResult) -> dict[str, Any]:
    """The `/verify` form of an `/api/check` result (`custom_id`; the time inside `response`)."""
    response = None
    if item.response is not None:
        response = {**item.response.model_dump(mode="json", by_alias=True), "time": item.time}
    return {"custom_id": item.id, "error": item.error, "response": response}


def first_result(data: Any) -> dict[str, Any]:
    """The first result of an `/api/check` answer; RemoteError when it has none."""
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise RemoteError(f"The Kimina answer has no results: {str(data)[:200]}")
    first: dict[str, Any] = results[0]
    return first


def result_of(item: dict[str, Any], url: str) -> ProofResult:
    """Our ProofResult for one Kimina result (`response` → Lean's verdict, `error` → a failure)."""
    lean_time = item.get("time")
    lean_time = float(lean_time) if isinstance(lean_time, int | float) else None
    response = item.get("response")
    error = item.get("error")
    if isinstance(response, dict) and not error:
        output = LeanOutput.model_validate({k: v for k, v in response.items() if k != "time"})
        error = not_a_lean_answer(output, url)
        if error is None:
            return ProofResult.from_output(output, lean_time=lean_time)
    text = str(error or f"The Kimina server at {url} gave neither a response nor an error.")
    verdict = Verdict.TIMEOUT if "timed out" in text.lower() or "timeout" in text.lower() else Verdict.ERROR
    return ProofResult.failure(verdict, text, lean_time=lean_time)
