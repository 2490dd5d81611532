"""The REPL stand-in: a protocol-faithful imitation of the Lean 4 REPL, scripted by the proof text.

`standin_command()` gives the argv to launch it (e.g. `Settings(repl=standin_command())`, or
`LEAN_MCP_REPL="$(python -c 'import shlex; ...shlex.join(standin_command())')"`). See
`repl_standin.py` for the scripted behaviours and the `-- standin:` directives.
"""

from __future__ import annotations

import sys
from pathlib import Path

STANDIN_PATH = Path(__file__).resolve().parent / "repl_standin.py"


def standin_command(*, import_seconds: float = 0.0, work_seconds: float = 0.0) -> list[str]:
    """The argv that starts a stand-in REPL process with the given simulated costs."""
    argv = [sys.executable, str(STANDIN_PATH)]
    if import_seconds:
        argv += ["--import-seconds", repr(float(import_seconds))]
    if work_seconds:
        argv += ["--work-seconds", repr(float(work_seconds))]
    return argv
