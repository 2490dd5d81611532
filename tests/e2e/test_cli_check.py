"""`lean-mcp check` and `lean-mcp jobs` as real subprocesses over the REPL stand-in."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lean_mcp._models import JobStatus, ProofResult, Verdict
from tests.standin import standin_command

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]

PROVED = "theorem add_zero' (n : Nat) : n + 0 = n := rfl\n"
SORRY = "theorem two : 1 + 1 = 2 := by\n  sorry\n"
REJECTED = "theorem bad : True := trivial\n-- standin: error unknown identifier 'foo'\n"


def cli_env(tmp_path: Path, *, repl: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAN_MCP_") and k != "ELAN_HOME"}
    env.update(
        PYTHONPATH=str(REPO),
        HOME=str(tmp_path),
        LEAN_MCP_DB=str(tmp_path / "jobs.sqlite3"),
        LEAN_MCP_PROJECT=str(tmp_path),
        LEAN_MCP_WORKERS="2",
        LEAN_MCP_LOG_LEVEL="WARNING",
    )
    if repl:
        env["LEAN_MCP_REPL"] = shlex.join(standin_command())
    return env


def lean_mcp(
    tmp_path: Path, *args: str, repl: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lean_mcp.cli", *args],
        cwd=tmp_path,
        env=env or cli_env(tmp_path, repl=repl),
        capture_output=True,
        text=True,
        timeout=100,
    )


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_proved_file_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path, "good.lean", PROVED)
    done = lean_mcp(tmp_path, "check", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{path}: proved (")
    again = lean_mcp(tmp_path, "check", path)
    assert again.returncode == 0
    assert again.stdout.splitlines() == [f"{path}: proved (cached)", f"{path}: checks: lean, sorry, axioms"]


def test_a_sorry_file_exits_1_and_shows_the_goal(tmp_path: Path) -> None:
    good = write(tmp_path, "good.lean", PROVED)
    path = write(tmp_path, "two.lean", SORRY)
    done = lean_mcp(tmp_path, "check", good, path)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{good}: proved")
    assert lines[1] == f"{good}: checks: lean, sorry, axioms"
    assert f"{path}: sorry" in lines
    assert f"{path}:1:8: warning: declaration uses `sorry`" in lines
    assert any(line.startswith(f"{path}:2:2: goal:") for line in lines)
    assert any(line.strip().startswith("⊢") for line in lines)


def test_a_rejected_file_shows_lean_errors_with_positions(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.lean", REJECTED)
    done = lean_mcp(tmp_path, "check", path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == f"{path}: rejected"
    assert f"{path}:2:0: error: unknown identifier 'foo'" in done.stdout.splitlines()


def test_json_prints_one_proof_result_per_file(tmp_path: Path) -> None:
    paths = [write(tmp_path, n, t) for n, t in (("a.lean", PROVED), ("b.lean", SORRY), ("c.lean", REJECTED))]
    done = lean_mcp(tmp_path, "check", "--json", *paths)
    assert done.returncode == 1, done.stderr
    results = [ProofResult.model_validate_json(line) for line in done.stdout.splitlines()]
    assert [r.verdict for r in results] == [Verdict.PROVED, Verdict.SORRY, Verdict.REJECTED]
    assert all(r.status == JobStatus.FINISHED and r.proof_id for r in results)
    assert results[1].sorries and "⊢" in results[1].sorries[0].goal


def test_an_unreadable_file_exits_2(tmp_path: Path) -> None:
    good = write(tmp_path, "good.lean", PROVED)
    done = lean_mcp(tmp_path, "check", good, str(tmp_path / "missing.lean"))
    assert done.returncode == 2
    assert "Cannot read the proof file" in done.stderr and "missing.lean" in done.stderr
    assert done.stdout == ""


def test_a_file_that_cannot_be_checked_is_named_and_nothing_hangs(tmp_path: Path) -> None:
    good = write(tmp_path, "good.lean", PROVED)
    empty = write(tmp_path, "empty.lean", "")
    big = write(tmp_path, "big.lean", "-- x\n" * 1000)
    fifo = tmp_path / "fifo.lean"
    os.mkfifo(fifo)  # reading it would block forever
    env = {**cli_env(tmp_path), "LEAN_MCP_MAX_PROOF_BYTES": "1000"}
    for path, reason in (
        (empty, "The proof is empty"),
        (big, "the limit is 1,000 bytes"),
        (str(fifo), "not a regular file"),
    ):
        done = lean_mcp(tmp_path, "check", good, path, env=env)
        assert done.returncode == 2, (path, done.stderr)
        assert f"{path}:" in done.stderr and reason in done.stderr, done.stderr
        assert done.stdout == ""


def test_an_empty_or_missing_statement_file_is_refused_not_ignored(tmp_path: Path) -> None:
    # An empty challenge must not quietly become "no pinned statement" (and so `proved` unpinned).
    good = write(tmp_path, "good.lean", PROVED)
    empty = write(tmp_path, "challenge.lean", "")
    for statement, reason in ((empty, "The proof is empty"), (str(tmp_path / "gone.lean"), "does not exist")):
        done = lean_mcp(tmp_path, "check", "--statement", statement, good)
        assert done.returncode == 2, done.stderr
        assert f"{statement} (--statement):" in done.stderr and reason in done.stderr, done.stderr
        assert done.stdout == ""


def test_no_lean_configured_exits_2_with_the_configuration_error(tmp_path: Path) -> None:
    path = write(tmp_path, "good.lean", PROVED)
    env = cli_env(tmp_path, repl=False)
    env.update(PATH=str(Path(sys.executable).parent), LEAN_MCP_BACKEND="repl")
    done = lean_mcp(tmp_path, "check", path, env=env)
    assert done.returncode == 2
    assert "lean-mcp check:" in done.stderr and "REPL" in done.stderr
    assert done.stdout == ""


def test_jobs_lists_and_prunes(tmp_path: Path) -> None:
    paths = [write(tmp_path, f"p{i}.lean", f"theorem t{i} : True := trivial\n") for i in range(3)]
    assert lean_mcp(tmp_path, "check", *paths).returncode == 0
    listed = lean_mcp(tmp_path, "jobs", "--limit", "2")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "VERDICT", "AGE", "PROOF"]
    assert len(lines) == 3 and "finished" in lines[1] and "theorem t2 : True := trivial" in lines[1]
    rows = [json.loads(line) for line in lean_mcp(tmp_path, "jobs", "--json").stdout.splitlines()]
    assert [r["first_line"] for r in rows] == [f"theorem t{i} : True := trivial" for i in (2, 1, 0)]
    assert {r["verdict"] for r in rows} == {"proved"}
    everything = lean_mcp(tmp_path, "jobs", "--json", "--limit", "99999999999999999999")
    assert everything.returncode == 0 and len(everything.stdout.splitlines()) == 3, everything.stderr
    pruned = lean_mcp(tmp_path, "jobs", "--prune", "--retention-jobs", "1", "--json")
    assert "Pruned 2" in pruned.stderr
    assert [json.loads(line)["first_line"] for line in pruned.stdout.splitlines()] == ["theorem t2 : True := trivial"]


def test_jobs_without_a_store_says_so(tmp_path: Path) -> None:
    done = lean_mcp(tmp_path, "jobs")
    assert done.returncode == 0 and "No jobs yet" in done.stderr
    assert not (tmp_path / "jobs.sqlite3").exists()


def test_ctrl_c_cancels_the_unfinished_jobs(tmp_path: Path) -> None:
    path = write(tmp_path, "hang.lean", "theorem h : True := trivial\n-- standin: hang\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lean_mcp.cli", "check", path],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and running_jobs(tmp_path / "jobs.sqlite3") == 0:
            time.sleep(0.05)
        assert running_jobs(tmp_path / "jobs.sqlite3") == 1
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as conn:
        status, result = conn.execute("SELECT status, result FROM jobs").fetchone()
    assert status == "error" and "cancelled" in json.loads(result)["error_message"]


def running_jobs(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is being created
        return 0
