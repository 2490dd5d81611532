"""`lean-mcp --help` and `lean-mcp COMMAND --help` work, and each lists only that command's flags."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lean_mcp._settings import KNOBS
from lean_mcp.cli import COMMANDS, OWN_FLAGS, command_knobs, main


def help_text(*argv: str) -> str:
    """`lean-mcp ARGV --help` through the real entry point, as a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "lean_mcp.cli", *argv, "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def command_help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`lean-mcp COMMAND --help` through `main`, in-process (argparse formats it the same way)."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_top_level_help_names_every_command() -> None:
    text = help_text()
    assert text.startswith("usage: lean-mcp")
    for command in COMMANDS:
        assert command in text


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_lists_exactly_its_flags(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = command_help(command, capsys)
    assert text.startswith(f"usage: lean-mcp {command}")
    flags = {word.rstrip(",") for word in text.split() if word.startswith("--")}
    wanted = set(command_knobs(command))
    for knob in KNOBS:
        if knob.name in wanted:
            assert knob.flag in flags, f"{command} --help lacks {knob.flag}"
            assert knob.env in text
        elif knob.flag not in OWN_FLAGS.get(command, ()):
            assert knob.flag not in flags, f"{command} --help lists {knob.flag}, which it does not read"


def test_every_knob_is_a_flag_of_the_server() -> None:
    assert set(command_knobs("serve")) == {k.name for k in KNOBS}


def test_serve_help_works_as_a_subprocess_too() -> None:
    text = help_text("serve")
    assert "--recycle-mb" in text and "80% of memory-mb" in text


def test_jobs_takes_only_store_flags(capsys: pytest.CaptureFixture[str]) -> None:
    text = command_help("jobs", capsys)
    assert "--backend" not in text and "--db" in text and "--prune" in text
