"""`lean-mcp setup [--project DIR] [--mathlib] [--lean VERSION] [--dry-run]`: from nothing to proving.

Runs the steps of `lean_mcp._install.steps` in order, each checked first (a second run does nothing,
an interrupted run continues), with progress on stderr; then runs `doctor` against what it made
(and, with `--mathlib`, proves a theorem that imports Mathlib). Exit status 0 when all is done and
the proofs came back proved; 1 when a step failed (the message says what to do); 2 for bad flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import TextIO

import anyio

from .._backends.auto import choose_backend, create_backend
from .._install.record import default_project
from .._install.shell import StepFailed
from .._install.steps import DEFAULT_LEAN, ELAN_INSTALLER, Plan, Step, normalize_version, steps_for
from .._models import ProofConfig, Verdict
from .._settings import Settings, add_knob_arguments
from .._toolchain import lakefile_of, read_toolchain, version_of_toolchain
from .doctor import diagnose, format_report

#: The theorem setup proves at the end with `--mathlib` (doctor's own proof imports nothing).
MATHLIB_PROOF = "import Mathlib\n\ntheorem lean_mcp_setup (a b : ℕ) : a + b = b + a := Nat.add_comm a b\n"
#: Environment variables that win over what setup made (plain `lean-mcp` reads them too).
OVERRIDES = ("LEAN_MCP_PROJECT", "LEAN_MCP_REPL", "LEAN_MCP_LEAN", "LEAN_MCP_BACKEND")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The setup command's flags (`--project` is the shared knob; `--lean` here is a Lean version)."""
    parser.description = (
        "Install elan, the Lean toolchain, a Lake project (default: the current directory when it is a Lake "
        "project, else lean-mcp's own), the Lean REPL and, with --mathlib, Mathlib; record them so that plain "
        "`lean-mcp` finds them; end with `lean-mcp doctor`. Safe to run again: done steps are skipped."
    )
    parser.add_argument(
        "--lean",
        dest="lean_version",
        metavar="VERSION",
        help=f"the Lean version, e.g. {DEFAULT_LEAN} (default: the project's lean-toolchain, else {DEFAULT_LEAN})",
    )
    parser.add_argument("--mathlib", action="store_true", help="add Mathlib to the project and get its prebuilt cache")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the steps and what each would run, change nothing"
    )
    parser.add_argument(
        "--elan-installer",
        default=ELAN_INSTALLER,
        metavar="URL",
        help="where elan's installer script comes from: a URL or a local file (default: %(default)s)",
    )
    add_knob_arguments(parser, ["project", "log_level"])


def make_plan(settings: Settings, args: argparse.Namespace, out: TextIO) -> Plan:
    """The project (flag/env, else the current Lake project, else lean-mcp's default one) and the Lean version."""
    here = Path.cwd()
    project = settings.project_dir if settings.project else here if lakefile_of(here) else default_project()
    version = normalize_version(args.lean_version) if args.lean_version else _project_version(project) or DEFAULT_LEAN
    return Plan(project=project, version=version, mathlib=args.mathlib, installer=args.elan_installer, out=out)


def _project_version(project: Path) -> str | None:
    pinned = read_toolchain(project)
    if pinned is None:
        return None
    version = version_of_toolchain(pinned)
    if version is None:
        raise ValueError(
            f"{project}/lean-toolchain says {pinned!r}, which is not a Lean release; pin one "
            f"(e.g. leanprover/lean4:v{DEFAULT_LEAN}) or give --lean VERSION"
        )
    return normalize_version(version)


def run(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Do (or with --dry-run, list) every step; 0 when everything is in place and proved."""
    out = out or sys.stderr
    try:
        plan = make_plan(settings, args, out)
    except ValueError as exc:
        print(f"lean-mcp setup: {exc}.", file=out)
        return 2
    steps = steps_for(plan)
    total = len(steps) + 1
    mathlib = ", Mathlib" if plan.mathlib else ""
    print(f"lean-mcp setup: Lean {plan.version}, project {plan.project}{mathlib}", file=out)
    try:
        for number, step in enumerate(steps, 1):
            if not _do(step, f"[{number}/{total}]", args.dry_run, out):
                return 1
    except KeyboardInterrupt:
        print("\nlean-mcp setup: interrupted. Run it again to continue where it stopped.", file=out)
        return 130
    label = f"[{total}/{total}] Check: lean-mcp doctor" + (" and a proof that imports Mathlib" if plan.mathlib else "")
    if args.dry_run:
        print(f"{label}: to do", file=out)
        return 0
    print(f"{label}", file=out)
    return 0 if _verify(settings, plan, out) else 1


def _do(step: Step, label: str, dry_run: bool, out: TextIO) -> bool:
    reason = step.done()
    if reason is not None:
        print(f"{label} {step.title}: ok ({reason})", file=out)
        return True
    if dry_run:
        print(f"{label} {step.title}: to do", file=out)
        for command in step.commands():
            print(f"      {command}", file=out)
        return True
    print(f"{label} {step.title}: ...", file=out, flush=True)
    started = time.monotonic()
    try:
        step.run()
    except StepFailed as exc:
        print(f"{label} {step.title}: FAILED\n  {exc.args[0]}\n  What to do: {exc.hint}", file=out)
        return False
    except OSError as exc:  # a file setup writes (project, cache, record) could not be written
        print(f"{label} {step.title}: FAILED\n  {exc}\n  What to do: {step.hint}", file=out)
        return False
    print(f"{label} {step.title}: done in {time.monotonic() - started:.1f} s", file=out)
    return True


def _verify(settings: Settings, plan: Plan, out: TextIO) -> bool:
    """Run doctor on the project (what plain `lean-mcp` would use), then the Mathlib proof."""
    given = [name for name in OVERRIDES if os.environ.get(name)]
    if given:
        print(f"  note: {', '.join(given)} (environment) take precedence over what setup made.", file=out)
    settings = dataclasses.replace(settings, project=str(plan.project))
    report = diagnose(settings)
    print(_indent(format_report(report)), file=out)
    if not report["ok"]:
        print("  What to do: see the problems above; `lean-mcp setup` again repeats only what is missing.", file=out)
        return False
    if plan.mathlib:
        return _prove_mathlib(settings, out)
    print("lean-mcp setup: done. Run `lean-mcp` (the MCP server) from anywhere; it finds this project.", file=out)
    return True


def _prove_mathlib(settings: Settings, out: TextIO) -> bool:
    started = time.monotonic()
    _, chosen = choose_backend(settings)

    async def prove() -> bool:
        async with create_backend(chosen) as backend:
            result = await backend.check(MATHLIB_PROOF, ProofConfig(timeout=max(settings.timeout, 600.0)))
        for message in result.messages:
            print(f"    {message.severity}: {message.data}", file=out)
        print(f"  Mathlib proof: {result.verdict} in {time.monotonic() - started:.1f} s", file=out)
        return result.verdict == Verdict.PROVED

    if not anyio.run(prove):
        print("  What to do: check that `lake exe cache get` completed in the project, then run setup again.", file=out)
        return False
    print("lean-mcp setup: done. Run `lean-mcp` (the MCP server) from anywhere; it finds this project.", file=out)
    return True


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
