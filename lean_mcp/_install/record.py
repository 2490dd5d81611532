"""Where `lean-mcp setup` keeps things, and the record of what it made.

- REPL checkouts and builds: `$XDG_CACHE_HOME/lean-mcp/repl/v<version>/` (shared by every project
  of that Lean version); the downloaded elan installer goes to `$XDG_CACHE_HOME/lean-mcp/`.
- The default project: `$XDG_DATA_HOME/lean-mcp/project/`.
- The record: `$XDG_CONFIG_HOME/lean-mcp/setup.json`: the project, its toolchain, the REPL.

Defaults: `~/.cache`, `~/.local/share`, `~/.config`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

#: Where `lake build` puts the REPL executable inside its checkout.
REPL_BINARY = Path(".lake/build/bin/repl")


def _xdg(variable: str, *default: str) -> Path:
    return Path(os.environ.get(variable) or Path.home().joinpath(*default)) / "lean-mcp"


def cache_dir() -> Path:
    """lean-mcp's cache directory (`$XDG_CACHE_HOME/lean-mcp`)."""
    return _xdg("XDG_CACHE_HOME", ".cache")


def default_project() -> Path:
    """The project setup creates when none is given and the current directory is not one."""
    return _xdg("XDG_DATA_HOME", ".local", "share") / "project"


def record_path() -> Path:
    """The record of the last successful setup (`$XDG_CONFIG_HOME/lean-mcp/setup.json`)."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "setup.json"


def elan_home() -> Path:
    """elan's home (`$ELAN_HOME`, default `~/.elan`)."""
    return Path(os.environ.get("ELAN_HOME") or Path.home() / ".elan")


def repl_checkout(version: str) -> Path:
    """The REPL source checkout for Lean `version` (e.g. `4.15.0`)."""
    return cache_dir() / "repl" / f"v{version}"


def repl_binary(version: str) -> Path:
    """The REPL executable built for Lean `version` (it may not exist yet)."""
    return repl_checkout(version) / REPL_BINARY


@dataclasses.dataclass(frozen=True)
class SetupRecord:
    """What setup made: the project, the toolchain it pins, the REPL built for it, whether Mathlib is in."""

    project: str
    toolchain: str
    repl: str
    mathlib: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return dataclasses.asdict(self)


def load_record(path: Path | None = None) -> SetupRecord | None:
    """The recorded setup, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((path or record_path()).read_text(encoding="utf-8"))
        return SetupRecord(
            project=str(data["project"]),
            toolchain=str(data["toolchain"]),
            repl=str(data["repl"]),
            mathlib=bool(data.get("mathlib", False)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_record(record: SetupRecord, path: Path | None = None) -> Path:
    """Write `record` atomically; returns the path written."""
    target = path or record_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(record.as_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, target)
    return target
