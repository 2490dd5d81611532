"""Running `lean-mcp` as a user would: a subprocess with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The current environment minus LEAN_MCP_* and elan, with HOME at `home` and a bare PATH.

    Prelude files are allowed (`LEAN_MCP_ALLOW_PRELUDE=1`): this Lean has no `Init`.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAN_MCP_") and k != "ELAN_HOME"}
    env.update(HOME=str(home), PATH=os.pathsep.join(["/usr/bin", "/bin"]), PYTHONPATH=str(REPO))
    env.update(LEAN_MCP_ALLOW_PRELUDE="1")
    env.update(extra)
    return env


def lean_mcp(*args: str, cwd: Path, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """`lean-mcp ARGS...` run in `cwd`; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "lean_mcp.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
