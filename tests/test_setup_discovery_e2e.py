"""What `lean-mcp setup` made is found by every command with no LEAN_MCP_* variable; explicit ones win.

One setup (fake tools, the REPL stand-in as the built REPL) per module; every command then runs from
a directory that is not a Lean project, in the same sandboxed HOME.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from lean_mcp._install.shell import Progress, render_bar
from lean_mcp._install.steps import normalize_version, repl_revision
from tests.e2e.runner_support import RunnerProcess
from tests.setup_fakes import Fakes

# on one xdist worker, so the module's fake toolchain is made once
pytestmark = [pytest.mark.timeout(120), pytest.mark.xdist_group("test_setup_discovery")]
CLI = [sys.executable, "-m", "lean_mcp.cli"]
PROVED = "theorem add_zero' (n : Nat) : n + 0 = n := rfl\n"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fakes]:
    fakes = Fakes(tmp_path_factory.mktemp("setup"))
    done = subprocess.run(
        [*CLI, "setup", "--elan-installer", str(fakes.installer)],
        cwd=fakes.root,
        env=fakes.env(),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr
    (fakes.root / "elsewhere").mkdir()
    yield fakes


def lean_mcp(fakes: Fakes, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd or fakes.root / "elsewhere",
        env=fakes.env(**env),
        capture_output=True,
        text=True,
        timeout=110,
    )


def test_doctor_finds_the_recorded_project_and_the_cached_repl(made: Fakes) -> None:
    done = lean_mcp(made, "doctor", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["backend"] == "repl"
    assert report["toolchain"]["project"] == str(made.project)
    assert report["toolchain"]["repl_source"] == "lean-mcp setup"
    assert report["toolchain"]["repl"] == [
        str(made.elan_home / "bin/lake"),
        "env",
        str(made.cache / "repl/v4.32.0/.lake/build/bin/repl"),
    ]
    assert report["toolchain"]["repl_toolchain"] == "leanprover/lean4:v4.32.0"
    assert report["warnings"] == []


def test_check_proves_a_file_with_what_setup_made(made: Fakes) -> None:
    proof = made.root / "elsewhere" / "add_zero.lean"
    proof.write_text(PROVED)
    done = lean_mcp(made, "check", str(proof))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "proved" in done.stdout.lower()


def test_the_runner_checks_proofs_with_what_setup_made(made: Fakes) -> None:
    runner = RunnerProcess(made.root / "elsewhere", made.env())
    try:
        runner.wait_ready()
        body = httpx.post(f"{runner.url}/prove/check", json={"proof": PROVED, "config": {"timeout": 30}}).json()
    finally:
        runner.stop()
    assert (body["verdict"], body["success"]) == ("proved", True), body
    assert "Using the REPL found in lean-mcp setup" in runner.log()


@asynccontextmanager
async def serve(made: Fakes) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=CLI[0], args=CLI[1:], env=made.env(), cwd=str(made.root / "elsewhere"))
    with (made.root / "server.log").open("a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


@pytest.mark.anyio
async def test_plain_lean_mcp_serves_with_what_setup_made(made: Fakes) -> None:
    async with serve(made) as session:
        result = await session.call_tool("verify_proof", {"proof": PROVED})
    assert not result.is_error
    assert isinstance(result.structured_content, dict)
    assert result.structured_content["verdict"] == "proved"


def test_an_explicit_project_wins_over_the_record(made: Fakes) -> None:
    other = made.root / "elsewhere" / "other"
    other.mkdir(exist_ok=True)
    by_flag = json.loads(lean_mcp(made, "doctor", "--json", "--project", str(other)).stdout)
    by_env = json.loads(lean_mcp(made, "doctor", "--json", LEAN_MCP_PROJECT=str(other)).stdout)
    assert by_flag["toolchain"]["project"] == by_env["toolchain"]["project"] == str(other)
    assert by_flag["toolchain"]["repl_source"] is None  # no project of a known Lean version: no cached REPL


def test_the_current_lean_project_wins_over_the_record(made: Fakes) -> None:
    here = made.root / "elsewhere" / "mine"
    here.mkdir(exist_ok=True)
    (here / "lean-toolchain").write_text("leanprover/lean4:v4.32.0\n")
    (here / "lakefile.lean").write_text("import Lake\nopen Lake DSL\npackage mine\n")
    report = json.loads(lean_mcp(made, "doctor", "--json", cwd=here).stdout)
    assert report["toolchain"]["project"] == str(here)
    assert report["toolchain"]["repl_source"] == "lean-mcp setup"  # same Lean version: the shared REPL
    assert report["ok"] is True


def test_a_record_of_a_deleted_project_is_ignored(made: Fakes, tmp_path: Path) -> None:
    record = json.loads(made.record.read_text())
    fake_home = tmp_path / "home"
    (fake_home / ".config/lean-mcp").mkdir(parents=True)
    (fake_home / ".config/lean-mcp/setup.json").write_text(json.dumps({**record, "project": str(tmp_path / "gone")}))
    report = json.loads(lean_mcp(made, "doctor", "--json", cwd=tmp_path, HOME=str(fake_home)).stdout)
    assert report["toolchain"]["project"] == str(tmp_path)


@pytest.mark.parametrize(
    ("given", "version"),
    [("4.15.0", "4.15.0"), ("v4.33.0-rc2", "4.33.0-rc2"), ("leanprover/lean4:v4.9.1", "4.9.1")],
)
def test_versions_are_read_in_every_spelling(given: str, version: str) -> None:
    assert normalize_version(given) == version


def test_untagged_repl_releases_are_pinned_by_commit() -> None:
    assert repl_revision("4.23.0") == "2f8073a"
    assert repl_revision("4.23.0-rc1") == "v4.23.0-rc1"


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, plain = Terminal(), io.StringIO()
    for out in (terminal, plain):
        progress = Progress(out)
        progress.feed("[1/4] Building A", complete_line=True)
        progress.feed("Receiving objects:  50% (2/4)", complete_line=False)
        progress.feed("warning: something", complete_line=True)
        progress.finish()
    assert plain.getvalue() == "    [1/4] Building A\n    warning: something\n"
    assert "\r" + render_bar(2, 4, "Receiving objects:  50% (2/4)") in terminal.getvalue()
    assert "    warning: something\n" in terminal.getvalue()
    assert render_bar(1, 4, "x", width=8).startswith("    [##------]  25% 1/4 x")
