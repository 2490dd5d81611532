"""The runner's Kimina answers: each result as Kimina's shape says, serialised in one pass."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.responses import JSONResponse

from lean_mcp._errors import InvalidProofError
from lean_mcp._models import JobStatus, LeanOutput, ProofResult, Verdict
from lean_mcp._wire import kimina

CHECKED = LeanOutput.model_validate(
    {
        "env": 3,
        "messages": [
            {
                "severity": "warning",
                "pos": {"line": 1, "column": 8},
                "endPos": None,
                "data": "declaration uses 'sorry'",
            },
            {"severity": "info", "pos": {"line": 2, "column": 0}, "endPos": {"line": 2, "column": 4}, "data": "ünï ∀"},
        ],
        "sorries": [
            {"pos": {"line": 1, "column": 20}, "endPos": {"line": 1, "column": 25}, "goal": "⊢ True", "proofState": 4}
        ],
        "newerReplKey": {"kept": [1, 2]},
    }
)
RESULTS = {
    "sorry": ProofResult.from_output(CHECKED, lean_time=0.25, proof_id="job-1", checks=["lean", "sorry"], axioms={}),
    "proved": ProofResult.from_output(LeanOutput(env=0), lean_time=None, proof_id="job-2").as_answer(
        "job-2", cached=True
    ),
    "timeout": ProofResult.failure(
        Verdict.TIMEOUT, "Lean timed out after 1 s while checking the proof.", lean_time=1.0
    ),
    "running": ProofResult.pending("job-3", JobStatus.RUNNING),
}


def _from_the_model(snippet_id: str, result: ProofResult, debug: bool) -> dict[str, Any]:
    """The item as the runner built it before: the output dumped to a dict (then JSONResponse)."""
    finished = result.status == "finished" and result.result is not None
    return {
        "id": snippet_id,
        "time": result.lean_time or 0.0,
        "response": result.result.model_dump(mode="json", by_alias=True) if finished and result.result else None,
        "error": None
        if finished
        else result.error_message or f"The proof could not be checked (status {result.status}).",
        "diagnostics": {"proof_id": result.proof_id, "cached": result.cached} if debug else None,
        "verdict": result.verdict,
        "proof_id": result.proof_id,
    }


@pytest.mark.parametrize("name", sorted(RESULTS))
@pytest.mark.parametrize("debug", [False, True])
def test_the_answer_serialised_in_one_pass_is_the_results_items(name: str, debug: bool) -> None:
    """`check_answer` writes each result as the runner wrote it when it dumped the output to a dict and
    the answer with JSONResponse: the same JSON, byte for byte."""
    result = RESULTS[name]
    body = kimina.check_answer([kimina.result_item(f"s-{name}", result, debug)])
    expected = JSONResponse({"results": [_from_the_model(f"s-{name}", result, debug)]}).body
    assert body == expected
    item = json.loads(body)["results"][0]
    assert (item["response"] is None) != (item["error"] is None)


def test_a_refused_snippet_and_the_older_verify_shape() -> None:
    refused = kimina.invalid_item("bad", InvalidProofError("The proof is empty."))
    assert json.loads(kimina.check_answer([refused])) == {
        "results": [
            {
                "id": "bad",
                "time": 0.0,
                "response": None,
                "error": "The proof is empty.",
                "diagnostics": None,
                "verdict": None,
                "proof_id": None,
            }
        ]
    }
    checked = kimina.verify_item(kimina.result_item("7", RESULTS["sorry"], debug=False))
    assert checked == {
        "custom_id": "7",
        "error": None,
        "response": {**CHECKED.model_dump(mode="json", by_alias=True), "time": 0.25},
    }


@pytest.mark.parametrize("name", ["sorry", "proved", "timeout"])
def test_kiminas_client_reads_the_answer_back_as_the_same_verdict(name: str) -> None:
    result = RESULTS[name]
    item = kimina.first_result(json.loads(kimina.check_answer([kimina.result_item("s", result, debug=False)])))
    read = kimina.result_of(item, "http://runner")
    assert read.verdict == result.verdict
    assert read.messages == result.messages
