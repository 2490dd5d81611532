"""A bounded, seeded fuzz round over every front end (MCP stdio, the runner, MCP streamable HTTP).

A few thousand random and hostile inputs against the real servers: zero deaths, zero unanswered
requests, zero 500s. Set LEAN_MCP_FUZZ_SEED to replay a failure; `python -m tests.fuzz` runs longer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz import fuzz_all

pytestmark = pytest.mark.anyio

#: Inputs in all, and the seconds they may take (server start-ups come on top).
INPUTS = 2500
SECONDS = 40.0


@pytest.mark.timeout(240)
async def test_hostile_inputs_never_kill_a_server_leave_a_request_unanswered_or_get_a_500(tmp_path: Path) -> None:
    seed = int(os.environ.get("LEAN_MCP_FUZZ_SEED", "20261127"))
    reports = await fuzz_all(INPUTS, SECONDS, seed, tmp_path)
    summaries = "\n".join(report.summary() for report in reports)
    print(summaries)
    for report in reports:
        assert report.failures == 0, summaries
        assert report.inputs >= 100, f"the round stalled: {summaries}"
    assert sum(report.inputs for report in reports) >= 500, summaries
