"""Toolchain discovery and `--backend auto`, against fake executables laid out like a real install."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lean_mcp._backends.auto import choose_backend
from lean_mcp._errors import ConfigurationError
from lean_mcp._settings import Settings
from lean_mcp._toolchain import discover, version_of_toolchain


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_lean(directory: Path, version: str = "4.15.0") -> Path:
    return script(directory / "lean", f'echo "Lean (version {version}, x86_64-unknown-linux-gnu, Release)"\n')


@pytest.fixture(autouse=True)
def bare_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No lean, lake or repl on PATH, no ~/.elan, no LEAN_MCP_* variables."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ELAN_HOME", raising=False)
    for name in list(os.environ):
        if name.startswith("LEAN_MCP_"):
            monkeypatch.delenv(name)
    return empty


@pytest.fixture
def lake_project(tmp_path: Path) -> Path:
    """A Lake project for Lean 4.15.0 with the REPL built as a dependency."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.15.0\n")
    (project / "lakefile.lean").write_text("import Lake\n")
    repl_root = project / ".lake/packages/repl"
    script(repl_root / ".lake/build/bin/repl", "exit 0\n")
    (repl_root / "lean-toolchain").write_text("leanprover/lean4:v4.15.0\n")
    return project


@pytest.fixture
def elan_bin(tmp_path: Path) -> Path:
    """A toolchain at ~/.elan/bin: lean and lake."""
    directory = tmp_path / "home/.elan/bin"
    fake_lean(directory)
    script(directory / "lake", 'if [ "$1" = env ]; then shift; exec "$@"; fi\nexit 1\n')
    return directory


def test_auto_picks_the_repl_built_in_the_project_under_lake_env(lake_project: Path, elan_bin: Path) -> None:
    name, settings = choose_backend(Settings(project=str(lake_project)))
    assert name == "repl"
    repl = str(lake_project / ".lake/packages/repl/.lake/build/bin/repl")
    assert settings.repl == [str(elan_bin / "lake"), "env", repl]
    assert discover(settings).warnings == []


def test_a_repl_built_for_another_lean_is_warned_about_with_the_fix(lake_project: Path, elan_bin: Path) -> None:
    (lake_project / ".lake/packages/repl/lean-toolchain").write_text("leanprover/lean4:v4.9.0\n")
    found = discover(Settings(project=str(lake_project)))
    assert len(found.warnings) == 1
    warning = found.warnings[0]
    assert "4.9.0" in warning and "4.15.0" in warning
    assert "git checkout v4.15.0 && lake build" in warning


def test_a_lean_that_does_not_match_the_projects_toolchain_is_warned_about(tmp_path: Path, elan_bin: Path) -> None:
    project = tmp_path / "old"
    project.mkdir()
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.3.0\n")
    found = discover(Settings(project=str(project)))
    assert found.lean_version == "4.15.0"
    assert any("4.3.0" in w and "LEAN_MCP_LEAN" in w for w in found.warnings)


def test_configured_repl_wins_over_discovery(lake_project: Path, elan_bin: Path) -> None:
    name, settings = choose_backend(Settings(project=str(lake_project), repl=["my-repl", "--flag"]))
    assert (name, settings.repl) == ("repl", ["my-repl", "--flag"])


def test_auto_falls_back_to_the_lean_backend_when_no_repl_exists(tmp_path: Path, elan_bin: Path) -> None:
    project = tmp_path / "plain"
    project.mkdir()
    name, settings = choose_backend(Settings(project=str(project)))
    assert name == "lean"
    assert discover(settings).lean == elan_bin / "lean"


def test_elan_proxies_are_used_by_their_own_name_not_resolved(tmp_path: Path) -> None:
    # elan installs `lean` and `lake` as symlinks to `elan`, which looks at the name it was run as.
    bin_dir = tmp_path / "home/.elan/bin"
    script(bin_dir / "elan", 'case "$0" in *lean) echo "Lean (version 4.16.0, elan)";; *) exit 1;; esac\n')
    (bin_dir / "lean").symlink_to("elan")
    (bin_dir / "lake").symlink_to("elan")
    found = discover(Settings(project=str(tmp_path)))
    assert (found.lean, found.lake) == (bin_dir / "lean", bin_dir / "lake")
    assert found.lean_version == "4.16.0"


def test_lean_on_path_is_found_before_elan(tmp_path: Path, bare_machine: Path, elan_bin: Path) -> None:
    on_path = fake_lean(bare_machine, version="4.20.0")
    found = discover(Settings(project=str(tmp_path)))
    assert found.lean == on_path
    assert found.lean_version == "4.20.0"


def test_repl_on_path_is_found(tmp_path: Path, bare_machine: Path) -> None:
    repl = script(bare_machine / "repl", "exit 0\n")
    name, settings = choose_backend(Settings(project=str(tmp_path)))
    assert (name, settings.repl) == ("repl", [str(repl)])


def test_backend_repl_without_a_repl_says_what_to_build(tmp_path: Path, elan_bin: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        choose_backend(Settings(project=str(tmp_path), backend="repl"))
    assert "leanprover-community/repl" in str(caught.value)
    assert "LEAN_MCP_REPL" in str(caught.value)


def test_nothing_installed_is_a_configuration_error_naming_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        choose_backend(Settings(project=str(tmp_path)))
    text = str(caught.value)
    for needle in ("elan", "repl", "lake build", "LEAN_MCP_REPL", "LEAN_MCP_LEAN", "LEAN_MCP_PROJECT"):
        assert needle in text


def test_a_configured_lean_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-lean"
    with pytest.raises(ConfigurationError, match="LEAN_MCP_LEAN"):
        discover(Settings(project=str(tmp_path), lean=str(missing)))


def test_other_backends_are_left_alone(tmp_path: Path) -> None:
    settings = Settings(project=str(tmp_path), backend="remote", remote_url="http://127.0.0.1:9")
    assert choose_backend(settings) == ("remote", settings)


@pytest.mark.parametrize(
    ("text", "version"),
    [("leanprover/lean4:v4.15.0", "4.15.0"), ("leanprover/lean4:v4.9.0-rc1\n", "4.9.0-rc1"), ("stable", None)],
)
def test_version_of_toolchain_file(text: str, version: str | None) -> None:
    assert version_of_toolchain(text) == version


@pytest.mark.parametrize("backend", ["repl", "lean"])
def test_a_missing_project_directory_is_named_with_the_knob_to_fix(tmp_path: Path, backend: str) -> None:
    from lean_mcp._backends.auto import create_backend
    from lean_mcp._errors import ConfigurationError
    from lean_mcp._settings import Settings

    lean = tmp_path / "lean"
    lean.write_text("#!/bin/sh\necho 'Lean (version 4.35.0)'\n")
    lean.chmod(0o755)
    missing = tmp_path / "no-such-project"
    settings = Settings(backend=backend, repl=["repl"], lean=str(lean), project=str(missing))
    with pytest.raises(ConfigurationError, match=rf"{missing} does not exist \(--project / LEAN_MCP_PROJECT\)"):
        create_backend(settings)
