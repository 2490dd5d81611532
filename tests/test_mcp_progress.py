"""A tool call waits for its proof in one step unless its client can receive progress reports.

`verify_proof` and `get_proof_result` report progress every few seconds while they wait; a call
that came over JSON-RPC without a progress token would send those reports nowhere, so it waits
without waking up. These tests pin what that decision reads from the MCP SDK (the token on the
request's dispatch context), so an SDK that moves it turns them red rather than silently
dropping progress or waking every call.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from mcp.server.mcpserver import Context
from mcp.shared.direct_dispatcher import _DirectDispatchContext
from mcp.shared.jsonrpc_dispatcher import _JSONRPCDispatchContext
from mcp.shared.transport_context import TransportContext

from lean_mcp._mcp.proofs import _reports_progress


def _context(outbound: Any) -> Context:
    return cast(
        Context, SimpleNamespace(request_context=SimpleNamespace(session=SimpleNamespace(_request_outbound=outbound)))
    )


def _jsonrpc(token: str | int | None) -> Any:
    transport = TransportContext(kind="jsonrpc", can_send_request=True)
    return _JSONRPCDispatchContext(
        transport=transport, _dispatcher=cast(Any, None), _request_id=1, _progress_token=token
    )


def test_a_json_rpc_call_without_a_progress_token_gets_no_progress_reports() -> None:
    assert not _reports_progress(_context(_jsonrpc(None)))


def test_a_json_rpc_call_with_a_progress_token_gets_them() -> None:
    assert _reports_progress(_context(_jsonrpc("token-1")))
    assert _reports_progress(_context(_jsonrpc(0)))


def test_an_in_process_call_and_an_unknown_dispatcher_get_them() -> None:
    transport = TransportContext(kind="direct", can_send_request=True)
    direct = _DirectDispatchContext(transport=transport, _back_request=cast(Any, None), _back_notify=cast(Any, None))
    assert _reports_progress(_context(direct))
    assert _reports_progress(_context(object()))
    assert _reports_progress(Context())  # outside a request
