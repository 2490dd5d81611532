"""What an MCP tool answers: its output schema, its result, and its error.

A result is the model (`ProofResult`, `TacticResult`, ...) as structured content plus its readable
summary as text. The output schema a tool publishes is the model's JSON schema made flat: every
`$ref` inlined and every `X | None` written as a type list, so it accepts exactly what the model's
schema accepts, but a client checks a result against it without resolving references (the MCP
SDK client checks every result it gets against the schema; a nested schema made that the largest
cost of a `run_tactic` round trip).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel

from .._errors import LeanMCPError

logger = logging.getLogger(__name__)

#: Keywords whose value is one schema, a list of schemas, or a map of names to schemas.
_ONE = frozenset({"items", "additionalProperties", "not", "contains", "propertyNames"})
_LIST = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_MAP = frozenset({"properties", "patternProperties"})
_NULL = {"type": "null"}

#: A tool function: keyword arguments in, a `CallToolResult` out.
Tool = Callable[..., Coroutine[Any, Any, CallToolResult]]


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema, flat: no `$defs`, no `$ref`, nullable fields as `"type": [..., "null"]`."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    flat = _flat(schema, definitions, frozenset())
    return {"title": schema.get("title", model.__name__), **flat}


def _flat(node: dict[str, Any], definitions: dict[str, Any], inlining: frozenset[str]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        if name in inlining:
            raise ValueError(f"{name} refers to itself, so its schema cannot be made flat")
        target = _flat(definitions[name], definitions, inlining | {name})
        return {**target, **_flat({k: v for k, v in node.items() if k != "$ref"}, definitions, inlining)}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue  # pydantic's field titles repeat the field names
        if key in _ONE and isinstance(value, dict):
            flat[key] = _flat(value, definitions, inlining)
        elif key in _LIST:
            flat[key] = [_flat(option, definitions, inlining) for option in value]
        elif key in _MAP:
            flat[key] = {name: _flat(option, definitions, inlining) for name, option in value.items()}
        else:
            flat[key] = value
    return _nullable(flat)


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [S, {"type": "null"}]` as S with `"null"` added to its type (and enum): the same set of values."""
    options = node.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or _NULL not in options:
        return node
    other = options[0] if options[1] == _NULL else options[1]
    if not isinstance(other.get("type"), str) or "const" in other or "anyOf" in other:
        return node
    merged = {**other, "type": [other["type"], "null"]}
    if "enum" in merged:
        merged["enum"] = [*merged["enum"], None]
    return {**merged, **{k: v for k, v in node.items() if k != "anyOf"}}


def tool_result(text: str, model: BaseModel) -> CallToolResult:
    """A tool result whose text is the readable summary and whose structured content is `model`."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json", by_alias=True),
    )


def tool_errors() -> _ToolErrors:
    """Turn an error into a tool error whose text says what happened and what to do (`async with`)."""
    return _TOOL_ERRORS


class _ToolErrors:
    """`tool_errors()`'s context manager: a plain class, not a generator (a few µs less on every call)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or not isinstance(exc, Exception):
            return  # success, or a cancellation: not ours to answer
        if isinstance(exc, LeanMCPError):
            raise ToolError(str(exc)) from exc
        # unplanned (e.g. the job store locked by another process): still say what to do
        logger.error("A tool call failed unexpectedly", exc_info=exc)
        raise ToolError(
            f"lean-mcp failed unexpectedly ({type(exc).__name__}: {exc}). The details are in the server log "
            "(stderr). Retry; if it keeps failing, run `lean-mcp doctor` or restart the server."
        ) from exc


_TOOL_ERRORS = _ToolErrors()
