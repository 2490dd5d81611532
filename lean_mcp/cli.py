"""`lean-mcp`: the command line. Parses flags, resolves Settings, hands off to one command module.

    lean-mcp                 the MCP server (same as `lean-mcp serve`)
    lean-mcp serve           the MCP server (stdio or streamable HTTP)
    lean-mcp runner          the lean-runner / Kimina compatible HTTP runner
    lean-mcp check FILE...   verify .lean files; exit 0 iff every file is proved
    lean-mcp jobs            list recent jobs; --prune applies retention
    lean-mcp doctor          report what was found and run one proof end to end
    lean-mcp setup           install elan, a Lake project and the REPL (--mathlib: and Mathlib)

Each command lives in `lean_mcp._commands.<name>` as `run(settings, args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__
from ._commands.setup import add_arguments as add_setup_arguments
from ._errors import LeanMCPError
from ._settings import KNOBS, Settings, add_knob_arguments
from ._toolchain import with_recorded_project

__all__ = ["build_parser", "command_knobs", "main"]

COMMANDS = ("serve", "runner", "check", "jobs", "doctor", "setup")

# Knobs a command has no use for, so its --help lists only what it reads. A knob added to
# settings.KNOBS shows up in every command except `jobs` until it is listed here.
_HTTP_LIMITS = ("header_timeout", "body_timeout", "max_connections")
_SERVER_ONLY = ("transport", "host", "port", "api_key", "allowed_roots", *_HTTP_LIMITS, "max_request_bytes")
_NOT_FOR: dict[str, tuple[str, ...]] = {
    "serve": (),
    "runner": ("transport", "allowed_roots"),
    "check": _SERVER_ONLY,
    "doctor": _SERVER_ONLY,
}
# `jobs` reads the store file only: no backend, no Lean. `setup` has flags of its own
# (its `--lean` is a Lean version, not the knob's `lean` executable).
_ONLY: dict[str, tuple[str, ...]] = {
    "jobs": ("db", "retention_days", "retention_jobs", "log_level"),
    "setup": ("project", "log_level"),
}
#: Flags a command defines itself with the name of a knob it does not read.
OWN_FLAGS: dict[str, tuple[str, ...]] = {"setup": ("--lean",)}


def command_knobs(command: str) -> list[str]:
    """The names of the knobs `lean-mcp COMMAND` takes as flags (the others still read LEAN_MCP_*)."""
    if command in _ONLY:
        return list(_ONLY[command])
    return [k.name for k in KNOBS if k.name not in _NOT_FOR[command]]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every command, every knob)."""
    parser = argparse.ArgumentParser(
        prog="lean-mcp",
        description="Check Lean 4 proofs for agents: an MCP server, an HTTP runner and a CLI.",
    )
    parser.add_argument("--version", action="version", version=f"lean-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the MCP server (the default command)")
    add_knob_arguments(serve, command_knobs("serve"))

    runner = commands.add_parser("runner", help="run the lean-runner / Kimina compatible HTTP runner")
    add_knob_arguments(runner, command_knobs("runner"))

    check = commands.add_parser("check", help="verify .lean files; exit 0 iff every file is proved")
    check.add_argument("files", nargs="+", metavar="FILE", help="Lean files to verify")
    check.add_argument("--json", action="store_true", help="print one ProofResult JSON per line")
    check.add_argument(
        "--statement",
        metavar="CHALLENGE.lean",
        help="the challenge: proved then means the file proves exactly its theorems (pinned statement)",
    )
    add_knob_arguments(check, command_knobs("check"))

    jobs = commands.add_parser("jobs", help="list recent jobs from the store; --prune applies retention")
    jobs.add_argument("--limit", type=int, default=20, help="how many jobs to list (default 20)")
    jobs.add_argument("--prune", action="store_true", help="delete finished jobs past the retention limits")
    jobs.add_argument("--json", action="store_true", help="print one job JSON per line")
    add_knob_arguments(jobs, command_knobs("jobs"))

    doctor = commands.add_parser("doctor", help="report what was found and run one tiny proof end to end")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    add_knob_arguments(doctor, command_knobs("doctor"))

    add_setup_arguments(commands.add_parser("setup", help="install Lean, the REPL and a project (and Mathlib)"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lean-mcp` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "serve")
    args = build_parser().parse_args(args_list)
    try:
        settings = Settings.from_namespace(args)
    except LeanMCPError as exc:
        print(f"lean-mcp: {exc}", file=sys.stderr)
        return 2
    if args.command != "setup":
        settings = with_recorded_project(settings)
    logging.basicConfig(
        stream=sys.stderr,
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command = importlib.import_module(f"lean_mcp._commands.{args.command}")
    try:
        code: int = command.run(settings, args)
    except LeanMCPError as exc:
        print(f"lean-mcp {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
