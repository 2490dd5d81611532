"""A failure nobody planned for (here: the job store locked by another process) still tells the
user what happened and what to do, in the MCP tool result and in the runner's JSON answer.

The front ends run in-process over a stand-in service whose calls raise what SQLite raises when
the store stays locked past its 30 s busy timeout (too slow to provoke for real in a test).
"""

from __future__ import annotations

import sqlite3
from typing import Any, cast

import pytest
from mcp import Client
from starlette.testclient import TestClient

from lean_mcp._http_runner import create_app
from lean_mcp._mcp import build_server
from lean_mcp._settings import Settings

pytestmark = pytest.mark.timeout(30)

PROVED = "theorem t : True := trivial\n"


class LockedStoreService:
    """Answers every call the way a ProofService does when its SQLite store stays locked."""

    async def submit(self, *_args: Any, **_kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    verify = get_result = submit


@pytest.mark.anyio
async def test_an_unexpected_tool_failure_names_what_happened_and_what_to_do() -> None:
    server = build_server(cast(Any, LockedStoreService()))
    async with Client(server) as client:
        result = await client.call_tool("verify_proof", {"proof": PROVED})
    text = result.content[0].text if result.content and result.content[0].type == "text" else ""
    assert result.is_error
    assert "OperationalError: database is locked" in text
    assert "server log" in text and "retry" in text.lower()


def test_an_unexpected_runner_failure_is_a_json_500_saying_what_to_do() -> None:
    app = create_app(cast(Any, LockedStoreService()), Settings(repl=["unused"]))
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/prove/check", data={"proof": PROVED})
    assert answer.status_code == 500
    detail = answer.json()["detail"]
    assert "OperationalError: database is locked" in detail
    assert "runner log" in detail and "retry" in detail.lower()
