"""What the MCP tools take, and the one sentence a caller gets when the arguments are wrong.

The argument types carry the JSON schema each tool publishes (a description per field). When a
call's arguments do not fit it, `argument_error` says which fields were wrong and what to send,
never the values sent and never a pydantic dump.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, ValidationError, ValidatorFunctionWrapHandler, WithJsonSchema, WrapValidator

from .._models import MAX_TACTICS_PER_TRY

#: The longest `get_proof_result` long-poll, in seconds.
MAX_WAIT_SECONDS = 600.0


def _text_or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    return None if value is None else handler(value)


if TYPE_CHECKING:
    OptionalText = str | None
else:
    #: Text or null, declared to pydantic as `str` (with the `string | null` schema of `str | None`): the
    #: MCP SDK first parses a string argument as JSON unless its field is a plain `str`, so a proof or
    #: path that reads as JSON (`[1]`, `{}`) was refused as "not a valid string", and every call paid
    #: for a failed JSON parse of its proof.
    OptionalText = Annotated[
        str, WrapValidator(_text_or_none), WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "null"}]})
    ]

ProofText = Annotated[
    OptionalText,
    Field(default=None, description="The full Lean 4 source text of the proof (imports first)."),
]
ProofPath = Annotated[
    OptionalText,
    Field(
        default=None,
        description="Instead of `proof`: the path of a .lean file inside the server's allowed roots.",
    ),
]
Statement = Annotated[
    OptionalText,
    Field(
        default=None,
        description="The challenge: Lean text whose theorems are proved by `sorry`. `proved` then requires "
        "the proof to prove exactly those theorems.",
    ),
]
Timeout = Annotated[
    float | None,
    Field(default=None, gt=0, allow_inf_nan=False, description="Seconds Lean may spend (default: the server's limit)."),
]
MemoryLimit = Annotated[
    int | None, Field(default=None, gt=0, description="Memory cap for Lean, in MB (default: the server's limit).")
]
ProofId = Annotated[str, Field(description="The id returned by submit_proof.")]
WaitSeconds = Annotated[
    float,
    Field(default=0, ge=0, le=MAX_WAIT_SECONDS, description="Wait up to this long for the answer (0: do not wait)."),
]
ProofStateId = Annotated[str, Field(description="A proof_state_id from a sorry of a result, or from run_tactic.")]
TacticText = Annotated[str, Field(description="Lean tactic text, e.g. `intro h` or `simp [h]`.")]
TacticList = Annotated[
    list[str],
    Field(min_length=1, max_length=MAX_TACTICS_PER_TRY, description="Tactics to try, each from the same state."),
]


def argument_error(tool: str, schema: dict[str, Any], error: ValidationError) -> str:
    """One sentence: which arguments were wrong and what to send instead (never the values sent)."""
    problems = []
    for detail in error.errors()[:3]:
        where = ".".join(str(part) for part in detail["loc"]) or "arguments"
        problems.append(f"`{where}` {detail['msg'][:1].lower()}{detail['msg'][1:]}")
    required = set(schema.get("required", ()))
    wanted = [
        f"`{field}` ({_json_type(spec)}{', required' if field in required else ''})"
        for field, spec in schema.get("properties", {}).items()
    ]
    return f"Wrong arguments for {tool}: {'; '.join(problems)}. Send a JSON object with {', '.join(wanted)}."


def _json_type(spec: dict[str, Any]) -> str:
    kinds = [option.get("type") for option in spec.get("anyOf", [spec])]
    named = [str(kind) for kind in kinds if kind and kind != "null"] or ["object"]
    return " or ".join(named)
