"""`lean-mcp doctor` with a REPL: configured, found in the project (with a version mismatch), broken.

The REPL here is the protocol-faithful stand-in; the real-Lean doctor tests are in tests/real_lean/.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from tests.real_lean.cli import clean_env, lean_mcp
from tests.standin import standin_command


@pytest.mark.timeout(90)
def test_doctor_with_a_configured_repl_runs_a_proof_through_the_pool(tmp_path: Path) -> None:
    env = clean_env(tmp_path, LEAN_MCP_REPL=shlex.join(standin_command()), LEAN_MCP_WORKERS="1")
    done = lean_mcp("doctor", "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["backend"] == "repl"
    assert report["toolchain"]["repl_source"] == "settings"
    assert report["proof"]["verdict"] == "proved"


@pytest.mark.timeout(90)
def test_doctor_finds_the_repl_built_in_the_project_and_warns_of_a_version_mismatch(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    repl_root = project / ".lake/packages/repl"
    repl = repl_root / ".lake/build/bin/repl"
    repl.parent.mkdir(parents=True)
    repl.write_text(f'#!/bin/sh\nexec {shlex.join(standin_command())} "$@"\n')
    repl.chmod(0o755)
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.15.0\n")
    (repl_root / "lean-toolchain").write_text("leanprover/lean4:v4.9.0\n")

    # unsandboxed: the wrapper script runs a Python its command does not name (see docs/sandbox.md)
    done = lean_mcp("doctor", "--workers", "1", cwd=project, env=clean_env(tmp_path, LEAN_MCP_SANDBOX="none"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"REPL       {repl} (from project)" in done.stdout
    assert "backend    repl" in done.stdout
    assert "proof      proved" in done.stdout
    assert "warning: The REPL was built for Lean 4.9.0" in done.stdout
    assert "git checkout v4.15.0 && lake build" in done.stdout


@pytest.mark.timeout(90)
def test_doctor_with_a_broken_repl_exits_nonzero_with_a_problem(tmp_path: Path) -> None:
    broken = f"{sys.executable} -c 'import sys; sys.exit(3)'"
    env = clean_env(tmp_path, LEAN_MCP_REPL=broken, LEAN_MCP_WORKERS="1", LEAN_MCP_TIMEOUT="20")
    done = lean_mcp("doctor", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "problem:" in done.stdout
    assert "NOT OK" in done.stdout
