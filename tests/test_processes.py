"""Lean process groups: memory of a whole tree, killing a whole group, and cleanup when we exit."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from lean_mcp._processes import TreeMemory, kill_group, signal_name, tree_pids, tree_rss_mb
from lean_mcp._sandbox import resolve, why_unavailable
from tests.procs import pid_alive

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
#: A python that allocates (and touches) 200 MB, says so, and waits.
HOG = f'{sys.executable} -c \'b = b"x" * (200 * 2**20); print("ready", flush=True); import time; time.sleep(300)\''


def wait_until_gone(pid: int) -> bool:
    """Wait (up to a hang guard) for `pid` to stop running."""
    deadline = time.monotonic() + 20
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not pid_alive(pid)


def dropped_from_sample(memory: TreeMemory, pid: int) -> bool:
    """Wait (up to a hang guard) for `memory`'s sample to leave out `pid`, a killed process: until its
    parent reaps it, it is still that parent's child (a zombie), and reaping is the parent's own step."""
    deadline = time.monotonic() + 20
    while pid in memory.sample() and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid not in memory.sample()


def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


@pytest.fixture
def group() -> Iterator[list[subprocess.Popen[str]]]:
    """Started group leaders (`start_new_session`); their groups are killed after the test."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        kill_group(process.pid)
        process.wait()


def start_group(started: list[subprocess.Popen[str]], script: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    started.append(process)
    return process


def test_tree_memory_counts_a_child_under_a_shell_parent(group: list[subprocess.Popen[str]]) -> None:
    shell = start_group(group, f"{HOG}; :")  # `; :` keeps sh as the parent instead of exec-ing
    assert read_line(shell) == "ready"
    assert len(tree_pids(shell.pid)) == 2
    assert tree_rss_mb(shell.pid) > 200


def test_tree_memory_still_counts_children_of_a_leader_that_exited(group: list[subprocess.Popen[str]]) -> None:
    shell = start_group(group, f"{HOG} &")  # the shell exits at once; its child lives on in the group
    assert read_line(shell) == "ready"
    shell.wait()  # the leader is gone (reaped)
    hog = [pid for pid in tree_pids(shell.pid) if pid != shell.pid]
    assert len(hog) == 1 and pid_alive(hog[0])
    assert tree_rss_mb(shell.pid) > 200


def test_a_sample_finds_processes_started_after_the_last_one_and_drops_those_gone(
    group: list[subprocess.Popen[str]],
) -> None:
    shell = start_group(group, f"sleep 0.3; {HOG}; :")
    memory = TreeMemory(shell.pid)
    try:
        assert memory.rss_mb() < 100  # the shell and its sleep
        assert read_line(shell) == "ready"
        hog = [pid for pid in memory.sample() if pid != shell.pid]
        assert len(hog) == 1 and memory.rss_mb() > 200
        os.kill(hog[0], signal.SIGKILL)
        assert wait_until_gone(hog[0])
        assert dropped_from_sample(memory, hog[0]) and memory.rss_mb() < 100
    finally:
        memory.close()


#: A python that starts the hog from a second thread (the hog is that thread's child), then waits.
THREADED = f"""
import subprocess, sys, threading, time
def start():
    hog = subprocess.Popen({HOG!r}, shell=True, stdout=subprocess.PIPE, text=True)
    print(hog.stdout.readline().strip(), flush=True)
    time.sleep(300)
threading.Thread(target=start).start()
"""


def test_a_child_of_another_thread_is_counted_and_every_file_closed_at_the_end(
    group: list[subprocess.Popen[str]],
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", THREADED], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    group.append(parent)
    memory = TreeMemory(parent.pid)
    try:
        assert read_line(parent) == "ready"
        tree = memory.sample()
        assert len(tree) == 3 and memory.rss_mb() > 200, tree  # python, the shell, the hog
        assert proc_files_open(tree)
        hog = max(tree, key=tree.__getitem__)
        os.kill(hog, signal.SIGKILL)
        assert wait_until_gone(hog)
        assert dropped_from_sample(memory, hog) and memory.rss_mb() < 100
    finally:
        memory.close()
    assert not proc_files_open(tree)


def proc_files_open(pids: Iterable[int]) -> list[str]:
    """This process's open files under /proc/PID/ of any of `pids` (other tests' files do not count)."""
    prefixes = tuple(f"/proc/{pid}/" for pid in pids)
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            if (target := os.readlink(f"/proc/self/fd/{fd}")).startswith(prefixes):
                found.append(target)
    return found


BWRAP_WHY_NOT = why_unavailable(shutil.which("bwrap"))


def files_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the files `os.pread` reads from now on (for this test)."""
    paths: list[str] = []
    pread = os.pread

    def counting(fd: int, length: int, offset: int) -> bytes:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        return pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", counting)
    return paths


@pytest.mark.skipif(BWRAP_WHY_NOT is not None, reason=f"no working sandbox here: {BWRAP_WHY_NOT}")
def test_a_sandboxed_tree_is_walked_from_its_pid_1_and_still_counts_an_orphan_started_later(
    group: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    hog = HOG.replace(sys.executable, "/usr/bin/python3")  # what the sandbox can see
    argv = resolve("bwrap").wrap(["sh", "-c", f"read go; ({hog} &); exec sleep 300"], cwd=ROOT)
    leader = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    group.append(leader)
    memory = TreeMemory(leader.pid, monitor=True)
    try:
        deadline = time.monotonic() + 20
        while len(first := memory.sample()) < 3 and time.monotonic() < deadline:  # bwrap, its PID 1, sh
            time.sleep(0.01)
        assert len(first) == 3, first
        read = files_read(monkeypatch)
        assert memory.sample() == memory.sample()
        # of the outer bwrap, its resident size only: its children cannot change while the sandbox lives
        outer = [path for path in read if path.startswith(f"/proc/{leader.pid}/")]
        assert outer == [f"/proc/{leader.pid}/statm"] * 2, read
        assert len([path for path in read if path.endswith("/stat")]) == 2 * 2, read  # PID 1 and sh, twice
        monkeypatch.undo()
        assert leader.stdin is not None and leader.stdout is not None
        leader.stdin.write("go\n")
        leader.stdin.flush()
        assert leader.stdout.readline().strip() == "ready"  # the hog runs, an orphan of a subshell
        tree = memory.sample()
        assert len(tree) == 4 and set(tree) == set(tree_pids(leader.pid)), tree
        assert memory.rss_mb() > 200
    finally:
        memory.close()


ORPHANED_THREADS = """
import ctypes, threading, time
hog = bytearray(200 * 2**20)
for i in range(0, len(hog), 4096):
    hog[i] = 1
threading.Thread(target=time.sleep, args=(300,)).start()
print("ready", flush=True)
ctypes.CDLL(None).pthread_exit(None)  # the main thread ends; the process lives on in the other thread
"""


def test_memory_held_by_threads_whose_main_thread_exited_is_counted(group: list[subprocess.Popen[str]]) -> None:
    """A process whose main thread exited while another runs on shows as a zombie with 0 resident pages
    in its own stat; a proof could hide any amount of memory from the cap that way."""
    process = subprocess.Popen(
        [sys.executable, "-c", ORPHANED_THREADS], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    group.append(process)
    assert read_line(process) == "ready"
    deadline = time.monotonic() + 20
    stat = Path(f"/proc/{process.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the main thread did not exit"
        time.sleep(0.02)
    assert tree_rss_mb(process.pid) > 200
    with contextlib.closing(TreeMemory(process.pid)) as memory:
        assert memory.rss_mb() > 200


def test_kill_group_kills_a_grandchild(group: list[subprocess.Popen[str]]) -> None:
    shell = start_group(group, 'sh -c "sleep 300 & echo \\$!; wait"; :')
    grandchild = int(read_line(shell))
    assert grandchild in tree_pids(shell.pid) and pid_alive(grandchild)
    kill_group(shell.pid)
    assert wait_until_gone(grandchild)
    assert shell.wait() == -signal.SIGKILL
    kill_group(shell.pid)  # a group that is gone already: nothing happens


def test_signal_names_for_crash_reports() -> None:
    assert signal_name(signal.SIGKILL) == "SIGKILL"
    assert signal_name(1000) == "1000"


def run_python(code: str) -> subprocess.Popen[str]:
    """A Python interpreter running `code`, reporting on its stdout."""
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)


START_REGISTERED_SLEEP = """
import subprocess
from lean_mcp._processes import install_signal_cleanup, register_group
install_signal_cleanup()
sleep = subprocess.Popen(["sleep", "300"], start_new_session=True)
register_group(sleep.pid)
print(sleep.pid, flush=True)
"""


def test_a_registered_group_is_killed_when_the_interpreter_exits() -> None:
    interpreter = run_python(START_REGISTERED_SLEEP)
    sleep = int(read_line(interpreter))
    try:
        assert interpreter.wait() == 0
        assert wait_until_gone(sleep)
    finally:
        kill_group(sleep)


def test_a_registered_group_is_killed_when_the_interpreter_gets_sigterm() -> None:
    interpreter = run_python(START_REGISTERED_SLEEP + "import time; time.sleep(300)\n")
    sleep = int(read_line(interpreter))
    try:
        interpreter.send_signal(signal.SIGTERM)
        assert interpreter.wait() == -signal.SIGTERM
        assert wait_until_gone(sleep)
    finally:
        kill_group(sleep)


SIGTERM_WHILE_SPAWNING = """
import os, signal, subprocess
from lean_mcp._processes import install_signal_cleanup, register_group, spawning
install_signal_cleanup()
with spawning():
    sleep = subprocess.Popen(["sleep", "300"], start_new_session=True)
    print(sleep.pid, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)  # before the group is registered
    register_group(sleep.pid)
print("survived", flush=True)
"""


def test_a_sigterm_between_start_and_registration_still_kills_the_group() -> None:
    interpreter = run_python(SIGTERM_WHILE_SPAWNING)
    sleep = int(read_line(interpreter))
    try:
        assert interpreter.wait() == -signal.SIGTERM
        assert read_line(interpreter) == ""  # it died at the end of the block, not later
        assert wait_until_gone(sleep)
    finally:
        kill_group(sleep)


CHECK_WITH_A_HANGING_LEAN = """
import sys, anyio
from pathlib import Path
from lean_mcp._backends.lean_cli import LeanCliBackend
from lean_mcp._models import ProofConfig

async def main() -> None:
    fake_lean = ["sh", "-c", 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0" && exec sleep 300', sys.argv[1]]
    async with LeanCliBackend(fake_lean, project=Path(sys.argv[2])) as backend:
        await backend.check("theorem t : True := trivial", ProofConfig(timeout=300))

anyio.run(main)
"""


def test_a_lean_check_is_killed_when_the_interpreter_gets_sigterm(tmp_path: Path) -> None:
    pid_file = tmp_path / "lean.pid"
    interpreter = subprocess.Popen(
        [sys.executable, "-c", CHECK_WITH_A_HANGING_LEAN, str(pid_file), str(tmp_path)], cwd=ROOT
    )
    lean = 0
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and interpreter.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        lean = int(pid_file.read_text())
        assert pid_alive(lean)
        interpreter.send_signal(signal.SIGTERM)
        assert interpreter.wait() == -signal.SIGTERM
        assert wait_until_gone(lean)
    finally:
        interpreter.kill()
        interpreter.wait()
        if lean:
            kill_group(lean)


def test_pids_of_a_process_that_is_gone() -> None:
    process = subprocess.Popen(["true"], start_new_session=True)
    process.wait()
    assert tree_pids(process.pid) == [] and tree_rss_mb(process.pid) == 0.0
