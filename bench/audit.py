"""The cost of the verdict checks (refusals, theorem discovery, axiom audit) per proof.

Rows:
* zero-cost stand-in pool (2 REPLs, 4 closed-loop clients, no REPL recycled in a run): proofs/s of the
  bare REPL backend and of the same backend behind `TrustedBackend`. The difference includes the
  stand-in's own work on the probe lines (a Python process parsing text), so it overstates what a
  real REPL pays.
* lean-mcp's own audit work as throughput: the audited pool against the bare pool sent the very
  texts the audit sends (probes laid out in advance), so the REPLs do the same work and the drop is
  lean-mcp's alone. Target: < 10% of the zero-cost throughput.
* lean-mcp's own work per proof: the time `TrustedBackend.check` spends outside the inner backend
  (refusals, discovery, laying out the probes, reading the answers), and its share of the bare pool's
  per-proof time: what the drop would be if the REPLs waited for it (an upper bound; the pool hands a
  REPL its next proof from the callback that reads the last answer).
* the stand-in's own extra work per audited proof (in-process: its handling and printing of the
  same body with and without the probe lines), the part of the throughput drop a real REPL does not
  pay in Python;
* the real Lean 4.35 (`lean` backend, a prelude proof), with and without the audit: what the probes
  cost Lean itself.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from lean_mcp._backends.base import Backend, WrappingBackend
from lean_mcp._backends.lean_cli import LeanCliBackend
from lean_mcp._backends.repl import ReplBackend
from lean_mcp._lean.source import split_header
from lean_mcp._models import ProofConfig, ProofResult, Verdict
from lean_mcp._trust.guard import TrustedBackend
from tests.real_lean import proofs
from tests.real_lean.leanbuild import LeanUnavailable, build_lean
from tests.standin import repl_standin, standin_command

from .common import Row, audited_text, closed_loop, mean

SECTION = "audit"
WORKERS = 2
CLIENTS = 4


class _Timed(WrappingBackend):
    """A backend that adds up the time its checks take (summed over concurrent checks)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.spent = 0.0

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        started = time.perf_counter()
        try:
            return await self.inner.check(code, config)
        finally:
            self.spent += time.perf_counter() - started


class _Instant(Backend):
    """A backend that answers at once (the same result each time): the timer's overhead, alone."""

    identity = "instant"

    def __init__(self) -> None:
        self.answer = ProofResult.failure(Verdict.ERROR, "instant")

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        return self.answer

    def health(self) -> dict[str, Any]:
        return {}


async def _timer_overhead(n: int = 20_000) -> float:
    """Seconds one `_Timed` layer adds to the time of the `_Timed` around it, per check (best of three):
    the inner pool's timer is inside the guard's measured time but is not the guard's work."""
    config = ProofConfig(timeout=120)
    best = float("inf")
    for _ in range(3):
        inner = _Timed(_Instant())
        outer = _Timed(inner)
        for _ in range(n):
            await outer.check("", config)
        best = min(best, (outer.spent - inner.spent) / n)
    return best


def _proof(i: int) -> str:
    return f"import Mathlib\ntheorem t{i} (n : Nat) : n + 0 = n := by\n  simp\n"


async def _closed_loop(backend: Backend, n: int, proof: Any = _proof) -> float:
    """Seconds for `n` proofs from CLIENTS closed-loop clients (after a warm-up)."""
    config = ProofConfig(timeout=120)

    async def check(i: int) -> None:
        result = await backend.check(proof(i), config)
        if result.verdict != Verdict.PROVED:
            raise RuntimeError(f"proof {i}: {result.verdict} {result.messages}")

    await closed_loop(check, 2 * CLIENTS, CLIENTS)
    return await closed_loop(check, n, CLIENTS)


def _probed(n: int) -> Any:
    """`_proof(i)` as the audit sends it to the REPL (its probe lines laid out), made before the clock starts."""
    return [audited_text(_proof(i)) for i in range(n)].__getitem__


async def _pool_rows(n: int, rounds: int) -> list[Row]:
    """Three pools, run one after another in each of `rounds` rounds: the bare pool sent the proofs, the
    bare pool sent the audited texts ready-made, and the pool behind `TrustedBackend`. No REPL is recycled
    in a run (a restart's cost lands at random in one pool or another), and each figure is the median
    over the rounds; the audit's own cost is the median of each round's paired drop, so load that drifts
    between rounds weighs on both sides of a pair alike."""
    walls: dict[str, list[float]] = {"plain": [], "probed": [], "audited": []}
    own: list[float] = []
    probed = _probed(n)
    for _ in range(rounds):
        for kind, runs in walls.items():
            bare = _Timed(ReplBackend(standin_command(), project=Path.cwd(), workers=WORKERS, max_uses=n + 2 * CLIENTS))
            outer = _Timed(TrustedBackend(bare)) if kind == "audited" else bare
            async with outer:
                runs.append(await _closed_loop(outer, n, probed if kind == "probed" else _proof))
                if kind == "audited":  # what TrustedBackend adds to each check, outside the pool
                    own.append((outer.spent - bare.spent) / (n + 2 * CLIENTS))
    plain, audited = statistics.median(walls["plain"]), statistics.median(walls["audited"])
    drops = sorted(1 - p / a for p, a in zip(walls["probed"], walls["audited"], strict=True))
    own_work = statistics.median(own) - await _timer_overhead()
    return [
        Row(SECTION, f"zero-cost stand-in pool, {n} proofs, no audit", f"{n / plain:,.0f} proofs/s"),
        Row(
            SECTION,
            f"zero-cost stand-in pool, {n} proofs, with the audit",
            f"{n / audited:,.0f} proofs/s",
            "",
            f"-{100 * (1 - plain / audited):.1f}% throughput, the stand-in's (Python) work on the probes' answers "
            "included",
        ),
        Row(
            SECTION,
            "lean-mcp's own audit work, as throughput",
            f"{-100 * statistics.median(drops):+.1f}%",
            "< 10% of throughput",
            f"the audited pool against the bare pool sent the same texts, probes laid out in advance "
            f"({n / statistics.median(walls['probed']):,.0f} proofs/s): the REPLs' work is the same, the rest is "
            f"lean-mcp's; median of {rounds} paired rounds (each: {', '.join(f'{-100 * d:+.1f}%' for d in drops)})",
        ),
        Row(
            SECTION,
            "lean-mcp's own audit work per proof (outside the REPL)",
            f"{own_work * 1e6:,.1f} µs",
            "",
            f"{100 * own_work * n / plain:.1f}% of the zero-cost pool's {plain / n * 1e6:,.0f} µs per proof (the "
            "timer's own overhead taken off): the drop if the REPLs waited for every µs of it, an upper bound (the "
            "pool hands a REPL its next proof from the callback that reads the last answer)",
        ),
    ]


def _standin_cpu(n: int, audited: bool) -> float:
    """CPU seconds per proof the stand-in spends handling and printing the body of `_proof(i)`."""
    repl = repl_standin.Repl(0.0, 0.0)
    repl.handle("command", {"cmd": "import Mathlib", "env": None})
    texts = [_proof(i) for i in range(n)]
    if audited:
        texts = [audited_text(text) for text in texts]
    bodies = [split_header(text).body for text in texts]
    started = time.process_time()
    for body in bodies:
        repl_standin.pretty(repl.handle("command", {"cmd": body, "env": 0}))
    return (time.process_time() - started) / n


def _standin_rows(n: int) -> list[Row]:
    plain = min(_standin_cpu(n, False) for _ in range(3))
    audited = min(_standin_cpu(n, True) for _ in range(3))
    return [
        Row(
            SECTION,
            "the stand-in's own extra work per audited proof (in-process)",
            f"{(audited - plain) * 1e6:,.0f} µs",
            "",
            f"{plain * 1e6:,.0f} µs per plain body, {audited * 1e6:,.0f} µs with the probe lines: Python "
            "work a real REPL does not do",
        )
    ]


async def _lean_rows(n: int) -> list[Row]:
    try:
        lean = build_lean()
    except LeanUnavailable as exc:
        return [Row(SECTION, "real Lean, with and without the audit", "skipped", note=str(exc))]
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as project:
        for _ in range(n):
            for audited in (False, True):
                bare = LeanCliBackend([str(lean), "--json", "--stdin"], project=Path(project))
                backend: Backend = TrustedBackend(bare, allow_prelude=True) if audited else bare
                async with backend:
                    result = await backend.check(proofs.PROVED, ProofConfig(timeout=60))
                assert result.verdict == Verdict.PROVED and result.lean_time is not None
                times[audited].append(result.lean_time)
    plain, audited_s = mean(times[False]), mean(times[True])
    return [
        Row(
            SECTION,
            f"real Lean 4.35, lean backend, prelude proof, {n} runs each",
            f"{audited_s * 1000:.0f} ms with audit",
            "",
            f"{plain * 1000:.0f} ms without: the probes cost Lean {100 * (audited_s / plain - 1):+.1f}%",
        )
    ]


async def _main(quick: bool) -> list[Row]:
    rows = await (_pool_rows(400, 2) if quick else _pool_rows(1000, 20))
    rows += _standin_rows(300 if quick else 2000)
    return rows + await _lean_rows(5 if quick else 20)


def run(quick: bool) -> list[Row]:
    """The audit's rows."""
    return anyio.run(_main, quick)
