"""What the bubblewrap sandbox costs: start-up per REPL and per `lean` process, with and without it.

Rows:
* a bare process (`true`): the sandbox alone;
* a REPL (the stand-in): start, first answer, close; median with `--sandbox none` and `bwrap`,
  and the difference (the sandbox's start-up cost per REPL; a pooled REPL pays it once);
* the `lean` backend (real Lean 4.35, a prelude proof): one check, which starts one process;
* building the bwrap command line: the first time for a command (it runs `ldd`) and after.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from lean_mcp._backends.lean_cli import LeanCliBackend
from lean_mcp._models import ProofConfig, Verdict
from lean_mcp._repl.process import ReplProcess
from lean_mcp._repl.protocol import command_request
from lean_mcp._sandbox import NO_SANDBOX, Sandbox, command_paths, resolve, why_unavailable
from lean_mcp._settings import Settings
from tests.real_lean import proofs
from tests.real_lean.leanbuild import LeanUnavailable, build_lean
from tests.standin import standin_command

from .common import Row

SECTION = "sandbox"
TARGET = "≤ 50 ms"


async def _repl_once(sandbox: Sandbox, project: Path) -> float:
    started = time.perf_counter()
    repl = await ReplProcess.start(standin_command(), cwd=project, sandbox=sandbox)
    try:
        await repl.request(command_request("theorem t : True := trivial", None), seconds=30)
    finally:
        await repl.aclose()
    return time.perf_counter() - started


async def _lean_once(backend: LeanCliBackend) -> float:
    started = time.perf_counter()
    result = await backend.check(proofs.PROVED, ProofConfig(timeout=60))
    if result.verdict != Verdict.PROVED:
        raise RuntimeError(f"expected proved, got {result.verdict}: {result.error_message or result.messages}")
    return time.perf_counter() - started


async def _alternate(n: int, plain: Callable[[], Awaitable[float]], boxed: Callable[[], Awaitable[float]]) -> Row:
    """`n` runs of each, interleaved (so load drifts hit both alike); medians and their difference, in ms."""
    times: dict[str, list[float]] = {"none": [], "bwrap": []}
    for _ in range(n):
        times["none"].append(await plain())
        times["bwrap"].append(await boxed())
    none, bwrap = (statistics.median(times[k]) * 1000 for k in ("none", "bwrap"))
    return Row(SECTION, "", f"{bwrap - none:+.1f} ms", TARGET, f"median {none:.1f} ms unsandboxed → {bwrap:.1f} ms")


async def _true_once(sandbox: Sandbox, project: Path) -> float:
    started = time.perf_counter()
    process = await anyio.run_process(sandbox.wrap([shutil.which("true") or "/bin/true"], cwd=project))
    if process.returncode != 0:
        raise RuntimeError(f"`true` failed: {process.stderr.decode(errors='replace')}")
    return time.perf_counter() - started


async def _measure(boxed: Sandbox, project: Path, quick: bool) -> list[Row]:
    n = 5 if quick else 20
    bare = await _alternate(n * 2, lambda: _true_once(NO_SANDBOX, project), lambda: _true_once(boxed, project))
    bare.benchmark = f"bare process start (`true`, n={n * 2})"
    repl = await _alternate(n, lambda: _repl_once(NO_SANDBOX, project), lambda: _repl_once(boxed, project))
    repl.benchmark = f"REPL start + first answer (stand-in, n={n})"
    rows = [bare, repl]
    try:
        lean = build_lean()
    except LeanUnavailable as exc:
        return [*rows, Row(SECTION, "lean process (skipped)", "-", note=str(exc))]
    settings = {"lean": str(lean), "project": str(project), "workers": 1}
    async with (
        LeanCliBackend.from_settings(Settings(**settings, sandbox="none")) as plain,  # type: ignore[arg-type]
        LeanCliBackend.from_settings(Settings(**settings, sandbox="bwrap")) as sandboxed,  # type: ignore[arg-type]
    ):
        row = await _alternate(n, lambda: _lean_once(plain), lambda: _lean_once(sandboxed))
    row.benchmark = f"one `lean` process per proof (prelude proof, n={n})"
    rows.append(row)
    rows.append(_wrap_row(boxed, lean, project))
    return rows


def _wrap_row(boxed: Sandbox, lean: Path, project: Path) -> Row:
    argv = [str(lean), "--json", "--stdin"]
    command_paths.cache_clear()
    started = time.perf_counter()
    boxed.wrap(argv, cwd=project)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(100):
        boxed.wrap(argv, cwd=project)
    again = (time.perf_counter() - started) / 100
    note = f"first time for a command {first * 1000:.1f} ms (runs ldd)"
    return Row(SECTION, "building the bwrap command line", f"{again * 1000:.2f} ms", note=note)


def run(quick: bool) -> list[Row]:
    """Benchmark rows for the sandbox, or one row saying why it could not run."""
    why_not = why_unavailable(shutil.which("bwrap"))
    if why_not is not None:
        return [Row(SECTION, "(skipped)", "-", note=why_not)]
    with tempfile.TemporaryDirectory(prefix="lean-mcp-bench-") as project:
        return anyio.run(_measure, resolve("bwrap"), Path(project), quick)
