"""Every snippet in README.md and docs/*.md runs as written, on a machine without Lean.

The convention (docs/development.md): a fenced ```bash or ```python block is run; a ```shell block
is not, and must follow a `<!-- not run: REASON -->` line. A `<!-- needs: runner -->` line before a
block starts `lean-mcp runner` for it. Each block runs in a fresh directory (with `tests/` and
`examples/` linked in) where `lean-mcp` is the checkout's CLI, Lean is the REPL stand-in
(LEAN_MCP_REPL), the job store is private, and the runner port is free (LEAN_MCP_PORT, LEAN_MCP_URL).
A bash command may exit 1 (`lean-mcp check` on a proof that is not proved); 2 and above fail the
block. Comment lines right after a command are its expected output and must appear in stdout.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.e2e.runner_support import REPO, free_port, running_runner
from tests.standin import standin_command

pytestmark = pytest.mark.timeout(180)

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN = ("bash", "python")
NOT_RUN = re.compile(r"<!-- not run: .+ -->")
FENCE = re.compile(r"^```(\w*).*$")


@dataclasses.dataclass
class Block:
    page: Path
    line: int
    language: str
    code: str
    note: str  # the line before the fence, if it is an HTML comment

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> Iterator[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        before = lines[index - 1].strip() if index else ""
        note = before if before.startswith("<!--") else ""
        yield Block(page, index + 1, match.group(1), "\n".join(lines[index + 1 : end]) + "\n", note)
        index = end + 1


ALL = [block for page in PAGES for block in blocks(page)]
RUNNABLE = [block for block in ALL if block.language in RUN]


def test_the_readme_fits_on_a_screen_or_two() -> None:
    assert len((REPO / "README.md").read_bytes()) <= 10 * 1024


def test_the_readme_test_command_is_what_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f'pip install -e ".[test]" && {ci}\n' in readme


def test_every_block_is_run_or_says_why_not() -> None:
    for block in ALL:
        # Only these: a ```sh or ```console block would silently never run.
        assert block.language in (*RUN, "shell", "json", "text", "lean"), (
            f"{block.id}: fence language {block.language!r}"
        )
        if block.language == "shell":
            assert NOT_RUN.fullmatch(block.note), f"{block.id}: a ```shell block needs <!-- not run: REASON -->"
        elif block.note:
            assert not block.note.startswith("<!-- not run"), f"{block.id}: a not-run block must be ```shell"
    assert len(RUNNABLE) >= 8


def test_docs_links_resolve() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to missing {target}"


@pytest.fixture
def workdir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh directory and environment in which the docs' commands run as a reader's would."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("tests", "examples"):
        (work / name).symlink_to(REPO / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shims = {"lean-mcp": f'exec {shlex.quote(sys.executable)} -m lean_mcp.cli "$@"'}
    shims.update({name: f'exec {shlex.quote(sys.executable)} "$@"' for name in ("python", "python3")})
    for name, body in shims.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAN_MCP_") and k != "ELAN_HOME"}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(REPO),
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        LEAN_MCP_REPL=shlex.join(standin_command()),
        LEAN_MCP_WORKERS="2",
        # The python shims above are wrapper scripts: a sandboxed REPL sees only what its command names.
        LEAN_MCP_SANDBOX_PATHS=";".join(dict.fromkeys([sys.prefix, sys.base_prefix])),
        LEAN_MCP_PORT=str(port),
        LEAN_MCP_URL=f"http://127.0.0.1:{port}",
    )
    return work, env


@contextmanager
def maybe_runner(block: Block, work: Path, env: dict[str, str]) -> Iterator[None]:
    if block.note != "<!-- needs: runner -->":
        yield
        return
    runner_dir = work.parent / "runner"
    runner_dir.mkdir()
    runner_env = {**env, "LEAN_MCP_DB": str(runner_dir / "jobs.sqlite3")}
    with running_runner(runner_dir, runner_env, port=int(env["LEAN_MCP_PORT"])):
        yield


def expected_output(code: str) -> list[str]:
    """Comment lines that directly follow a command line (or its output): what the command prints."""
    expected: list[str] = []
    previous = "other"
    for line in code.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and previous in ("command", "output"):
            expected.append(stripped.removeprefix("#").strip())
            previous = "output"
        elif stripped and not stripped.startswith("#"):
            previous = "command"
        else:
            previous = "other"
    return expected


BASH_PREAMBLE = (
    "set -o pipefail\ntrap 'rc=$?; if [ $rc -gt 1 ]; then echo \"exit $rc: $BASH_COMMAND\" >&2; exit $rc; fi' ERR\n"
)


def param(block: Block) -> object:
    """A block as a test case; one that starts Ray joins the Ray tests' xdist group (one Ray at a time)."""
    starts_ray = re.search(r"--backend ray|\bRay[A-Z]", block.code) is not None
    return pytest.param(block, id=block.id, marks=[pytest.mark.xdist_group("ray")] if starts_ray else [])


@pytest.mark.parametrize("block", [param(block) for block in RUNNABLE])
def test_snippet_runs_as_written(block: Block, workdir: tuple[Path, dict[str, str]]) -> None:
    work, env = workdir
    if block.language == "bash":
        script = work.parent / "snippet.sh"
        script.write_text(BASH_PREAMBLE + block.code + "exit 0\n")
        argv = ["bash", str(script)]
    else:
        script = work.parent / "snippet.py"
        script.write_text(block.code)
        argv = [sys.executable, str(script)]
    with maybe_runner(block, work, env):
        process = subprocess.Popen(
            argv,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own group: a server it left behind is killed with it
        )
        try:
            out, err = process.communicate(timeout=150)
        finally:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, f"{block.id} exited {process.returncode}\n{block.code}\n--- stderr\n{err}"
    assert "Traceback" not in err, f"{block.id}\n{err}"
    for line in expected_output(block.code):
        assert line in out, f"{block.id}: expected {line!r} in the output\n--- stdout\n{out}"
