"""The MCP server: the proof tools over the proof service, formatted for an LLM agent.

`verify_proof` checks a proof and waits for Lean's answer, `submit_proof` queues one and returns
its id at once, `get_proof_result` reads (or long-polls) a queued proof's result. Every result is
a `ProofResult` in the structured content (with its output schema) and a readable summary in the
text content: a one-line verdict, Lean's messages as `line:col severity: text`, the goals left
at each `sorry`. A proof Lean rejects is a normal result; `isError` means the tool itself could
not serve the call (bad input, unknown id, no Lean configured), with a message saying what to do.
The tactic tools (`run_tactic`, `try_tactics`) live in `mcp_tactics`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from . import __version__
from .errors import BackendUnavailableError, InvalidProofError, LeanMCPError
from .jobs.service import ProofService
from .lean.source import read_proof_file
from .models import Proof, ProofConfig, ProofResult
from .render import describe_proof, describe_result
from .server.runtime import open_service
from .settings import DEFAULT_MAX_PROOF_BYTES, Settings

__all__ = [
    "PROGRESS_INTERVAL",
    "ProofSources",
    "ServiceSlot",
    "argument_error",
    "build_server",
    "describe_proof",
    "describe_result",
]

logger = logging.getLogger(__name__)

#: Seconds between progress notifications while a call waits for Lean.
PROGRESS_INTERVAL = 2.0
#: The longest `get_proof_result` long-poll, in seconds.
MAX_WAIT_SECONDS = 600.0
#: How long a cancelled call may spend cancelling its job.
_CANCEL_GRACE = 10.0

INSTRUCTIONS = """\
This server checks Lean 4 proofs with a real Lean. Send the complete Lean source (imports,
then the theorem and its proof). The answer's verdict is one of: proved (Lean accepted it: no
error, no sorry), sorry (no error but a `sorry` is left: not a proof), rejected (Lean reported
errors: fix them), timeout / memory_limit / error (Lean could not finish: simplify or retry).
Use verify_proof to check one proof and wait; submit_proof + get_proof_result for many proofs
or long checks. On the repl backend each sorry has a proof_state_id: run_tactic and try_tactics
run tactics on that goal and show the goals left."""

VERIFY_DESCRIPTION = """\
Check a Lean 4 proof with Lean and wait for the answer.

`proof` is the full Lean source text, e.g.
    theorem two_eq : 1 + 1 = 2 := by decide
(add `import Mathlib` etc. at the top when the proof needs it). To check a `.lean` file of the
server's project instead, pass its path as `path` (and no `proof`). With `statement` (the
challenge: Lean text whose theorems are proved by `sorry`), `proved` also requires every theorem
of the statement, with exactly the statement's type and definitions. The result's `verdict` is:
- proved: Lean accepted the proof with no error and no `sorry`, and every theorem depends only on
  permitted axioms (and matches the statement when one is given). Only this is a success.
- sorry: no errors, but a `sorry` remains; the text lists the goal left at each sorry.
- rejected: Lean reported errors; each is listed as `line:col error: message`.
- timeout / memory_limit / error: Lean could not finish checking; simplify or retry.
A rejected proof is a normal answer, not a tool failure. For many proofs or very long
checks, use submit_proof and get_proof_result instead."""

SUBMIT_DESCRIPTION = """\
Queue a Lean 4 proof for checking and return its id at once, without waiting.

Use this to check many proofs in parallel or when a check may take minutes; then call
get_proof_result(proof_id=..., wait_seconds=60) to wait for each answer. `config` may set
`timeout` (seconds of Lean time), `memory_limit_mb`, `statement` (the challenge the proof must
prove) and `permitted_axioms`. Pass `path` instead of `proof` to check a `.lean` file of the
server's project. For a single quick check, use
verify_proof instead."""

GET_RESULT_DESCRIPTION = f"""\
Get the result of a proof queued with submit_proof.

With wait_seconds > 0 (at most {MAX_WAIT_SECONDS:.0f}), wait up to that long for the answer
(long-poll) and return as soon as it is ready; with 0, return the current state at once.
`status` pending or running means Lean has not answered yet: call again. Once finished,
`verdict` is proved, sorry, rejected, timeout, memory_limit or error (as for verify_proof)."""


class ServiceSlot:
    """Where the tools find the proof service: ready once it is up, or holding why it never will be.

    The server can answer `initialize` and `tools/list` while the backend is still starting, and
    keeps answering (with the reason) when no Lean is configured.
    """

    def __init__(self) -> None:
        self._ready = anyio.Event()
        self._service: ProofService | None = None
        self._error: LeanMCPError | None = None

    def set(self, service: ProofService) -> None:
        """Make `service` available to the tools."""
        self._service, self._error = service, None
        self._ready.set()

    def fail(self, error: LeanMCPError) -> None:
        """Record why there is no service; every tool call will answer with this error."""
        self._service, self._error = None, error
        self._ready.set()

    async def get(self) -> ProofService:
        """The service, once ready; raises the recorded error when there is none."""
        await self._ready.wait()
        if self._service is None:
            raise self._error or LeanMCPError("The proof service has stopped.")
        return self._service

    async def provide(self, settings: Settings, stop: anyio.Event) -> None:
        """Open the service from `settings`, publish it, and close it once `stop` is set.

        A failure to open it (no Lean found, backend cannot start) is recorded, not raised.
        """
        try:
            async with open_service(settings) as service:
                self.set(service)
                await stop.wait()
        except LeanMCPError as exc:
            logger.warning("No proof service: %s", exc)
            self.fail(exc)
        except Exception as exc:  # e.g. an unwritable job store: keep serving, and say why
            logger.exception("The proof service failed")
            error = f"The proof service could not start or stopped: {exc}."
            self.fail(BackendUnavailableError(error, hint="See the server log (stderr), and run `lean-mcp doctor`."))
        finally:
            if self._service is not None:
                self.fail(LeanMCPError("The server is shutting down."))


def build_server(
    slot: ServiceSlot | ProofService,
    *,
    allowed_roots: Sequence[str | Path] = (),
    max_proof_bytes: int = DEFAULT_MAX_PROOF_BYTES,
) -> MCPServer[Any]:
    """The MCP server with the three proof tools, backed by `slot` (or a ready service).

    `proof` may also be the path of a `.lean` file inside one of `allowed_roots` (none: text only).
    """
    if not isinstance(slot, ServiceSlot):
        ready = ServiceSlot()
        ready.set(slot)
        slot = ready
    sources = ProofSources(allowed_roots, max_proof_bytes)
    server: MCPServer[Any] = _ProofServer(
        "lean-mcp",
        title="Lean 4 proof checker",
        instructions=INSTRUCTIONS,
        version=__version__,
    )
    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
    server.add_tool(
        _verify_tool(slot, sources), name="verify_proof", description=VERIFY_DESCRIPTION, annotations=read_only
    )
    server.add_tool(_submit_tool(slot, sources), name="submit_proof", description=SUBMIT_DESCRIPTION)
    server.add_tool(
        _get_result_tool(slot), name="get_proof_result", description=GET_RESULT_DESCRIPTION, annotations=read_only
    )
    from .mcp_tactics import add_tactic_tools  # it builds on this module's helpers

    add_tactic_tools(server, slot)
    return server


class _ProofServer(MCPServer[Any]):
    """The SDK's server, with argument errors said in one sentence instead of a pydantic dump."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            tool = self._tool_manager.get_tool(name)
            if tool is None or not isinstance(exc.__cause__, ValidationError):
                raise
            raise ToolError(argument_error(name, tool.parameters, exc.__cause__)) from exc.__cause__


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


ProofText = Annotated[
    str | None,
    Field(default=None, description="The full Lean 4 source text of the proof (imports first)."),
]
ProofPath = Annotated[
    str | None,
    Field(
        default=None,
        description="Instead of `proof`: the path of a .lean file inside the server's allowed roots.",
    ),
]
Statement = Annotated[
    str | None,
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
ResultOutput = Annotated[CallToolResult, ProofResult]
ProofOutput = Annotated[CallToolResult, Proof]


class ProofSources:
    """Turns a tool's `proof` / `path` arguments into Lean text.

    `proof` is always Lean text, whatever it looks like. A file is read only when the caller names it
    in `path`, it resolves (symlinks followed) inside one of the allowed roots, and it is within the
    proof size limit.
    """

    def __init__(self, allowed_roots: Sequence[str | Path], max_bytes: int = DEFAULT_MAX_PROOF_BYTES) -> None:
        self.roots = [Path(root).expanduser().resolve() for root in allowed_roots]
        self.max_bytes = max_bytes

    async def text_of(self, proof: str | None, path: str | None = None) -> str:
        """The Lean text to check: `proof`, or the file at `path` (exactly one of them).

        Raises InvalidProofError when both or neither are given, or for a path that may not or cannot be read.
        """
        if (proof is None) == (path is None):
            raise InvalidProofError(
                "Give exactly one of `proof` (the Lean text) and `path` (a .lean file on the server).",
                hint="Send the proof's Lean source as `proof`.",
            )
        if proof is not None:
            return proof
        assert path is not None
        name = path.strip()
        try:
            return await self._read(name)
        except OSError as exc:
            reason = exc.strerror or str(exc)
        except (RuntimeError, ValueError) as exc:  # a symlink loop, `~user` unknown, a NUL in the name
            reason = str(exc).rstrip(".")
        raise InvalidProofError(
            f"Cannot read {name}: {reason}.", hint="Send the proof's text, or the path of a readable UTF-8 .lean file."
        )

    async def _read(self, name: str) -> str:
        path = await anyio.Path(name).expanduser()
        if not path.is_absolute() and self.roots:
            path = anyio.Path(self.roots[0]) / path
        resolved = await path.resolve()
        if not any(resolved.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(root) for root in self.roots) or "none"
            raise InvalidProofError(
                f"{name} is not inside a directory this server may read (allowed: {allowed}).",
                hint="Send the proof's text instead, or start the server with --allowed-roots including it.",
            )
        return await anyio.to_thread.run_sync(read_proof_file, str(resolved), self.max_bytes)


def _verify_tool(slot: ServiceSlot, sources: ProofSources) -> Any:
    async def verify_proof(  # noqa: PLR0917 - MCP tools take their arguments by name
        ctx: Context,
        proof: ProofText = None,
        timeout: Timeout = None,  # noqa: ASYNC109 - Lean's time limit for the proof, not this call's
        memory_limit_mb: MemoryLimit = None,
        statement: Statement = None,
        path: ProofPath = None,
    ) -> ResultOutput:
        options: dict[str, Any] = {"timeout": timeout, "memory_limit_mb": memory_limit_mb, "statement": statement}
        config = ProofConfig(**{k: v for k, v in options.items() if v is not None})
        async with _tool_errors():
            text = await sources.text_of(proof, path)
            service = await slot.get()
            submitted = await service.submit(text, config)
            try:
                result = await _await_result(service, submitted.id, ctx, wait_seconds=None)
            except anyio.get_cancelled_exc_class():
                await _cancel_quietly(service, submitted.id)
                raise
        return _result_output(result)

    return verify_proof


def _submit_tool(slot: ServiceSlot, sources: ProofSources) -> Any:
    async def submit_proof(
        proof: ProofText = None, config: ProofConfig | None = None, path: ProofPath = None
    ) -> ProofOutput:
        async with _tool_errors():
            text = await sources.text_of(proof, path)
            service = await slot.get()
            submitted = await service.submit(text, config)
        return _structured(describe_proof(submitted), submitted)

    return submit_proof


def _get_result_tool(slot: ServiceSlot) -> Any:
    async def get_proof_result(proof_id: ProofId, ctx: Context, wait_seconds: WaitSeconds = 0) -> ResultOutput:
        async with _tool_errors():
            service = await slot.get()
            if wait_seconds <= 0:
                result = await service.get_result(proof_id)
            else:
                result = await _await_result(service, proof_id, ctx, wait_seconds=wait_seconds)
        return _result_output(result)

    return get_proof_result


@asynccontextmanager
async def _tool_errors() -> AsyncIterator[None]:
    """Turn an error into a tool error whose text says what happened and what to do."""
    try:
        yield
    except LeanMCPError as exc:
        raise ToolError(str(exc)) from exc
    except Exception as exc:  # unplanned (e.g. the job store locked by another process): still say what to do
        logger.exception("A tool call failed unexpectedly")
        raise ToolError(
            f"lean-mcp failed unexpectedly ({type(exc).__name__}: {exc}). The details are in the server log "
            "(stderr). Retry; if it keeps failing, run `lean-mcp doctor` or restart the server."
        ) from exc


async def _await_result(
    service: ProofService, proof_id: str, ctx: Context, *, wait_seconds: float | None
) -> ProofResult:
    """Wait for the proof's result (at most `wait_seconds`), reporting progress every few seconds."""
    started = anyio.current_time()
    deadline = None if wait_seconds is None else started + wait_seconds
    while True:
        step = (
            PROGRESS_INTERVAL if deadline is None else max(0.0, min(PROGRESS_INTERVAL, deadline - anyio.current_time()))
        )
        result = await service.wait(proof_id, timeout=step)
        now = anyio.current_time()
        if result.done or (deadline is not None and now >= deadline):
            return result
        elapsed = now - started
        message = f"Proof {proof_id} is {result.status.value}; waited {elapsed:.0f} s so far."
        await ctx.report_progress(elapsed, wait_seconds, message)


async def _cancel_quietly(service: ProofService, proof_id: str) -> None:
    """Cancel the job of a call the client abandoned (shielded: the caller is being cancelled)."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_GRACE):
        try:
            await service.cancel(proof_id)
            logger.info("Cancelled proof %s: its call was cancelled (by the client, or at shutdown).", proof_id)
        except Exception:
            logger.exception("Could not cancel proof %s", proof_id)


def _result_output(result: ProofResult) -> CallToolResult:
    return _structured(describe_result(result), result)


def _structured(text: str, model: BaseModel) -> CallToolResult:
    """A tool result whose text is the readable summary and whose structured content is `model`."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json", by_alias=True),
    )
