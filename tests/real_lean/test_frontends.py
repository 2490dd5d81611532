"""The front ends over the real Lean: `lean-mcp check --backend lean` and the MCP server over stdio."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from lean_mcp._models import ProofResult, Verdict

from . import proofs
from .cli import clean_env, lean_mcp


def needs_command(name: str) -> None:
    if importlib.util.find_spec(f"lean_mcp._commands.{name}") is None:
        pytest.skip(f"lean_mcp/_commands/{name}.py has not landed yet")


@pytest.mark.timeout(120)
def test_check_cli_with_the_lean_backend(lean_exe: Path, project: Path) -> None:
    needs_command("check")
    good, bad, sorry = project / "good.lean", project / "bad.lean", project / "sorry.lean"
    good.write_text(proofs.PROVED)
    bad.write_text(proofs.REJECTED)
    sorry.write_text(proofs.SORRY)
    env = clean_env(project, LEAN_MCP_DB=str(project / "jobs.sqlite3"))
    flags = ("--backend", "lean", "--lean", str(lean_exe))

    ok = lean_mcp("check", *flags, str(good), cwd=project, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{good}: proved" in ok.stdout

    column = proofs.REJECTED.splitlines()[8].index("Eq.refl")
    rejected = lean_mcp("check", *flags, str(bad), cwd=project, env=env)
    assert rejected.returncode == 1
    assert f"{bad}:9:{column}: error: Type mismatch" in rejected.stdout

    done = lean_mcp("check", *flags, "--json", str(good), str(bad), str(sorry), cwd=project, env=env)
    assert done.returncode != 0
    results = [ProofResult.model_validate_json(line) for line in done.stdout.splitlines() if line.strip()]
    assert [r.verdict for r in results] == [Verdict.PROVED, Verdict.REJECTED, Verdict.SORRY]
    first = results[1].messages[0]
    assert (first.pos.line, first.pos.column) == (9, column)


def _tool_result(result: Any) -> dict[str, Any]:
    """The tool's structured ProofResult."""
    assert not result.is_error, result.content
    data: dict[str, Any] = result.structured_content
    assert isinstance(data, dict), result
    return data


@pytest.mark.timeout(120)
def test_mcp_server_with_the_lean_backend_answers_a_real_proof(lean_exe: Path, project: Path) -> None:
    needs_command("serve")
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    args = ["-m", "lean_mcp.cli", "serve", "--backend", "lean", "--lean", str(lean_exe)]
    env = clean_env(project, LEAN_MCP_DB=str(project / "jobs.sqlite3"))
    server = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=project)

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        with (project / "server.log").open("w") as errlog:
            async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                tools = {t.name: t for t in (await session.list_tools()).tools}
                key = "proof"
                assert key in tools["verify_proof"].input_schema["properties"]
                good = await session.call_tool("verify_proof", {key: proofs.PROVED})
                bad = await session.call_tool("verify_proof", {key: proofs.REJECTED})
                return _tool_result(good), _tool_result(bad)

    good, bad = anyio.run(main)
    assert good["verdict"] == "proved" and good["success"] is True
    assert bad["verdict"] == "rejected" and bad["success"] is False
    messages = bad["result"]["messages"]
    assert messages[0]["pos"] == {"line": 9, "column": proofs.REJECTED.splitlines()[8].index("Eq.refl")}
