"""`lean-mcp doctor` with the real Lean, and on a machine with no Lean at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .cli import clean_env, lean_mcp


@pytest.mark.timeout(90)
def test_doctor_with_the_built_lean_runs_a_proof_and_exits_zero(lean_exe: Path, project: Path) -> None:
    done = lean_mcp("doctor", "--lean", str(lean_exe), cwd=project, env=clean_env(project))
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(lean_exe) in done.stdout
    assert "Lean 4.35.0" in done.stdout
    assert "backend    lean" in done.stdout
    assert "proved" in done.stdout


@pytest.mark.timeout(90)
def test_doctor_json_reports_what_was_found(lean_exe: Path, project: Path) -> None:
    env = clean_env(project, LEAN_MCP_LEAN=str(lean_exe), LEAN_MCP_DB=str(project / "jobs.sqlite3"))
    done = lean_mcp("doctor", "--json", cwd=project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["backend"] == "lean"
    assert report["toolchain"]["lean_version"] == "4.35.0"
    assert report["toolchain"]["project"] == str(project.resolve())
    assert report["store"] == str(project / "jobs.sqlite3")
    assert report["proof"]["verdict"] == "proved"


@pytest.mark.timeout(90)
def test_doctor_with_nothing_installed_exits_nonzero_and_names_what_to_install(tmp_path: Path) -> None:
    if shutil.which("lean", path="/usr/bin:/bin") or shutil.which("repl", path="/usr/bin:/bin"):
        pytest.skip("this machine has lean or repl in /usr/bin or /bin")
    done = lean_mcp("doctor", cwd=tmp_path, env=clean_env(tmp_path))
    assert done.returncode != 0
    assert "lean       not found" in done.stdout
    assert "elan" in done.stdout
    assert "LEAN_MCP_REPL" in done.stdout and "LEAN_MCP_LEAN" in done.stdout
    assert "NOT OK" in done.stdout


@pytest.mark.timeout(90)
def test_doctor_reports_a_lean_that_crashes_as_a_problem(tmp_path: Path) -> None:
    broken = tmp_path / "lean"
    broken.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "Lean (version 4.35.0)"; exit 0; fi\n'
        'echo "INTERNAL PANIC: broken install" >&2\nexit 134\n'
    )
    broken.chmod(0o755)
    done = lean_mcp("doctor", "--lean", str(broken), cwd=tmp_path, env=clean_env(tmp_path))
    assert done.returncode == 1
    assert "proof      error" in done.stdout
    assert "problem:" in done.stdout and "INTERNAL PANIC: broken install" in done.stdout
