"""Lean process groups we started: their process tree, its memory, killing them, and exit cleanup.

Every Lean process (a REPL, or `lean --json`, often under `lake env`) runs as the leader of a
process group of its own, so one `kill_group` takes the whole tree. Groups still running are kept
in a registry (`register_group` / `unregister_group`); `kill_all_groups` kills them at interpreter
exit (atexit) and, once `install_signal_cleanup` ran, on SIGTERM / SIGHUP, so no Lean outlives us.

A kill -9 runs none of that, so the registry is also mirrored to a guardian: one small Python
process per server, started with the first group, that reads `+PGID` / `-PGID` lines from a pipe
only we hold. When we die, however we die, the kernel closes our end; the guardian reads end of
file and SIGKILLs every group still registered, grandchildren (`lake env` → REPL) included, which
a parent-death signal on the direct child alone would miss.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import ClassVar

__all__ = [
    "HAS_CHILDREN_FILES",
    "install_signal_cleanup",
    "kill_all_groups",
    "kill_group",
    "live_groups",
    "register_group",
    "signal_name",
    "spawning",
    "tree_pids",
    "tree_rss_mb",
    "unregister_group",
]

#: True where the kernel lists each thread's children (/proc/PID/task/TID/children): walking a
#: tree then costs a few reads; elsewhere it is a scan of all of /proc (better done off the event loop).
HAS_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
_EXITED_STATES = (b"Z", b"X")  # zombie or dead: its children were handed to another parent
_RSS_FIELD = 21  # field 24 of /proc/PID/stat, counted from the state (field 3)


def signal_name(number: int) -> str:
    """`SIGKILL` for 9; the bare number for a signal Python does not know."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def kill_group(pgid: int) -> None:
    """SIGKILL every process in the group `pgid`; nothing happens if it is gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# The process tree of a group leader, from /proc.


def _stat(pid: int | str) -> list[bytes] | None:
    """`/proc/PID/stat` after the command name: [state, ppid, pgrp, ...] (None if gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, over all its threads ([] if it is gone)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    children: list[int] = []
    for tid in tids:
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
            children.extend(int(child) for child in f.read().split())
    return children


def _walk(pid: int) -> dict[int, list[bytes]]:
    """`pid` and its living descendants, each with its stat fields."""
    found: dict[int, list[bytes]] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        fields = None if current in found else _stat(current)
        if fields is not None:
            found[current] = fields
            todo.extend(_children(current))
    return found


def _group(pgid: int) -> dict[int, list[bytes]]:
    """Every process in the process group `pgid`, each with its stat fields (a scan of /proc)."""
    found: dict[int, list[bytes]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if fields is not None and len(fields) > 2 and int(fields[2]) == pgid:
                found[int(entry.name)] = fields
    return found


def _tree(pid: int) -> dict[int, list[bytes]]:
    """The tree of the group leader `pid`, plus its group's members where the tree misses some.

    A walk of the children links cannot see processes whose parent exited (they were re-parented),
    so when the walk is impossible, or the leader or any process in it has exited, the members of
    process group `pid` are added (a scan of /proc, too dear for every poll). An orphan whose
    parent was already reaped inside a living tree is still missed; `kill_group` reaches it anyway.
    """
    found = _walk(pid) if HAS_CHILDREN_FILES else {}
    if pid not in found or any(fields[0] in _EXITED_STATES for fields in found.values()):
        found.update(_group(pid))
    return found


def tree_pids(pid: int) -> list[int]:
    """The pids of the group leader `pid` and all its descendants, still-running orphans included."""
    return sorted(_tree(pid))


def tree_rss_mb(pid: int) -> float:
    """Resident memory, in MB, of the group leader `pid` and all its descendants."""
    pages = 0
    for fields in _tree(pid).values():
        with contextlib.suppress(IndexError, ValueError):
            pages += int(fields[_RSS_FIELD])
    return pages * _PAGE_MB


# ---------------------------------------------------------------------------------------------
# Process groups alive in this interpreter, killed at exit whatever happens to the event loop.

_LIVE_GROUPS: set[int] = set()
_LIVE_LOCK = threading.RLock()  # re-entrant: the SIGTERM handler may run while the main thread holds it
_SIGNALS_ARMED: set[int] = set()

logger = logging.getLogger(__name__)

#: The guardian: keeps the registered groups; kills them all when its stdin (our pipe) reaches end of file.
_GUARDIAN_CODE = """
import os, signal, sys
groups = set()
for line in sys.stdin.buffer:
    pgid = int(line[1:])
    groups.add(pgid) if line[:1] == b"+" else groups.discard(pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class _Guardian:
    """The guardian process and our end of its pipe (started lazily; disabled if it cannot run)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.disabled = not sys.executable

    def tell(self, line: str) -> None:
        if self.disabled:
            return
        try:
            if self.process is None:
                self.process = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _GUARDIAN_CODE],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env={"PATH": os.environ.get("PATH", "")},
                    start_new_session=True,  # a Ctrl-C to our terminal's group must not stop it first
                )
            assert self.process.stdin is not None
            os.write(self.process.stdin.fileno(), line.encode() + b"\n")
        except OSError as exc:
            self.disabled = True
            logger.warning("Lean processes will not be killed if this server is killed with SIGKILL: %s", exc)


_GUARDIAN = _Guardian()


def register_group(pgid: int) -> None:
    """Have `kill_all_groups` (and the guardian, if we are killed) kill the group `pgid`.

    Call right after starting its leader.
    """
    with _LIVE_LOCK:
        _LIVE_GROUPS.add(pgid)
        _GUARDIAN.tell(f"+{pgid}")


def unregister_group(pgid: int) -> None:
    """Forget the group `pgid` (call once its leader is killed and reaped)."""
    with _LIVE_LOCK:
        _LIVE_GROUPS.discard(pgid)
        _GUARDIAN.tell(f"-{pgid}")


def live_groups() -> frozenset[int]:
    """The groups registered and not unregistered yet."""
    with _LIVE_LOCK:
        return frozenset(_LIVE_GROUPS)


def kill_all_groups() -> None:
    """SIGKILL every registered process group (runs at interpreter exit)."""
    for pgid in live_groups():
        kill_group(pgid)


atexit.register(kill_all_groups)


class _Spawning:
    """Groups being started and not registered yet, and a cleanup signal that arrived meanwhile."""

    count = 0
    deferred: ClassVar[list[int]] = []


@contextlib.contextmanager
def spawning() -> Iterator[None]:
    """Wrap starting a group's leader and `register_group`: a SIGTERM / SIGHUP arriving in between
    is acted on once the group is registered, so the cleanup kills that group too."""
    _Spawning.count += 1
    try:
        yield
    finally:
        _Spawning.count -= 1
        if not _Spawning.count and _Spawning.deferred:
            _cleanup_and_redeliver(_Spawning.deferred.pop(0), None)


def _cleanup_and_redeliver(signum: int, frame: FrameType | None) -> None:
    if _Spawning.count:
        _Spawning.deferred.append(signum)
        return
    kill_all_groups()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_signal_cleanup() -> None:
    """Kill the registered groups on SIGTERM/SIGHUP before dying, where those have default handling.

    Only from the main thread, and never over a handler the program installed itself. Idempotent.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signum not in _SIGNALS_ARMED and signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _cleanup_and_redeliver)
            _SIGNALS_ARMED.add(signum)
