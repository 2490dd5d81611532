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
from collections.abc import Callable, Iterator
from types import FrameType
from typing import ClassVar

#: True where the kernel lists each thread's children (/proc/PID/task/TID/children): walking a
#: tree then costs a few reads; elsewhere it is a scan of all of /proc (better done off the event loop).
HAS_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
_EXITED_STATES = (b"Z", b"X")  # zombie or dead: its children were handed to another parent
_RSS_FIELD = 21  # field 24 of /proc/PID/stat, counted from the state (field 3)
_THREADS_FIELD = 17  # field 20: num_threads


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


def _read_file(path: str) -> bytes | None:
    """The contents of a /proc file (None if it is gone)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _stat(pid: int | str, read: Callable[[str], bytes | None] = _read_file) -> list[bytes] | None:
    """`/proc/PID/stat` after the command name: [state, ppid, pgrp, ...] (None if gone)."""
    data = read(f"/proc/{pid}/stat")
    if data is None:
        return None
    try:
        return data.rsplit(b")", 1)[1].split()
    except IndexError:
        return None


def _children(pid: int, fields: list[bytes], read: Callable[[str], bytes | None] = _read_file) -> list[int]:
    """Direct children of `pid` (whose stat `fields` were just read), over all its threads ([] if it is gone)."""
    if len(fields) > _THREADS_FIELD and fields[_THREADS_FIELD] == b"1":  # its one thread is itself
        tids = [str(pid)]
    else:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return []
    children: list[int] = []
    for tid in tids:
        data = read(f"/proc/{pid}/task/{tid}/children")
        if data:
            try:  # noqa: SIM105 - a sample runs after every answer: no context manager per file
                children.extend(map(int, data.split()))
            except ValueError:
                pass
    return children


def _walk(pid: int, read: Callable[[str], bytes | None] = _read_file) -> dict[int, list[bytes]]:
    """`pid` and its living descendants, each with its stat fields."""
    found: dict[int, list[bytes]] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        fields = None if current in found else _stat(current, read)
        if fields is not None:
            found[current] = fields
            todo.extend(_children(current, fields, read))
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


def _tree(pid: int, read: Callable[[str], bytes | None] = _read_file) -> dict[int, list[bytes]]:
    """The tree of the group leader `pid`, plus its group's members where the tree misses some.

    A walk of the children links cannot see processes whose parent exited (they were re-parented),
    so when the walk is impossible, or the leader or any process in it has exited, the members of
    process group `pid` are added (a scan of /proc, too dear for every poll). An orphan whose
    parent was already reaped inside a living tree is still missed; `kill_group` reaches it anyway.
    """
    found = _walk(pid, read) if HAS_CHILDREN_FILES else {}
    if pid not in found or any(fields[0] in _EXITED_STATES for fields in found.values()):
        found.update(_group(pid))
    return found


def tree_pids(pid: int) -> list[int]:
    """The pids of the group leader `pid` and all its descendants, still-running orphans included."""
    return sorted(_tree(pid))


def tree_rss_mb(pid: int) -> float:
    """Resident memory, in MB, of the group leader `pid` and all its descendants."""
    return _rss_mb(_tree(pid))


def _rss_mb(tree: dict[int, list[bytes]]) -> float:
    pages = 0
    for fields in tree.values():
        try:  # noqa: SIM105 - as in _children
            pages += int(fields[_RSS_FIELD])
        except (IndexError, ValueError):
            pass
    return pages * _PAGE_MB


class TreeMemory:
    """`tree_rss_mb` of one group leader, sampled again and again: its /proc files stay open.

    Reading an open /proc file again gives its contents as they are now, so a sample costs a
    listing of each process's threads and a few `pread`s, not an open and a close per file. The
    tree is walked afresh on every sample (a process that appeared since is found); files of
    processes and threads no longer in it are closed. Call `close` when the leader is reaped.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        #: path → [descriptor, the sample that last read it]
        self._files: dict[str, list[int]] = {}
        self._sample = 0
        self._read_now = 0

    def rss_mb(self) -> float:
        """Resident memory of the tree now, in MB (see `tree_rss_mb`)."""
        self._sample += 1
        self._read_now = 0
        try:
            return _rss_mb(_tree(self.pid, self._read))
        finally:
            if self._read_now < len(self._files):  # some process or thread left the tree
                for path in [p for p, (_, sample) in self._files.items() if sample != self._sample]:
                    os.close(self._files.pop(path)[0])

    def _read(self, path: str) -> bytes | None:
        entry = self._files.get(path)
        if entry is not None:
            try:
                data = _pread_all(entry[0])
            except OSError:  # that process is gone (its pid may be someone else's now): open afresh
                os.close(self._files.pop(path)[0])
            else:
                if entry[1] != self._sample:
                    entry[1] = self._sample
                    self._read_now += 1
                return data
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        self._files[path] = [fd, self._sample]
        self._read_now += 1
        try:
            return _pread_all(fd)
        except OSError:
            return None

    def close(self) -> None:
        """Close every file kept open. Idempotent."""
        files, self._files = self._files, {}
        for fd, _ in files.values():
            with contextlib.suppress(OSError):
                os.close(fd)


def _pread_all(fd: int) -> bytes:
    data = os.pread(fd, 4096, 0)
    if len(data) < 4096:
        return data
    chunks = [data]
    while chunk := os.pread(fd, 65536, sum(map(len, chunks))):
        chunks.append(chunk)
    return b"".join(chunks)


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
