"""The canary (tests/canary/): false statements and cheats that no front end may call `proved`.

Each `NAME.lean` goes through `lean-mcp check`, the MCP server over stdio and the HTTP runner on
the real Lean (prelude files allowed); with a `NAME.statement.lean` beside it, pinned to it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from lean_mcp._client import LeanClient
from lean_mcp._errors import InvalidProofError
from lean_mcp._models import ProofConfig, ProofResult, Verdict
from tests.e2e.runner_support import running_runner

from .cli import clean_env, lean_mcp

CANARY = Path(__file__).resolve().parents[1] / "canary"


def canaries() -> list[tuple[str, str, str | None]]:
    """(name, proof, statement or None) for every canary file."""
    found = []
    for path in sorted(CANARY.glob("*.lean")):
        if path.name.endswith(".statement.lean"):
            continue
        statement = path.with_name(path.stem + ".statement.lean")
        found.append((path.stem, path.read_text(), statement.read_text() if statement.exists() else None))
    return found


def test_the_canary_has_a_file_of_every_kind() -> None:
    names = {name for name, _, _ in canaries()}
    assert {"axiom_cheat", "renamed_sorry", "warn_sorry_off", "exit", "comments_only", "own_false"} <= names
    assert {"wrong_nat_add", "namespaced", "renamed", "commented_out", "unsafe_self_call"} <= names


@pytest.mark.timeout(300)
def test_no_canary_is_proved_by_the_check_cli(lean_exe: Path, project: Path) -> None:
    env = clean_env(project, LEAN_MCP_DB=str(project / "jobs.sqlite3"))
    verdicts = {}
    for name, _, statement in canaries():
        args = ["check", "--backend", "lean", "--lean", str(lean_exe), "--json", str(CANARY / f"{name}.lean")]
        if statement is not None:
            args += ["--statement", str(CANARY / f"{name}.statement.lean")]
        done = lean_mcp(*args, cwd=project, env=env)
        assert done.returncode != 0, (name, done.stdout)
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        verdicts[name] = ProofResult.model_validate_json(lines[0]).verdict if lines else done.stderr.strip()
    assert not [name for name, verdict in verdicts.items() if verdict == Verdict.PROVED], verdicts


@pytest.mark.timeout(300)
def test_no_canary_is_proved_over_mcp_stdio(lean_exe: Path, project: Path) -> None:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    args = ["-m", "lean_mcp.cli", "serve", "--backend", "lean", "--lean", str(lean_exe)]
    env = clean_env(project, LEAN_MCP_DB=str(project / "jobs.sqlite3"))
    server = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=project)

    async def main() -> dict[str, Any]:
        answers: dict[str, Any] = {}
        with (project / "server.log").open("w") as errlog:
            async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                for name, proof, statement in canaries():
                    arguments = {"proof": proof} | ({"statement": statement} if statement else {})
                    answer = await session.call_tool("verify_proof", arguments)
                    answers[name] = "refused" if answer.is_error else answer.structured_content["verdict"]
        return answers

    answers = anyio.run(main)
    assert len(answers) == len(canaries())
    assert not [name for name, verdict in answers.items() if verdict == "proved"], answers


@pytest.mark.timeout(300)
def test_no_canary_is_proved_by_the_http_runner(lean_exe: Path, project: Path) -> None:
    env = clean_env(
        project,
        LEAN_MCP_BACKEND="lean",
        LEAN_MCP_LEAN=str(lean_exe),
        LEAN_MCP_PROJECT=str(project),
        LEAN_MCP_DB=str(project / "jobs.sqlite3"),
    )
    verdicts = {}
    with running_runner(project, env) as runner, LeanClient(runner.url, 120) as client:
        for name, proof, statement in canaries():
            try:
                verdicts[name] = client.verify(proof, ProofConfig(timeout=60, statement=statement)).verdict
            except InvalidProofError as exc:  # refused (HTTP 400) with the reason
                verdicts[name] = f"refused: {exc}"
    assert not [name for name, verdict in verdicts.items() if verdict == Verdict.PROVED], verdicts
