"""One REPL process: request/response, deadline, crash report, stderr, memory of the process tree."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio
import pytest

from lean_mcp._errors import BackendUnavailableError
from lean_mcp._lean import supervise
from lean_mcp._lean.supervise import ProcessMemoryExceeded, ProcessTimeout
from lean_mcp._processes import kill_all_groups, tree_rss_mb
from lean_mcp._repl.process import ReplCrashed, ReplProcess
from lean_mcp._repl.protocol import command_request
from tests.procs import pid_alive
from tests.standin import standin_command

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

PROVED = "theorem t : True := trivial"
#: Runs the REPL as a child, the way `lake env repl` does.
WRAPPER = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"]


def first_child(pid: int) -> int:
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        if children:
            return int(children[0])
    raise AssertionError(f"{pid} has no child")


async def test_request_and_response_with_env_chaining() -> None:
    repl = await ReplProcess.start(standin_command())
    try:
        first = await repl.request(command_request("import Foo"), seconds=20)
        assert first == {"env": 0}
        second = await repl.request(command_request("theorem t : True := trivial", 0), seconds=20)
        assert second == {"env": 1}
        unknown = await repl.request(command_request(PROVED, 99), seconds=20)
        assert unknown == {"message": "Unknown environment."}
        assert repl.requests == 3 and repl.alive
    finally:
        await repl.aclose()
    assert not pid_alive(repl.pid)


async def test_deadline_kills_the_group_and_raises_timeout() -> None:
    repl = await ReplProcess.start([*WRAPPER, *standin_command()])
    try:
        await repl.request(command_request(PROVED), seconds=20)
        child = first_child(repl.pid)
        with pytest.raises(ProcessTimeout) as caught:
            await repl.request(command_request("-- standin: hang\n"), seconds=0.3)
        assert caught.value.seconds == 0.3
        assert not repl.alive
    finally:
        await repl.aclose()
    assert not pid_alive(repl.pid)
    with anyio.fail_after(10):
        while pid_alive(child):  # noqa: ASYNC110 - polling /proc
            await anyio.sleep(0.01)


async def test_exit_without_answer_is_a_crash_with_status_and_stderr_tail() -> None:
    repl = await ReplProcess.start(standin_command())
    try:
        with pytest.raises(ReplCrashed) as caught:
            await repl.request(command_request("-- standin: crash\n"), seconds=20)
        assert caught.value.returncode == 134
        assert "INTERNAL PANIC" in caught.value.stderr_tail
        assert "exited with status 134" in str(caught.value)
        with pytest.raises(ReplCrashed, match="not running"):
            await repl.request(command_request(PROVED), seconds=20)
    finally:
        await repl.aclose()


async def test_a_bad_request_kills_the_real_repl_and_reads_as_a_crash() -> None:
    """The REPL dies on a request it cannot decode (repl-protocol §1.3): the driver must see a crash."""
    repl = await ReplProcess.start(standin_command())
    try:
        with pytest.raises(ReplCrashed) as caught:
            await repl.request({"cmd": 5}, seconds=20)
        assert caught.value.returncode == 1
        assert "uncaught exception" in caught.value.stderr_tail
    finally:
        await repl.aclose()


async def test_megabytes_of_stderr_never_block_the_repl() -> None:
    repl = await ReplProcess.start(standin_command())
    try:
        for _ in range(3):
            response = await repl.request(command_request("-- standin: stderr 3000000\n" + PROVED), seconds=20)
            assert "env" in response
        assert "standin stderr noise" in repl.stderr_tail()
        assert len(repl.stderr_tail(10_000_000)) < 4_000_000  # trimmed after each request
    finally:
        await repl.aclose()


async def test_memory_of_the_whole_tree_is_watched() -> None:
    repl = await ReplProcess.start([*WRAPPER, *standin_command()])
    try:
        await repl.request(command_request("-- standin: memory 150\n" + PROVED), seconds=20)
        assert repl.last_rss_mb > 150 and tree_rss_mb(repl.pid) > 150  # the REPL is the child
        with pytest.raises(ProcessMemoryExceeded) as caught:
            await repl.request(command_request("-- standin: memory 100\n" + PROVED), seconds=20, memory_mb=200)
        assert caught.value.rss_mb > 200 and caught.value.limit_mb == 200
        assert not repl.alive
    finally:
        await repl.aclose()


async def test_the_exit_handler_kills_live_repls() -> None:
    repl = await ReplProcess.start(standin_command())
    try:
        await repl.request(command_request(PROVED), seconds=20)
        kill_all_groups()
        with pytest.raises(ReplCrashed, match="SIGKILL"):
            await repl.request(command_request(PROVED), seconds=20)
    finally:
        await repl.aclose()


NOISY_REPL = [
    sys.executable,
    "-c",
    "import sys\n"
    "env = 0\n"
    "for line in sys.stdin:\n"
    "    if line.strip():\n"
    "        print('text a Lean program printed with IO.println')\n"
    "        print('{\"env\":\\n %d}\\n' % env, flush=True)\n"
    "        env += 1\n",
]


async def test_stdout_noise_before_a_response_is_skipped() -> None:
    repl = await ReplProcess.start(NOISY_REPL)
    try:
        for env in range(3):
            assert await repl.request(command_request(PROVED), seconds=20) == {"env": env}
    finally:
        await repl.aclose()


async def test_a_missing_executable_is_backend_unavailable(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="Cannot start the REPL"):
        await ReplProcess.start([str(tmp_path / "repl")])


async def test_a_request_larger_than_the_pipe_buffer_is_written_whole() -> None:
    repl = await ReplProcess.start(standin_command())
    try:
        comment = "-- " + "x" * 2_000_000 + "\n"  # far past a pipe's 64 KiB: written as the REPL reads it
        assert await repl.request(command_request(comment + PROVED), seconds=30) == {"env": 0}
        assert await repl.request(command_request("theorem t2 : True := trivial", 0), seconds=20) == {"env": 1}
    finally:
        await repl.aclose()


async def test_a_cancelled_wait_for_an_answer_kills_the_repl_so_no_late_answer_is_read() -> None:
    repl = await ReplProcess.start(standin_command())
    try:
        with anyio.move_on_after(0.3):
            await repl.request(command_request("-- standin: work 1\n" + PROVED), seconds=20)
        assert not repl.alive  # its answer was owed: it is killed, never read by the next request
        with pytest.raises(ReplCrashed, match="is not running"):
            await repl.request(command_request(PROVED), seconds=20)
    finally:
        await repl.aclose()
    assert not pid_alive(repl.pid)


@pytest.mark.parametrize("children_files", [True, False], ids=["children-files", "proc-scan-on-a-thread"])
async def test_the_watchdog_stops_lean_while_it_works_past_the_cap_or_the_deadline(
    monkeypatch: pytest.MonkeyPatch, children_files: bool
) -> None:
    monkeypatch.setattr(supervise, "HAS_CHILDREN_FILES", children_files)
    repl = await ReplProcess.start([*WRAPPER, *standin_command()])
    try:
        started = time.monotonic()
        with pytest.raises(ProcessMemoryExceeded):
            hog = "-- standin: memory 300\n-- standin: work 8\n" + PROVED
            await repl.request(command_request(hog), seconds=20, memory_mb=200)
        assert time.monotonic() - started < 6  # a poll while Lean worked, not the sample at its answer
        assert not repl.alive
    finally:
        await repl.aclose()
    repl = await ReplProcess.start([*WRAPPER, *standin_command()])
    try:
        with pytest.raises(ProcessTimeout):
            await repl.request(command_request("-- standin: hang\n"), seconds=0.3, memory_mb=200)
        assert not repl.alive
    finally:
        await repl.aclose()
