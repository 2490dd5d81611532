"""Every knob: flag, environment variable and default agree, and docs/configuration.md documents them all."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from lean_mcp._errors import ConfigurationError
from lean_mcp._settings import KNOBS, Settings, knobs_markdown
from lean_mcp.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def test_dataclass_fields_are_exactly_the_knobs_with_the_same_defaults() -> None:
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert set(fields) == {k.name for k in KNOBS}
    defaults = Settings()
    for knob in KNOBS:
        expected = knob.default() if callable(knob.default) else knob.default
        assert getattr(defaults, knob.name) == expected, knob.name


def test_environment_then_flags_take_precedence() -> None:
    env = {"LEAN_MCP_WORKERS": "3", "LEAN_MCP_REPL": "lake env ./repl --flag", "LEAN_MCP_CACHE": "off"}
    settings = Settings.load(env)
    assert (settings.workers, settings.repl, settings.cache) == (3, ["lake", "env", "./repl", "--flag"], False)
    args = build_parser().parse_args(["check", "a.lean", "--workers", "5", "--prewarm", "import Mathlib;import Aesop"])
    settings = Settings.from_namespace(args, env)
    assert settings.workers == 5
    assert settings.prewarm == ["import Mathlib", "import Aesop"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEAN_MCP_WORKERS": "many"}, "LEAN_MCP_WORKERS='many' is not valid"),
        ({"LEAN_MCP_WORKERS": "0"}, "--workers (LEAN_MCP_WORKERS) must be a finite positive number"),
        ({"LEAN_MCP_TIMEOUT": "nan"}, "--timeout (LEAN_MCP_TIMEOUT) must be a finite positive number"),
        ({"LEAN_MCP_QUEUE_TIMEOUT": "inf"}, "--queue-timeout (LEAN_MCP_QUEUE_TIMEOUT) must be a finite positive"),
        ({"LEAN_MCP_BACKEND": "magic"}, "--backend must be one of"),
        ({"LEAN_MCP_BACKEND": "remote"}, "needs --remote-url"),
    ],
)
def test_bad_values_name_the_knob(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.load(env)
    assert message in str(info.value)


def test_cli_reports_a_bad_environment_value_and_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lean_mcp.cli", "jobs"],
        env={"LEAN_MCP_TIMEOUT": "soon", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "LEAN_MCP_TIMEOUT='soon' is not valid" in proc.stderr
    assert proc.stdout == ""


def test_docs_configuration_table_is_generated_from_the_knobs() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [k.env for k in KNOBS if k.env not in page]
    assert not missing, f"docs/configuration.md lacks {missing}; paste settings.knobs_markdown()"
    assert knobs_markdown() in page, "docs/configuration.md's table is stale: paste settings.knobs_markdown()"
