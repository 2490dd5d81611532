"""`lean-mcp --help` and `lean-mcp COMMAND --help` work, and each lists only that command's flags."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lean_mcp.cli import COMMANDS, command_knobs
from lean_mcp.settings import KNOBS


def help_text(*argv: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "lean_mcp.cli", *argv, "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def test_top_level_help_names_every_command() -> None:
    text = help_text()
    assert text.startswith("usage: lean-mcp")
    for command in COMMANDS:
        assert command in text


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_lists_exactly_its_flags(command: str) -> None:
    text = help_text(command)
    assert text.startswith(f"usage: lean-mcp {command}")
    flags = {word.rstrip(",") for word in text.split() if word.startswith("--")}
    wanted = set(command_knobs(command))
    for knob in KNOBS:
        if knob.name in wanted:
            assert knob.flag in flags, f"{command} --help lacks {knob.flag}"
            assert knob.env in text
        else:
            assert knob.flag not in flags, f"{command} --help lists {knob.flag}, which it does not read"


def test_every_knob_is_a_flag_of_the_server() -> None:
    assert set(command_knobs("serve")) == {k.name for k in KNOBS}


def test_jobs_takes_only_store_flags() -> None:
    text = help_text("jobs")
    assert "--backend" not in text and "--db" in text and "--prune" in text
