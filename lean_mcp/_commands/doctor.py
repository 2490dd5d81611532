"""`lean-mcp doctor [--json]`: what was found, which backend `auto` picks, and one proof end to end.

Exit status 0 when the tiny proof came back `proved`; 1 (with what to fix) otherwise.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from typing import Any

import anyio

from .._backends.auto import choose_backend, create_backend
from .._errors import ConfigurationError, LeanMCPError
from .._models import ProofConfig, ProofResult, Verdict
from .._sandbox import for_settings
from .._settings import Settings
from .._toolchain import Toolchain, discover

#: Checks with nothing but the Lean core (no `Init`), so any real `lean` can run it.
PRELUDE_PROOF = """prelude
inductive DoctorEq {α : Sort u} : α → α → Prop where
  | refl (a : α) : DoctorEq a a

theorem lean_mcp_doctor {α : Sort u} (a : α) : DoctorEq a a := DoctorEq.refl a
"""
#: The tiny proof for the REPL and remote backends (which import `Init` by default).
SIMPLE_PROOF = "theorem lean_mcp_doctor : True := True.intro\n"


def diagnose(settings: Settings) -> dict[str, Any]:
    """The whole report as a JSON-ready dict; `ok` says whether the proof came back proved."""
    report: dict[str, Any] = {"ok": False, "problems": [], "warnings": [], "store": settings.db}
    try:
        found = discover(settings)
    except LeanMCPError as exc:
        report["problems"].append(_describe(exc))
        return report
    report["toolchain"] = found.as_dict()
    report["warnings"].extend(found.warnings)
    try:
        name, chosen = choose_backend(settings, found)
        report["backend"] = name
        report["sandbox"] = _sandbox_report(chosen)
        report["proof"] = _proof_report(anyio.run(_check_one, chosen, name))
    except LeanMCPError as exc:
        report["problems"].append(_describe(exc))
        return report
    if report["proof"]["verdict"] != Verdict.PROVED:
        report["problems"].append(_proof_problem(name, report["proof"], found))
    report["ok"] = not report["problems"]
    return report


def _sandbox_report(settings: Settings) -> str:
    """Whether this machine's Lean processes run sandboxed (raises when --sandbox bwrap cannot work)."""
    if settings.backend in ("remote", "kimina"):
        return "not applicable: proofs are checked by the remote runner"
    return for_settings(settings).describe()


def _describe(exc: LeanMCPError) -> str:
    # A ConfigurationError's hint is "run lean-mcp doctor": already done.
    return exc.message if isinstance(exc, ConfigurationError) else str(exc)


async def _check_one(settings: Settings, name: str) -> tuple[ProofResult, float]:
    proof = PRELUDE_PROOF if name == "lean" else SIMPLE_PROOF
    config = ProofConfig(timeout=settings.timeout, memory_limit_mb=settings.memory_mb)
    started = time.monotonic()
    async with create_backend(settings) as backend:
        result = await backend.check(proof, config)
    return result, time.monotonic() - started


def _proof_report(checked: tuple[ProofResult, float]) -> dict[str, Any]:
    result, seconds = checked
    return {
        "verdict": str(result.verdict),
        "seconds": round(seconds, 3),
        "messages": [m.model_dump(mode="json") for m in result.messages],
    }


def _proof_problem(name: str, proof: dict[str, Any], found: Toolchain) -> str:
    said = "; ".join(m["data"].rstrip(".") for m in proof["messages"]) or "no message"
    fix = (
        "Check that the REPL is built for the project's toolchain and that `lake build` succeeded in the project."
        if name == "repl"
        else "Check that the `lean` executable runs (`lean --version`) and that the project builds."
    )
    return f"The test proof through the {name} backend came back {proof['verdict']}: {said}. {fix}"


def format_report(report: dict[str, Any]) -> str:
    """The report as readable text (what `lean-mcp doctor` prints)."""
    found = report.get("toolchain", {})
    lines = ["lean-mcp doctor"]

    def row(label: str, value: Any) -> None:
        lines.append(f"  {label:<10} {value if value not in (None, '') else 'not found'}")

    lean = found.get("lean")
    row("lean", f"{lean} (Lean {found.get('lean_version') or 'version unknown'})" if lean else None)
    row("lake", found.get("lake"))
    if found:
        project = found["project"] + ("" if found.get("lakefile") else " (no lakefile)")
        row("project", project)
        row("toolchain", found.get("toolchain") or "(no lean-toolchain file)")
    repl = found.get("repl")
    row("REPL", f"{shlex.join(repl)} (from {found.get('repl_source')})" if repl else None)
    row("backend", report.get("backend") or "none could be chosen")
    row("store", report.get("store"))
    row("sandbox", report.get("sandbox") or "not checked")
    proof = report.get("proof")
    row("proof", f"{proof['verdict']} in {proof['seconds']:.2f} s" if proof else "not run")
    lines.extend(f"warning: {w}" for w in report["warnings"])
    lines.extend(f"problem: {p}" for p in report["problems"])
    lines.append("OK: lean-mcp can check proofs here." if report["ok"] else "NOT OK: see the problems above.")
    return "\n".join(lines)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Print the report (text, or JSON with --json); 0 iff the test proof was proved."""
    report = diagnose(settings)
    print(json.dumps(report, indent=2) if getattr(args, "json", False) else format_report(report))
    return 0 if report["ok"] else 1
