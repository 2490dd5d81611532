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


def _stat_fields(data: bytes) -> list[bytes] | None:
    """The fields of a `/proc/PID/stat` line after the command name, [state, ppid, pgrp, ...], as far
    as the resident size (the rest unsplit); None if it is not one."""
    try:
        fields = data[data.rindex(b")") + 1 :].split(None, _RSS_FIELD + 1)
    except ValueError:
        return None
    return fields if len(fields) > _RSS_FIELD else None


def _pages(fields: list[bytes]) -> int:
    try:
        return int(fields[_RSS_FIELD])
    except ValueError:
        return 0


def _group(pgid: int) -> dict[int, list[bytes]]:
    """Every process in the process group `pgid`, each with its stat fields (a scan of /proc)."""
    found: dict[int, list[bytes]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            data = _read_file(f"/proc/{entry.name}/stat")
            fields = None if data is None else _stat_fields(data)
            if fields is not None and int(fields[2]) == pgid:
                found[int(entry.name)] = fields
    return found


def tree_pids(pid: int) -> list[int]:
    """The pids of the group leader `pid` and all its descendants, still-running orphans included."""
    with contextlib.closing(TreeMemory(pid)) as memory:
        return sorted(memory.sample())


def tree_rss_mb(pid: int) -> float:
    """Resident memory, in MB, of the group leader `pid` and all its descendants."""
    with contextlib.closing(TreeMemory(pid)) as memory:
        return memory.rss_mb()


class _Files:
    """The /proc files of one process in a tree, kept open: its stat, its main thread's children,
    and the children of each of its other threads."""

    __slots__ = ("main", "stat", "threads")

    def __init__(self, stat: int, main: int) -> None:
        self.stat, self.main = stat, main
        #: thread id (not the main thread's) → the descriptor of /proc/PID/task/TID/children
        self.threads: dict[str, int] = {}

    def close(self) -> None:
        for fd in (self.stat, self.main, *self.threads.values()):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.threads.clear()


class TreeMemory:
    """The process tree of one group leader and its resident memory, sampled again and again.

    A sample walks the tree from the leader through the kernel's children lists (each thread's
    /proc/PID/task/TID/children), reading each process's /proc/PID/stat for its state, threads and
    resident size. Every file stays open between samples: reading an open /proc file again gives
    its contents as they are now, for the process it was opened for (a reused pid is another
    process, whose files fail to read, and are opened afresh), so a sample is one `pread` per
    process and one per thread, and nothing else while the tree stays as it was.

    The tree is walked afresh on every sample, so a process that appeared since is found; files of
    processes and threads no longer in it are closed. A walk cannot see a process whose parent
    exited (it was re-parented), so when the walk is impossible (no children files), or the leader
    or any process in it has exited (zombie), the members of the process group `pid` are added (a
    scan of /proc, too dear for every poll). An orphan whose parent was already reaped inside a
    living tree is still missed, unless it was re-parented into the tree: in the sandbox, the inner
    `bwrap` is PID 1 of the proof's processes, their reaper, and part of the tree. `kill_group`
    reaches every orphan anyway. Call `close` when the leader is reaped.

    With `monitor`, the leader is bubblewrap's outer process (`--sandbox bwrap`): once it has
    started its one child in a new PID namespace (the inner `bwrap`, PID 1 of the sandbox, which
    every process of the proof descends from or is re-parented to), it only waits for that child
    to exit, and nothing inside the sandbox can reach it (it is in no namespace the sandbox sees),
    so its children cannot change until the sandbox ends. From then on a sample reads only its
    resident size (/proc/PID/statm: under half the cost of stat; all zeros once it is exiting)
    and walks the tree from the sandbox's PID 1, as before; when either of them exits, the
    sample falls back to the walk from the leader and the group scan.
    """

    def __init__(self, pid: int, *, monitor: bool = False) -> None:
        self.pid = pid
        self._files: dict[int, _Files] = {}
        self._monitor = monitor and HAS_CHILDREN_FILES
        #: (`monitor`) the sandbox's PID 1 once known, and the descriptor of the leader's statm.
        self._sandbox_init: int | None = None
        self._monitor_statm = -1

    def rss_mb(self) -> float:
        """Resident memory of the tree now, in MB."""
        return sum(self.sample().values()) * _PAGE_MB

    def sample(self) -> dict[int, int]:
        """The tree now: each process's pid → its resident pages."""
        pages: dict[int, int] = {}
        exited = False
        if HAS_CHILDREN_FILES:
            start = self.pid if self._sandbox_init is None else self._from_sandbox_init(pages)
            todo = [start]
            opened = self._files
            while todo:  # (runs after every answer: kept to a few steps per process)
                pid = todo.pop()
                if pid in pages:
                    continue
                files, data = opened.get(pid), b""
                if files is not None:
                    try:
                        data = os.pread(files.stat, 4096, 0)
                    except OSError:  # that process is gone (its pid may be someone else's now): open afresh
                        opened.pop(pid).close()
                if not data:
                    files, data = self._open(pid)
                if files is None:
                    continue
                fields = _stat_fields(data)  # [state, ppid, pgrp, ...]
                if fields is None:
                    continue
                if fields[0] in _EXITED_STATES:  # its children were handed to another parent
                    pages[pid] = _resident_pages(pid, fields)
                    exited = True
                    continue
                pages[pid] = _pages(fields)  # (what `_resident_pages` gives a process that runs)
                if fields[_THREADS_FIELD] == b"1" and not files.threads:  # its one thread is itself
                    try:
                        listed = _pread_all(files.main)
                    except OSError:  # it is gone
                        listed = b""
                    children = _ints(listed) if listed else []
                else:
                    children = _children(pid, files)
                if pid == self.pid and self._monitor and self._sandbox_init is None:
                    self._learn_sandbox_init(children)
                todo.extend(children)
            if start != self.pid and (exited or start not in pages):  # the sandbox ends
                exited = True
                self._forget_sandbox_init()
            if len(opened) > len(pages):  # some process left the tree
                for pid in [p for p in opened if p not in pages]:
                    opened.pop(pid).close()
        if exited or self.pid not in pages:
            for pid, fields in _group(self.pid).items():
                if pid not in pages:
                    pages[pid] = _resident_pages(pid, fields)
        return pages

    def _from_sandbox_init(self, pages: dict[int, int]) -> int:
        """Where this sample's walk starts: the sandbox's PID 1, with the leader's resident pages
        put in `pages`, once that child is known (`monitor`) and the leader still runs; else the leader."""
        if self._sandbox_init is None:
            return self.pid
        try:
            size, resident = os.pread(self._monitor_statm, 256, 0).split(None, 2)[:2]
        except (OSError, ValueError):
            size = b"0"
        if size == b"0":  # it is exiting (its memory is gone) or gone
            self._forget_sandbox_init()
            return self.pid
        pages[self.pid] = int(resident)
        return self._sandbox_init

    def _learn_sandbox_init(self, children: list[int]) -> None:
        """Note the leader's child when it is its only one and in a PID namespace of its own."""
        if len(children) != 1:
            return
        try:
            if os.readlink(f"/proc/{children[0]}/ns/pid") == os.readlink(f"/proc/{self.pid}/ns/pid"):
                return
            self._monitor_statm = os.open(f"/proc/{self.pid}/statm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        self._sandbox_init = children[0]

    def _forget_sandbox_init(self) -> None:
        if self._sandbox_init is not None:
            self._sandbox_init = None
            with contextlib.suppress(OSError):
                os.close(self._monitor_statm)

    def _open(self, pid: int) -> tuple[_Files | None, bytes]:
        """Open `pid`'s files, and read its stat ((None, b"") if it is gone)."""
        try:
            stat = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None, b""
        try:
            main = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(stat)
            return None, b""
        files = self._files[pid] = _Files(stat, main)
        try:
            return files, os.pread(stat, 4096, 0)
        except OSError:
            self._files.pop(pid).close()
            return None, b""

    def close(self) -> None:
        """Close every file kept open. Idempotent."""
        self._forget_sandbox_init()
        files, self._files = self._files, {}
        for entry in files.values():
            entry.close()


def _resident_pages(pid: int, fields: list[bytes]) -> int:
    """The resident pages of `pid`, whose stat `fields` were just read. When its main thread exited
    and other threads run on (a proof can arrange that), its own stat says 0 and zombie: the pages are
    read from one of those threads' stat (0 when none is left)."""
    if fields[0] not in _EXITED_STATES or fields[_THREADS_FIELD] == b"1":
        return _pages(fields)
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        if tid != str(pid):
            data = _read_file(f"/proc/{pid}/task/{tid}/stat")
            thread = None if data is None else _stat_fields(data)
            if thread is not None and thread[0] not in _EXITED_STATES:
                return _pages(thread)
    return 0


def _children(pid: int, files: _Files) -> list[int]:
    """The direct children of `pid` now, over all its threads."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    main = str(pid)
    if files.threads:
        running = set(tids)
        for gone in [tid for tid in files.threads if tid not in running]:  # threads that ended
            with contextlib.suppress(OSError):
                os.close(files.threads.pop(gone))
    children: list[int] = []
    for tid in tids:
        fd = files.main if tid == main else files.threads.get(tid)
        if fd is None:
            try:
                fd = files.threads[tid] = os.open(f"/proc/{pid}/task/{tid}/children", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:  # that thread is gone
                continue
        try:
            children.extend(_ints(_pread_all(fd)))
        except OSError:  # that thread is gone
            continue
    return children


def _ints(data: bytes) -> list[int]:
    """The pids a children file lists."""
    try:
        return [int(pid) for pid in data.split()] if data else []
    except ValueError:
        return []


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
