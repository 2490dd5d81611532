"""`lean-mcp setup` against fake elan / git / lake / lean and an elan installer served on 127.0.0.1.

The fakes (tests/setup_fakes.py) record every command and create what the real tools would, so
these tests see the steps, their order, their commands and directories, what a second or an
interrupted run does, and what each failure says. Then every command finds what setup made.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.setup_fakes import Fakes, serving

pytestmark = pytest.mark.timeout(120)

SETUP = [sys.executable, "-m", "lean_mcp.cli", "setup"]
#: What a fresh `setup --mathlib` changes, in order (tool and its first three arguments).
FRESH_MATHLIB = [
    "elan-init.sh -y --no-modify-path --default-toolchain",
    "elan toolchain install leanprover/lean4:v4.32.0",
    "lake update",
    "lake exe cache get",
    "git clone --progress https://github.com/leanprover-community/repl",
    "git checkout --quiet v4.32.0",
    "lake build",
]


def setup(fakes: Fakes, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`lean-mcp setup ARGS` in the sandbox (the installer from the local file unless given)."""
    if not any(a.startswith("--elan-installer") for a in args):
        args = (*args, "--elan-installer", str(fakes.installer))
    return subprocess.run(
        [*SETUP, *args], cwd=cwd or fakes.root, env=fakes.env(**env), capture_output=True, text=True, timeout=110
    )


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    return Fakes(tmp_path)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_a_fresh_setup_installs_everything_in_order_and_ends_proving(fakes: Fakes) -> None:
    with serving(fakes.installer) as url:
        done = setup(fakes, "--mathlib", "--elan-installer", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert fakes.changes() == FRESH_MATHLIB
    where = {" ".join([tool, *args[:2]]): Path(cwd) for tool, args, cwd in fakes.ran()}
    assert where["lake exe cache"] == where["lake update"] == fakes.project
    assert where["lake build"] == fakes.cache / "repl" / "v4.32.0"
    assert where["git checkout --quiet"] == fakes.cache / "repl" / "v4.32.0.partial"
    assert (fakes.project / "lean-toolchain").read_text() == "leanprover/lean4:v4.32.0\n"
    lakefile = (fakes.project / "lakefile.lean").read_text()
    assert 'require mathlib from git\n  "https://github.com/leanprover-community/mathlib4" @ "v4.32.0"' in lakefile
    assert json.loads(fakes.record.read_text()) == {
        "project": str(fakes.project),
        "toolchain": "leanprover/lean4:v4.32.0",
        "repl": str(fakes.cache / "repl/v4.32.0/.lake/build/bin/repl"),
        "mathlib": True,
    }
    lines = done.stderr.splitlines()
    assert [line for line in lines if line.startswith("[")][-1] == (
        "[8/8] Check: lean-mcp doctor and a proof that imports Mathlib"
    )
    assert "[6/8] REPL build for Lean 4.32.0: done in" in done.stderr
    assert "    [3/3] Building REPL.Part3" in lines  # the tool's own progress, shown as it comes
    assert "(from lean-mcp setup)" in done.stderr and "OK: lean-mcp can check proofs here." in done.stderr
    assert "Mathlib proof: proved" in done.stderr
    assert not list(fakes.cache.glob("repl/*.partial"))
    touched = {p.relative_to(fakes.home).parts[:2] for p in files_under(fakes.home)}
    assert touched <= {
        (".elan", "bin"),
        (".elan", "toolchains"),
        (".cache", "lean-mcp"),
        (".config", "lean-mcp"),
        (".local", "share"),
    }
    assert {p.relative_to(fakes.home / ".local/share").parts[0] for p in files_under(fakes.home / ".local/share")} == {
        "lean-mcp"
    }


def test_a_second_run_checks_everything_and_changes_nothing(fakes: Fakes) -> None:
    assert setup(fakes, "--mathlib").returncode == 0
    before = {p: p.stat().st_mtime_ns for p in files_under(fakes.project) | files_under(fakes.cache)}
    again = setup(fakes, "--mathlib")
    assert again.returncode == 0, again.stderr
    assert fakes.changes() == FRESH_MATHLIB  # nothing new ran
    assert {p: p.stat().st_mtime_ns for p in files_under(fakes.project) | files_under(fakes.cache)} == before
    for number in range(1, 8):
        assert f"[{number}/8] " in again.stderr
    assert again.stderr.count(": ok (") == 7
    assert "[3/8] Lake project" in again.stderr and "ok (already there with Mathlib)" in again.stderr
    assert "OK: lean-mcp can check proofs here." in again.stderr


def test_dry_run_lists_the_steps_and_their_commands_and_changes_nothing(fakes: Fakes) -> None:
    done = setup(fakes, "--dry-run", "--lean", "v4.20.1")
    assert done.returncode == 0, done.stderr
    assert fakes.ran() == []
    assert files_under(fakes.home) == set()
    text = done.stderr
    assert "[1/7] elan (the Lean toolchain manager): to do" in text
    assert f"sh {fakes.cache / 'elan-init.sh'} -y --no-modify-path --default-toolchain none" in text
    assert "elan toolchain install leanprover/lean4:v4.20.1" in text
    assert "git checkout 8d02513" in text  # an untagged REPL release is pinned by commit
    assert f"lake build (in {fakes.cache / 'repl' / 'v4.20.1'})" in text
    assert "[7/7] Check: lean-mcp doctor: to do" in text


# (what fails, its place in FRESH_MATHLIB, where the next run starts, the step line, the command shown)
REPL = "clone --progress https://github.com/leanprover-community/repl"
FAILURES = [
    ("elan-init", 0, 0, "[1/8] elan (the Lean toolchain manager)", "elan-init.sh -y --no-modify-path"),
    ("elan toolchain install", 1, 1, "[2/8] Lean 4.32.0 (leanprover/lean4:v4.32.0)", "toolchain install"),
    ("lake update", 2, 2, "[4/8] Mathlib and its prebuilt cache", "update` (in "),
    # the manifest is there: the next run goes straight to the cache
    ("lake exe cache get", 3, 3, "[4/8] Mathlib and its prebuilt cache", "exe cache get` (in "),
    ("git clone", 4, 4, "[5/8] REPL sources (v4.32.0)", REPL),
    # a checkout that failed is never kept: the next run clones again
    ("git checkout", 5, 4, "[5/8] REPL sources (v4.32.0)", "checkout --quiet v4.32.0` (in "),
    ("lake build", 6, 6, "[6/8] REPL build for Lean 4.32.0", "build` (in "),
]


@pytest.mark.parametrize("case", FAILURES, ids=[f[0] for f in FAILURES])
def test_a_failed_step_says_what_and_how_and_the_next_run_continues(
    fakes: Fakes, case: tuple[str, int, int, str, str]
) -> None:
    failing, failed_at, resumed_at, step, command = case
    failed = setup(fakes, "--mathlib", LEAN_FAKE_FAIL=failing)
    assert failed.returncode == 1
    assert [line for line in failed.stderr.splitlines() if line.startswith(step)][-1].endswith(": FAILED")
    assert command in failed.stderr
    assert "exited with status 1. Its last output:" in failed.stderr
    assert "simulated failure of" in failed.stderr
    assert "What to do: " in failed.stderr
    assert not fakes.record.exists()
    assert fakes.changes() == FRESH_MATHLIB[: failed_at + 1]  # nothing after the failed command ran
    resumed = setup(fakes, "--mathlib")
    assert resumed.returncode == 0, resumed.stderr
    assert fakes.changes()[failed_at + 1 :] == FRESH_MATHLIB[resumed_at:]
    assert fakes.record.exists()


def test_a_download_that_fails_names_the_url_and_what_to_do(fakes: Fakes) -> None:
    with serving(fakes.installer, status=404) as url:
        done = setup(fakes, "--elan-installer", url)
    assert done.returncode == 1
    assert "[1/7] elan (the Lean toolchain manager): FAILED" in done.stderr
    assert f"Downloading {url} failed: HTTP status 404." in done.stderr
    assert "install elan yourself" in done.stderr
    assert fakes.ran() == [] and not fakes.elan_home.exists()
    assert list(fakes.cache.glob("*partial*")) == []


@pytest.mark.parametrize("sleeping", ["git clone", "lake build"])
def test_a_killed_run_continues_where_it_stopped(fakes: Fakes, sleeping: str) -> None:
    process = subprocess.Popen(
        [*SETUP, "--elan-installer", str(fakes.installer)],
        cwd=fakes.root,
        env=fakes.env(LEAN_FAKE_SLEEP=sleeping),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not any(c.startswith(sleeping) for c in fakes.changes()):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not fakes.record.exists()
    resumed = setup(fakes)
    assert resumed.returncode == 0, resumed.stderr
    changes = fakes.changes()
    assert changes.count("elan-init.sh -y --no-modify-path --default-toolchain") == 1
    assert changes.count("elan toolchain install leanprover/lean4:v4.32.0") == 1
    assert changes.count(next(c for c in FRESH_MATHLIB if c.startswith(sleeping))) == 2
    assert (fakes.cache / "repl/v4.32.0/.lake/build/bin/repl").is_file()
    assert not (fakes.cache / "repl/v4.32.0.partial").exists()


def test_a_users_project_is_reused_at_its_own_version_and_never_rewritten(fakes: Fakes, tmp_path: Path) -> None:
    project = tmp_path / "mine"
    project.mkdir()
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.30.0\n")
    (project / "lakefile.lean").write_text("import Lake\nopen Lake DSL\npackage mine\n")
    done = setup(fakes, cwd=project)  # the current directory is a Lake project: it is the one
    assert done.returncode == 0, done.stderr
    assert "lean-mcp setup: Lean 4.30.0, project " + str(project) in done.stderr
    assert "git checkout --quiet v4.30.0" in fakes.changes()
    assert (project / "lakefile.lean").read_text() == "import Lake\nopen Lake DSL\npackage mine\n"
    assert json.loads(fakes.record.read_text())["project"] == str(project)

    other_version = setup(fakes, "--project", str(project), "--lean", "4.32.0")
    assert other_version.returncode == 1
    assert f"The project {project} pins leanprover/lean4:v4.30.0 (lean-toolchain), not leanprover/lean4:v4.32.0" in (
        other_version.stderr
    )
    no_mathlib = setup(fakes, "--project", str(project), "--mathlib")
    assert no_mathlib.returncode == 1
    assert 'require mathlib from git "https://github.com/leanprover-community/mathlib4" @ "v4.30.0"' in (
        no_mathlib.stderr
    )
    assert (project / "lean-toolchain").read_text() == "leanprover/lean4:v4.30.0\n"


def test_a_project_setup_wrote_follows_a_new_version(fakes: Fakes) -> None:
    assert setup(fakes).returncode == 0
    moved = setup(fakes, "--lean", "4.31.0", "--mathlib")
    assert moved.returncode == 0, moved.stderr
    assert (fakes.project / "lean-toolchain").read_text() == "leanprover/lean4:v4.31.0\n"
    assert '@ "v4.31.0"' in (fakes.project / "lakefile.lean").read_text()
    assert json.loads(fakes.record.read_text())["toolchain"] == "leanprover/lean4:v4.31.0"
    assert (fakes.cache / "repl/v4.32.0").is_dir() and (fakes.cache / "repl/v4.31.0").is_dir()
    again = setup(fakes, "--lean", "4.30.0", "--mathlib")  # Mathlib is resolved again at the new tag
    assert again.returncode == 0, again.stderr
    assert fakes.changes().count("lake update") == fakes.changes().count("lake exe cache get") == 2
    assert fakes.changes()[-3:] == [
        "git clone --progress https://github.com/leanprover-community/repl",
        "git checkout --quiet v4.30.0",
        "lake build",
    ]


def test_a_directory_that_is_not_a_project_is_left_alone(fakes: Fakes, tmp_path: Path) -> None:
    stuff = tmp_path / "stuff"
    stuff.mkdir()
    (stuff / "notes.txt").write_text("mine")
    done = setup(fakes, "--project", str(stuff))
    assert done.returncode == 1
    assert f"{stuff} is not empty and is not a Lake project (no lakefile)." in done.stderr
    assert [p.name for p in stuff.iterdir()] == ["notes.txt"]


def test_a_repl_checkout_for_another_version_is_refused(fakes: Fakes) -> None:
    done = setup(fakes, LEAN_FAKE_REPL_TOOLCHAIN="leanprover/lean4:v4.33.0-rc2")
    assert done.returncode == 1
    assert "The REPL at v4.32.0 is for leanprover/lean4:v4.33.0-rc2, not leanprover/lean4:v4.32.0." in done.stderr
    assert not (fakes.cache / "repl/v4.32.0").exists()


@pytest.mark.parametrize("flag", ["--lean=4.x", "--lean=stable"])
def test_a_bad_version_is_a_usage_error(fakes: Fakes, flag: str) -> None:
    done = setup(fakes, flag)
    assert done.returncode == 2
    assert "is not a Lean release; give one like 4.32.0" in done.stderr
    assert fakes.ran() == []


def test_ctrl_c_stops_the_tool_and_says_how_to_continue(fakes: Fakes) -> None:
    process = subprocess.Popen(
        [*SETUP, "--elan-installer", str(fakes.installer)],
        cwd=fakes.root,
        env=fakes.env(LEAN_FAKE_SLEEP="lake build"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while "lake build" not in fakes.changes():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal sends to the whole foreground group
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "interrupted. Run it again to continue where it stopped." in stderr
    assert setup(fakes).returncode == 0
