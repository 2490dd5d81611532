"""The MCP front end: the proof and tactic tools over the proof service, formatted for an LLM agent.

- `server`: `build_server`, the SDK's server with lean-mcp's tools, output schemas and argument errors;
- `proofs`: `verify_proof`, `submit_proof`, `get_proof_result`; `tactics`: `run_tactic`, `try_tactics`;
- `arguments`: what the tools take, and the one sentence a caller gets when the arguments are wrong;
- `output`: what a tool answers (the flat output schema, the result, the tool error);
- `sources`: which files a `path` argument may name (the allowed roots);
- `slot`: `ServiceSlot`, where the tools find the proof service while it starts, runs and stops.

The stdio transport is `server/stdio.py`; `lean-mcp serve` (`commands/serve.py`) puts them together.
"""

from __future__ import annotations

from .server import build_server
from .slot import ServiceSlot

__all__ = ["ServiceSlot", "build_server"]
