"""The result model's promises: strict success, lean-runner's shape, failures that never look clean."""

from __future__ import annotations

import json

import pytest

from lean_mcp import InvalidProofError, JobStatus, ProofConfig, ProofResult, ProofTooLargeError, Verdict
from lean_mcp._lean.source import validate_proof_text
from lean_mcp._models import LeanOutput, Message, verdict_of

SORRY_WARNING = {
    "severity": "warning",
    "pos": {"line": 1, "column": 8},
    "endPos": {"line": 1, "column": 12},
    "data": "declaration uses `sorry`",
}


def output(**fields: object) -> LeanOutput:
    return LeanOutput.model_validate({"env": 0, **fields})


def test_clean_output_is_proved_and_the_only_success() -> None:
    result = ProofResult.from_output(output(), lean_time=0.5)
    assert (result.verdict, result.success, result.status) == (Verdict.PROVED, True, JobStatus.FINISHED)


@pytest.mark.parametrize(
    ("fields", "verdict"),
    [
        ({"sorries": [{"proofState": 0, "goal": "⊢ True"}]}, Verdict.SORRY),
        ({"messages": [SORRY_WARNING]}, Verdict.SORRY),
        ({"messages": [{**SORRY_WARNING, "data": "declaration uses 'sorry'"}]}, Verdict.SORRY),
        ({"messages": [{**SORRY_WARNING, "severity": "error", "data": "unknown identifier 'x'"}]}, Verdict.REJECTED),
        ({"messages": [{**SORRY_WARNING, "severity": "info", "data": "37"}]}, Verdict.PROVED),
        ({"messages": [{**SORRY_WARNING, "data": "unused variable `h`"}]}, Verdict.PROVED),
    ],
)
def test_verdict_follows_messages_and_sorries(fields: dict[str, object], verdict: Verdict) -> None:
    result = ProofResult.from_output(output(**fields))
    assert verdict_of(output(**fields)) == verdict
    assert result.success is (verdict == Verdict.PROVED)


@pytest.mark.parametrize("verdict", [Verdict.TIMEOUT, Verdict.MEMORY_LIMIT, Verdict.ERROR])
def test_failures_are_errors_with_a_message(verdict: Verdict) -> None:
    result = ProofResult.failure(verdict, "Lean did not finish within 2.0 s.", return_code=-9)
    assert result.success is False
    assert result.status == JobStatus.ERROR
    assert result.messages and result.messages[0].severity == "error"
    assert result.error_message == "Lean did not finish within 2.0 s."
    assert verdict_of(result.result) == Verdict.REJECTED  # a reader of messages alone never sees a clean run


def test_a_lean_answer_is_not_a_failure() -> None:
    with pytest.raises(ValueError, match="not a failure"):
        ProofResult.failure(Verdict.PROVED, "nope")


def test_serialises_as_lean_runner_plus_additive_fields() -> None:
    result = ProofResult.failure(
        Verdict.MEMORY_LIMIT, "Process was killed due to memory limit (512 MB)", return_code=-9
    )
    data = json.loads(result.model_dump_json())
    assert {"success", "status", "result", "error_message"} <= data.keys()
    assert data["result"]["status"] == "memory_limit_exceeded"
    assert data["result"]["return_code"] == -9
    assert data["verdict"] == "memory_limit"
    assert ProofResult.model_validate(data) == result


def test_repl_response_round_trips_with_its_own_key_names() -> None:
    raw = {
        "env": 3,
        "messages": [SORRY_WARNING],
        "sorries": [
            {"proofState": 0, "pos": {"line": 1, "column": 30}, "endPos": {"line": 1, "column": 35}, "goal": "⊢ 1 = 1"}
        ],
        "usedConstants": ["Nat"],
    }
    data = json.loads(ProofResult.from_output(LeanOutput.model_validate(raw)).model_dump_json())
    assert data["result"]["messages"][0]["endPos"] == {"line": 1, "column": 12}
    assert data["result"]["sorries"][0]["proofState"] == 0
    assert data["result"]["usedConstants"] == ["Nat"]  # unknown REPL keys are kept
    assert "tactics" not in data["result"] and "status" not in data["result"]


def test_pending_result_has_null_success() -> None:
    result = ProofResult.pending("abc", JobStatus.RUNNING)
    assert (result.success, result.status, result.done, result.messages) == (None, JobStatus.RUNNING, False, [])


def test_config_has_lean_runner_defaults_and_ignores_unknown_keys() -> None:
    config = ProofConfig.model_validate({"timeout": 5, "frobnicate": True})
    assert config.timeout == 5.0
    default = ProofConfig()
    assert (default.timeout, default.memory_limit_mb, default.all_tactics) == (300.0, 8192, False)
    assert ProofConfig(use_cache=False).answer_key() == ProofConfig().answer_key()
    assert ProofConfig(all_tactics=True).answer_key() != ProofConfig().answer_key()


def test_lean_runners_inert_config_fields_are_accepted_and_do_not_split_the_cache() -> None:
    # lean-runner's clients send tactics/ast/premises; its REPL ignores them, and so do we.
    sent = ProofConfig.model_validate({"tactics": True, "ast": True, "premises": True, "timeout": 9})
    assert sent.timeout == 9.0
    assert sent.answer_key() == ProofConfig().answer_key()
    fields = {"timeout", "all_tactics", "memory_limit_mb", "use_cache", "statement", "permitted_axioms"}
    assert set(ProofConfig.model_json_schema()["properties"]) == fields


def test_the_result_schema_has_only_fields_that_are_sent() -> None:
    sent = set(ProofResult(status=JobStatus.FINISHED).model_dump())
    for mode in ("validation", "serialization"):
        schema = ProofResult.model_json_schema(mode=mode)
        assert set(schema["properties"]) == sent, mode


def test_proof_text_validation_says_what_is_wrong() -> None:
    validate_proof_text("theorem t : True := trivial", 100)
    with pytest.raises(InvalidProofError, match="empty"):
        validate_proof_text(" \n\t", 100)
    with pytest.raises(ProofTooLargeError, match="limit is 10 bytes"):
        validate_proof_text("x" * 11, 10)


@pytest.mark.parametrize(
    "code",
    [
        "#guard_msgs (drop error) in\ntheorem bad : False := by simp",
        "/-- warning: declaration uses 'sorry' -/\n#guard_msgs in\ntheorem t : False := sorry",
    ],
)
def test_text_that_can_hide_its_own_errors_is_refused(code: str) -> None:
    with pytest.raises(InvalidProofError, match="#guard_msgs"):
        validate_proof_text(code, 10_000)


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 0, -1])
def test_config_timeout_must_be_finite_and_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        ProofConfig(timeout=timeout)


@pytest.mark.parametrize("statement", ["", "  \n\t"])
def test_an_empty_statement_is_refused_not_taken_as_none(statement: str) -> None:
    with pytest.raises(ValueError, match="the statement is empty"):
        ProofConfig(statement=statement)
    assert ProofConfig(statement="theorem t : True := sorry").statement is not None


def _judged_by_copy(result: ProofResult, messages: list[Message], axioms: dict[str, list[str]]) -> ProofResult:
    assert result.result is not None
    output_copy = result.result.model_copy(update={"messages": messages})
    return ProofResult.from_output(
        output_copy, result.lean_time, checks=["lean", "axioms"], axioms=axioms, reusable=result.reusable
    )


@pytest.mark.parametrize(
    "inner",
    [
        ProofResult.from_output(output(messages=[SORRY_WARNING]), lean_time=0.5),
        ProofResult.from_output(output(sorries=[{"proofState": 0, "goal": "⊢ True"}], newKey=[1]), reusable=False),
        # a remote runner's answer: its own id and cache flag, which the judged result does not keep
        ProofResult.model_validate(
            {"status": "finished", "proof_id": "r-1", "cached": True, "lean_time": 2, "result": {"env": 3}}
        ),
    ],
)
@pytest.mark.parametrize("kept", [[], [{**SORRY_WARNING, "severity": "error", "data": "`t` is not proved"}]])
def test_a_result_judged_in_place_is_the_one_built_from_a_copy(
    inner: ProofResult, kept: list[dict[str, object]]
) -> None:
    """`ProofResult.rejudge` (the trust guard's, on the inner backend's own result) builds what copying builds."""
    messages = [LeanOutput.model_validate({"messages": [m]}).messages[0] for m in kept]
    want = _judged_by_copy(inner.model_copy(deep=True), messages, {"t": ["propext"]})
    got = inner.model_copy(deep=True).rejudge(list(messages), checks=["lean", "axioms"], axioms={"t": ["propext"]})
    assert got == want and got.model_dump_json() == want.model_dump_json()
    assert got.model_fields_set == want.model_fields_set
    assert got.result is not None and want.result is not None
    assert got.result.model_fields_set == want.result.model_fields_set
    assert got.result.__pydantic_extra__ == want.result.__pydantic_extra__
    assert (got.verdict, got.success) == (want.verdict, want.success) and got.reusable is inner.reusable


@pytest.mark.parametrize(("proof_id", "cached"), [("job-1", False), (None, True)])
def test_a_result_as_a_jobs_answer_is_what_model_copy_makes(proof_id: str | None, cached: bool) -> None:
    """`as_answer` (the job service's per-job copy) is `model_copy` with the id and `cached` updated:
    the same fields, the same fields set, the same JSON, and the original untouched."""
    original = ProofResult.from_output(output(messages=[SORRY_WARNING]), lean_time=0.25, checks=["lean"], axioms={})
    original.cached = not cached
    answer = original.as_answer(proof_id, cached=cached)
    expected = original.model_copy(update={"proof_id": proof_id, "cached": cached})
    assert answer == expected
    assert answer.model_fields_set == expected.model_fields_set
    assert answer.model_dump_json() == expected.model_dump_json()
    assert (answer.proof_id, answer.cached) == (proof_id, cached)
    assert (original.proof_id, original.cached) == (None, not cached)


@pytest.mark.parametrize("cached", [False, True])
def test_a_result_answering_a_job_in_place_is_what_as_answer_makes(cached: bool) -> None:
    """`answer_to` (the job service's per-job answer, for a result it owns) changes the result itself into
    what `as_answer` copies: the same fields, the same fields set, the same JSON."""
    original = ProofResult.from_output(output(messages=[SORRY_WARNING]), lean_time=0.25, checks=["lean"], axioms={})
    original.cached = cached
    expected = original.as_answer("job-1")
    answer = original.answer_to("job-1")
    assert answer is original
    assert answer == expected
    assert answer.model_fields_set == expected.model_fields_set
    assert answer.model_dump_json() == expected.model_dump_json()
    assert (answer.proof_id, answer.cached) == ("job-1", False)


#: The output keys a client may miss: left out of the JSON while None (the rest, and unknown keys, always there).
OPTIONAL_OUTPUT_KEYS = ("env", "tactics", "infotree", "status", "return_code", "error_type")


@pytest.mark.parametrize(
    "raw",
    [
        {"env": 0},
        {"messages": [SORRY_WARNING], "sorries": [{"pos": {"line": 1, "column": 2}, "goal": "⊢ 1", "proofState": 3}]},
        {"env": 2, "tactics": [{"tactic": "rfl", "proofState": 1}], "infotree": [{"node": None}], "newerKey": None},
        {"env": None, "tactics": None, "infotree": None, "extra": {"kept": [1, None]}, "zero": 0},
        {"messages": [SORRY_WARNING], "status": "timeout", "return_code": -9, "error_type": "timeout"},
        {"infotree": 0, "return_code": 0, "error_type": ""},
    ],
)
def test_an_output_leaves_out_exactly_its_absent_optional_keys(raw: dict[str, object]) -> None:
    """Lean's output in JSON: every field in order, unknown keys kept (null too), and only the optional
    keys that are None left out, in both JSON and Python dumps, alone or inside a result."""
    out = LeanOutput.model_validate(raw)
    every = {name: getattr(out, name) for name in LeanOutput.model_fields} | (out.__pydantic_extra__ or {})
    kept = {key: value for key, value in every.items() if not (key in OPTIONAL_OUTPUT_KEYS and value is None)}
    dumped = out.model_dump(mode="json")
    assert list(dumped) == list(kept)
    assert dumped == {
        key: [item.model_dump(mode="json") for item in value]
        if key in ("messages", "sorries")
        else (value.value if key == "status" and value is not None else value)
        for key, value in kept.items()
    }
    assert json.loads(out.model_dump_json()) == dumped
    assert list(out.model_dump()) == list(kept)
    inside = ProofResult.from_output(out, lean_time=0.5).model_dump_json()
    assert f'"result":{out.model_dump_json()},' in inside
