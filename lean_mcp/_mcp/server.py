"""`build_server`: the SDK's MCP server with lean-mcp's five tools, their output schemas and argument errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import Tool as ToolListing
from mcp_types import ToolAnnotations
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from .. import __version__
from .._jobs.service import ProofService
from .._models import Proof, ProofResult, TacticResult, TryTacticsResult
from .._settings import DEFAULT_MAX_PROOF_BYTES
from . import proofs, tactics
from .arguments import argument_error
from .output import Tool, output_schema
from .slot import ServiceSlot
from .sources import ProofSources

#: The class name of the SDK's tracing middleware (tests/test_mcp_server.py pins it).
_SDK_TRACING = "OpenTelemetryMiddleware"

INSTRUCTIONS = """\
This server checks Lean 4 proofs with a real Lean. Send the complete Lean source (imports,
then the theorem and its proof). The answer's verdict is one of: proved (Lean accepted it: no
error, no sorry), sorry (no error but a `sorry` is left: not a proof), rejected (Lean reported
errors: fix them), timeout / memory_limit / error (Lean could not finish: simplify or retry).
Use verify_proof to check one proof and wait; submit_proof + get_proof_result for many proofs
or long checks. On the repl backend each sorry has a proof_state_id: run_tactic and try_tactics
run tactics on that goal and show the goals left."""


def build_server(
    slot: ServiceSlot | ProofService,
    *,
    allowed_roots: Sequence[str | Path] = (),
    max_proof_bytes: int = DEFAULT_MAX_PROOF_BYTES,
) -> MCPServer[Any]:
    """The MCP server with the proof and tactic tools, backed by `slot` (or a ready service).

    A tool's `path` argument may name a `.lean` file inside one of `allowed_roots` (none: text only).
    """
    if not isinstance(slot, ServiceSlot):
        slot = ServiceSlot.of(slot)
    sources = ProofSources(allowed_roots, max_proof_bytes)
    server = _ProofServer("lean-mcp", title="Lean 4 proof checker", instructions=INSTRUCTIONS, version=__version__)
    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
    tactic_mode = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    add = server.add_model_tool
    add(proofs.verify_tool(slot, sources), ProofResult, "verify_proof", proofs.VERIFY_DESCRIPTION, read_only)
    add(proofs.submit_tool(slot, sources), Proof, "submit_proof", proofs.SUBMIT_DESCRIPTION)
    add(proofs.get_result_tool(slot), ProofResult, "get_proof_result", proofs.GET_RESULT_DESCRIPTION, read_only)
    add(tactics.run_tactic_tool(slot), TacticResult, "run_tactic", tactics.RUN_TACTIC_DESCRIPTION, tactic_mode)
    add(tactics.try_tactics_tool(slot), TryTacticsResult, "try_tactics", tactics.TRY_TACTICS_DESCRIPTION, tactic_mode)
    _drop_idle_tracing(server)
    return server


def _drop_idle_tracing(server: MCPServer[Any]) -> None:
    """Take the SDK's OpenTelemetry middleware off `server` when no tracer provider is installed.

    The SDK opens a span around every message (documented as a no-op until an exporter is
    installed, and to be dropped from `middleware` to opt out); without a provider nobody can
    receive it, yet it costs about 100 k instructions per tool call (4% of a `verify_proof`).
    With a provider installed before the server is built (e.g. by `opentelemetry-instrument`),
    the spans stay.
    """
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    server.middleware[:] = [layer for layer in server.middleware if type(layer).__name__ != _SDK_TRACING]


class _ProofServer(MCPServer[Any]):
    """The SDK's server, with flat output schemas and argument errors said in one sentence.

    Each tool's result is built from its model (so it fits the model by construction) and listed
    with `output.output_schema(model)`; the SDK neither derives a nested schema nor validates the
    result against the model a second time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._output_schemas: dict[str, dict[str, Any]] = {}

    def add_model_tool(
        self,
        tool: Tool,
        output: type[BaseModel],
        name: str,
        description: str,
        annotations: ToolAnnotations | None = None,
    ) -> None:
        """Register `tool`, whose structured content is an `output`, under `name`."""
        self.add_tool(tool, name=name, description=description, annotations=annotations)
        self._output_schemas[name] = output_schema(output)

    async def list_tools(self) -> list[ToolListing]:
        """The tools, each with its flat output schema."""
        return [
            tool.model_copy(update={"output_schema": self._output_schemas.get(tool.name, tool.output_schema)})
            for tool in await super().list_tools()
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            tool = self._tool_manager.get_tool(name)
            if tool is None or not isinstance(exc.__cause__, ValidationError):
                raise
            raise ToolError(argument_error(name, tool.parameters, exc.__cause__)) from exc.__cause__
