"""Process checks shared by the tests that assert no Lean or REPL process is left behind."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and has not died: a zombie awaiting its reaper counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def still_alive(pids: Iterable[int], seconds: float = 5.0) -> list[int]:
    """The `pids` still alive after waiting up to `seconds` for them all to die (SIGKILL is not instant)."""
    deadline = time.monotonic() + seconds
    while (alive := [pid for pid in pids if pid_alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return alive
