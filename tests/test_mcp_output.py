"""The MCP tools' output schemas: flat (no references to resolve), and exactly as strict as the models' own."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from lean_mcp._mcp import ServiceSlot, build_server
from lean_mcp._mcp.output import output_schema
from lean_mcp._models import (
    JobStatus,
    LeanOutput,
    Message,
    Pos,
    Proof,
    ProofResult,
    ProofStatus,
    Severity,
    Sorry,
    TacticCheck,
    TacticResult,
    TryTacticsResult,
)

CHECKS = [
    TacticCheck(name="repl_completed", passed=False, detail="Incomplete"),
    TacticCheck(name="no_sorry", passed=True),
]
SORRY = Sorry(pos=Pos(line=2, column=2), goal="⊢ p ∧ q", proof_state_id="ps_x", proofState=0)
MESSAGE = Message(severity=Severity.ERROR, pos=Pos(line=1, column=0), endPos=Pos(line=1, column=4), data="bad")
TACTIC = TacticResult(
    tactic="skip",
    proof_state_id="ps_y",
    goals=["⊢ p"],
    messages=[MESSAGE],
    sorries=[SORRY],
    proof_status=ProofStatus.INCOMPLETE,
    repl_status="Incomplete: open goals remain",
    checks=CHECKS,
    lean_time=0.001,
)
SAMPLES: list[BaseModel] = [
    ProofResult.from_output(LeanOutput(env=1, messages=[MESSAGE], sorries=[SORRY]), lean_time=0.5, proof_id="p1"),
    ProofResult.from_output(LeanOutput(env=0), axioms={"t": ["propext"]}, checks=["lean", "axioms"]),
    ProofResult.pending("p2", JobStatus.RUNNING),
    Proof(id="p3"),
    TACTIC,
    TacticResult(tactic="bogus", proof_status=ProofStatus.ERROR, failure="crash"),
    TryTacticsResult(proof_state_id="ps_x", results=[TACTIC, TACTIC.model_copy(update={"proof_state_id": None})]),
]


def _as_json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _nodes(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _nodes(value)


def _mutations(document: Any) -> Iterator[Any]:
    """Copies of `document` with one value replaced by a value of another type, or one key removed."""
    if isinstance(document, dict):
        for key, value in document.items():
            for other in (None, "x", -1, 1.5, True, [], {}):
                if other != value or type(other) is not type(value):
                    yield {**document, key: other}
            yield {k: v for k, v in document.items() if k != key}
            for changed in _mutations(value):
                yield {**document, key: changed}
    elif isinstance(document, list) and document:
        for changed in _mutations(document[0]):
            yield [changed, *copy.deepcopy(document[1:])]


def test_every_tool_publishes_a_flat_output_schema() -> None:
    tools = anyio.run(build_server(ServiceSlot()).list_tools)
    names = {"verify_proof", "submit_proof", "get_proof_result", "run_tactic", "try_tactics"}
    assert {tool.name for tool in tools} == names
    for tool in tools:
        schema = tool.output_schema
        assert schema is not None and schema["type"] == "object", tool.name
        text = json.dumps(schema)
        assert "$ref" not in text and "$defs" not in text, tool.name
        for node in _nodes(schema):
            assert {"type": "null"} not in node.get("anyOf", []), (tool.name, node)
    by_name = {tool.name: tool.output_schema for tool in tools}
    assert by_name["run_tactic"] == output_schema(TacticResult)
    assert by_name["verify_proof"] == by_name["get_proof_result"] == output_schema(ProofResult)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda sample: type(sample).__name__)
def test_the_flat_schema_accepts_and_refuses_exactly_what_the_models_schema_does(sample: BaseModel) -> None:
    model = type(sample)
    nested = Draft202012Validator(model.model_json_schema())
    flat = Draft202012Validator(output_schema(model))
    document = _as_json(sample)
    assert flat.is_valid(document)
    verdicts = [(nested.is_valid(changed), flat.is_valid(changed)) for changed in _mutations(document)]
    assert verdicts and all(a == b for a, b in verdicts)
    assert any(not a for a, _ in verdicts), "some mutation should be refused"


def test_a_model_that_refers_to_itself_is_refused_rather_than_inlined_forever() -> None:
    class Tree(BaseModel):
        children: list[Tree] = []

    with pytest.raises(ValueError, match="refers to itself"):
        output_schema(Tree)
