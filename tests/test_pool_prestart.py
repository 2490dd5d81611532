"""`prestart`: a REPL nearing `max_uses` gets its successor started ahead, through real stand-in REPLs."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import pytest

from lean_mcp._models import ProofConfig, Verdict
from lean_mcp._repl.pool import ReplPool
from lean_mcp._repl.process import ReplProcess
from tests.procs import pid_alive
from tests.standin import standin_command
from tests.test_pool import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

CFG = ProofConfig(timeout=20)
HEADER = "import Foo\n"


def proof(i: int, header: str = HEADER) -> str:
    return f"{header}theorem t{i} : True := trivial\n"


class SecondStartPool(ReplPool):
    """A pool whose second REPL (the successor) is started with `second`, every other one as usual."""

    def __init__(self, second: list[str], **options: Any) -> None:
        super().__init__(standin_command(), **options)
        self.second, self.starts = second, 0

    async def start_repl(self) -> ReplProcess:
        self.starts += 1
        if self.starts == 2:
            return await ReplProcess.start(self.second)
        return await super().start_repl()


async def test_the_successor_imports_ahead_and_takes_the_recycled_repls_place() -> None:
    async with ReplPool(standin_command(import_seconds=0.3), workers=1, max_uses=6, prestart=True) as p:
        assert (await p.check(proof(0), CFG)).verdict == Verdict.PROVED
        [first] = p.health()["pids"]
        await wait_until(lambda: p.health()["header_runs"] == 2)  # the successor imported the header
        [successor] = p.health()["successor_pids"]
        assert successor != first and pid_alive(successor)
        for i in range(1, 6):
            assert (await p.check(proof(i), CFG)).verdict == Verdict.PROVED
        health = p.health()
        assert (health["recycled"], health["pids"], health["prestarts"]) == (1, [], 0)
        result = await p.check(proof(6), CFG)  # the slot's next proof runs on the successor: no import to wait for
        assert result.verdict == Verdict.PROVED
        health = p.health()
        assert (health["pids"], health["successor_pids"], health["prestarts"]) == ([successor], [], 1)
        assert (health["repl_starts"], health["header_runs"]) == (2, 2)
        assert not pid_alive(first)
        rejected = await p.check(HEADER + "theorem bad : True := nonsense\n-- standin: error boom\n", CFG)
        assert rejected.verdict == Verdict.REJECTED  # the successor checks as any REPL does
    assert not pid_alive(successor)


async def test_without_prestart_no_repl_is_started_ahead() -> None:
    async with ReplPool(standin_command(), workers=1, max_uses=3) as p:
        for i in range(7):
            assert (await p.check(proof(i), CFG)).verdict == Verdict.PROVED
            assert p.health()["successor_pids"] == []
        assert (p.health()["repl_starts"], p.health()["prestarts"]) == (3, 0)


async def test_a_successor_that_cannot_import_is_dropped_and_the_slot_restarts_as_before() -> None:
    crashes_on_first_request = [sys.executable, "-c", "import sys; sys.stdin.readline()"]
    p = SecondStartPool(crashes_on_first_request, workers=1, max_uses=4, prestart=True)
    async with p:
        for i in range(4):
            assert (await p.check(proof(i), CFG)).verdict == Verdict.PROVED
        await wait_until(lambda: p.starts == 2 and p.health()["successor_pids"] == [])
        for i in range(4, 9):
            assert (await p.check(proof(i), CFG)).verdict == Verdict.PROVED
        health = p.health()
        assert health["recycled"] >= 1 and health["crashes"] == 0 and health["retries"] == 0


def slow_successor_pool() -> SecondStartPool:
    """A pool whose successor REPL takes a minute to import its header."""
    return SecondStartPool(standin_command(import_seconds=60), workers=1, max_uses=5, prestart=True)


async def importing_successor(p: ReplPool) -> int:
    """Check one proof on `p`, then wait for its successor to start; that successor's pid."""
    await p.check(proof(0), CFG)
    await wait_until(lambda: p.health()["successor_pids"] != [])
    [successor] = p.health()["successor_pids"]
    return int(successor)


async def test_closing_the_pool_stops_a_successor_in_the_middle_of_its_import() -> None:
    async with slow_successor_pool() as p:
        successor = await importing_successor(p)
        with anyio.fail_after(10):
            await p.aclose()
    assert not pid_alive(successor)


async def test_a_slot_given_to_another_header_stops_its_successor() -> None:
    async with slow_successor_pool() as p:
        successor = await importing_successor(p)
        with anyio.fail_after(10):
            result = await p.check(proof(1, header="import Bar\n"), CFG)
        assert result.verdict == Verdict.PROVED
        assert p.health()["successor_pids"] == [] and not pid_alive(successor)
        assert p.health()["headers"] == {"import Bar": 1}


async def test_a_proof_waits_for_the_successors_import_at_most_its_timeout_and_the_next_finds_it() -> None:
    p = SecondStartPool(standin_command(import_seconds=1.5), workers=1, max_uses=2, prestart=True)
    async with p:
        for i in range(2):  # the second proof recycles the REPL; its successor is still importing
            assert (await p.check(proof(i), CFG)).verdict == Verdict.PROVED
        assert p.health()["successor_pids"] != []
        late = await p.check(proof(2), ProofConfig(timeout=0.2))
        assert late.verdict == Verdict.TIMEOUT and "still importing" in (late.error_message or "")
        await wait_until(lambda: p.health()["header_runs"] == 2)
        assert (await p.check(proof(3), CFG)).verdict == Verdict.PROVED
        assert (p.health()["prestarts"], p.health()["repl_starts"]) == (1, 2)
