"""`lean-mcp check --backend ray` as a real subprocess that starts its own local Ray instance.

Every process it starts (Ray's gcs/raylet/workers, the actors, their guardians, the REPLs) inherits
a marker variable, so "nothing left running" is checked against everything it spawned, whether it
exits normally or is killed with SIGKILL mid-proof.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.test_cli_check import cli_env, write

pytest.importorskip("ray", reason='the ray tests need Ray: pip install -e ".[test]" (it brings [ray])')

# one Ray instance at a time across xdist workers (pyproject addopts)
pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("ray")]


def marked(mark: str) -> list[tuple[int, str]]:
    """Living processes whose environment holds `mark`, with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark.encode() not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append((int(entry.name), cmdline))
    return found


RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def ours_or_ray_core(mark: str) -> list[tuple[int, str]]:
    """`marked`, less Ray's two agent processes."""
    return [(pid, cmd) for pid, cmd in marked(mark) if not cmd.startswith(RAY_AGENTS)]


def wait_for(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.2)
    return False


def ray_env(tmp_path: Path) -> tuple[dict[str, str], str]:
    mark = f"lean-mcp-ray-test-{uuid.uuid4().hex}"
    env = cli_env(tmp_path)
    # LEAN_*: Lean children keep it (LEAN_MCP_* they do not); unsandboxed, so the REPL itself carries it
    env.update(LEAN_TEST_MARK=mark, LEAN_MCP_BACKEND="ray", LEAN_MCP_RAY_CPUS="0.5", LEAN_MCP_SANDBOX="none")
    return env, mark


def test_check_on_a_local_ray_leaves_nothing_running(tmp_path: Path) -> None:
    env, mark = ray_env(tmp_path)
    proved = write(tmp_path, "a.lean", "import Mathlib\ntheorem a : True := trivial\n")
    sorry = write(tmp_path, "b.lean", "import Mathlib\ntheorem b : True := by\n  sorry\n")
    done = subprocess.run(
        [sys.executable, "-m", "lean_mcp.cli", "check", proved, sorry],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 1, done.stderr
    assert f"{proved}: proved" in done.stdout and f"{sorry}: sorry" in done.stdout
    assert "Ray" not in done.stdout  # Ray's own messages go to stderr
    assert wait_for(lambda: not marked(mark), 30), f"left running: {marked(mark)}"


def test_kill_9_of_the_server_mid_proof_takes_ray_and_the_repl_with_it(tmp_path: Path) -> None:
    env, mark = ray_env(tmp_path)
    slow = write(tmp_path, "slow.lean", "import Mathlib\ntheorem s : True := trivial\n-- standin: work 120\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "lean_mcp.cli", "check", slow],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        repl_running = wait_for(lambda: any("repl_standin" in cmd for _, cmd in marked(mark)), 120)
        assert repl_running, f"the REPL never started; running: {marked(mark)}"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        # the REPL, its guardian, the actors' workers, raylet and gcs go at once ...
        assert wait_for(lambda: not ours_or_ray_core(mark), 60), f"left running after kill -9: {marked(mark)}"
        # ... Ray's agents notice their raylet is gone on their own schedule (and try to report to the dead gcs)
        assert wait_for(lambda: not marked(mark), 120), f"left running after kill -9: {marked(mark)}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid, _ in marked(mark):  # never leave strays for the next test, even when failing
            os.kill(pid, signal.SIGKILL)
