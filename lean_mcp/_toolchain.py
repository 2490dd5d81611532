"""Finding the Lean toolchain on this machine: `lean`, `lake`, the project, a built REPL.

Search order (first hit wins):

- `lean`: `--lean` / `LEAN_MCP_LEAN`, then `PATH`, then `~/.elan/bin`.
- `lake`: next to the `lean` found, then `PATH`, then `~/.elan/bin`.
- the project: `--project` / `LEAN_MCP_PROJECT`, else the current directory when it is a Lean
  project, else the project `lean-mcp setup` recorded (`with_recorded_project`), else the current
  directory; its `lean-toolchain` file names the Lean version it is built for; a `lakefile.lean` /
  `lakefile.toml` makes it a Lake project (then Lean runs under `lake env`).
- the REPL: `--repl` / `LEAN_MCP_REPL`, then a REPL built in the project
  (`.lake/packages/repl/.lake/build/bin/repl`, or the project itself being the REPL), then the REPL
  `lean-mcp setup` built for the project's Lean version (in lean-mcp's cache), then `repl` on `PATH`.

Nothing here starts a proof; `lean --version` is the only process run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ._errors import ConfigurationError
from ._install.record import load_record, repl_binary
from ._settings import Settings

LAKEFILES = ("lakefile.lean", "lakefile.toml")
#: Where a REPL built as a Lake dependency of the project, or as the project itself, ends up.
REPL_BUILD_PATHS = (
    ".lake/packages/repl/.lake/build/bin/repl",
    "lake-packages/repl/build/bin/repl",
    ".lake/build/bin/repl",
)

INSTALL_HINT = (
    "Install Lean with elan (https://github.com/leanprover/elan: "
    "`curl https://elan.lean-lang.org/elan-init.sh -sSf | sh`), then either build the REPL "
    "(https://github.com/leanprover-community/repl) at your project's toolchain tag with `lake build` "
    "and set LEAN_MCP_REPL='lake env /path/to/repl/.lake/build/bin/repl' (or add `repl` as a Lake "
    "dependency of the project), or point LEAN_MCP_LEAN at a `lean` executable for the lean backend. "
    "Set LEAN_MCP_PROJECT to the Lean project directory (the one with lean-toolchain and the lakefile)."
)

_VERSION = re.compile(r"version (\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)")
_TOOLCHAIN_VERSION = re.compile(r"v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)\s*$")


@dataclasses.dataclass
class Toolchain:
    """What was found. Paths are absolute; `None` means not found."""

    project: Path
    lakefile: Path | None = None
    toolchain: str | None = None
    lean: Path | None = None
    lean_version: str | None = None
    lake: Path | None = None
    repl: list[str] | None = None
    repl_source: str | None = None
    repl_toolchain: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (paths as strings)."""
        return {
            "project": str(self.project),
            "lakefile": _str(self.lakefile),
            "toolchain": self.toolchain,
            "lean": _str(self.lean),
            "lean_version": self.lean_version,
            "lake": _str(self.lake),
            "repl": self.repl,
            "repl_source": self.repl_source,
            "repl_toolchain": self.repl_toolchain,
            "warnings": list(self.warnings),
        }


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _elan_bin() -> Path:
    return Path(os.environ.get("ELAN_HOME") or Path.home() / ".elan") / "bin"


def _executable(path: Path) -> Path | None:
    # Absolute but not resolved: elan's `lean` and `lake` are symlinks to `elan`, which dispatches on its name.
    return path.absolute() if path.is_file() and os.access(path, os.X_OK) else None


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found).absolute()
    return _executable(_elan_bin() / name)


def find_lean(settings: Settings) -> Path | None:
    """The `lean` executable: `settings.lean`, then PATH, then `~/.elan/bin`.

    Raises ConfigurationError when `settings.lean` names something that is not an executable.
    """
    if settings.lean:
        given = Path(settings.lean).expanduser()
        if os.sep not in settings.lean and not given.exists():
            found = shutil.which(settings.lean)
            if found:
                return Path(found).absolute()
        resolved = _executable(given)
        if resolved is None:
            raise ConfigurationError(f"--lean / LEAN_MCP_LEAN is {settings.lean!r}, which is not an executable file.")
        return resolved
    return _which("lean")


def find_lake(lean: Path | None) -> Path | None:
    """The `lake` executable: next to `lean`, then PATH, then `~/.elan/bin`."""
    if lean is not None:
        beside = _executable(lean.parent / "lake")
        if beside:
            return beside
    return _which("lake")


@functools.lru_cache(maxsize=32)
def lean_version(lean: Path, cwd: Path | None = None) -> str | None:
    """The version `lean --version` prints (e.g. `4.35.0`) run in `cwd`, or None when it does not run.

    `cwd` matters for elan's `lean`, which follows the `lean-toolchain` file of the directory.
    """
    try:
        done = subprocess.run(
            [str(lean), "--version"],
            capture_output=True,
            check=False,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(done.stdout)
    return match.group(1) if match else None


#: The files that decide what a project's imports mean: its Lean version, its lakefile, its dependencies' revisions.
PROJECT_FILES = ("lean-toolchain", "lake-manifest.json", *LAKEFILES)


@dataclasses.dataclass(frozen=True)
class ProjectFiles:
    """What a project's PROJECT_FILES say: a short hash of them, and the `lean-toolchain` pin."""

    fingerprint: str
    toolchain: str | None


def project_files(project: Path) -> ProjectFiles:
    """The project's ProjectFiles: a `lake update` or a new toolchain changes them.

    Costs one `stat` per file; the files are read again only when one's inode, size or mtime changed
    (this runs for every proof submitted, as part of the result cache's key).
    """
    base = os.fspath(project)
    stamps: list[tuple[str, tuple[int, int, int] | None]] = []
    for name in PROJECT_FILES:
        try:
            stat = os.stat(os.path.join(base, name))
        except OSError:
            stamps.append((name, None))
        else:
            stamps.append((name, (stat.st_ino, stat.st_size, stat.st_mtime_ns)))
    return _read_project_files(project, tuple(stamps))


def project_fingerprint(project: Path) -> str:
    """A short hash of the project's PROJECT_FILES (a `lake update` or a new toolchain changes it)."""
    return project_files(project).fingerprint


@functools.lru_cache(maxsize=64)
def _read_project_files(project: Path, stamps: tuple[tuple[str, Any], ...]) -> ProjectFiles:
    """The files' hash and the toolchain pin (cached while their inode, size and mtime stay the same)."""
    digest = hashlib.sha256()
    for name, stamp in stamps:
        try:
            data = (project / name).read_bytes() if stamp is not None else b""
        except OSError:
            data = b""
        digest.update(f"{name}:{stamp is not None}:{len(data)}:".encode() + data)
    return ProjectFiles(digest.hexdigest()[:16], read_toolchain(project))


def version_of_toolchain(toolchain: str | None) -> str | None:
    """`leanprover/lean4:v4.15.0` → `4.15.0` (None for names like `stable` or a missing file)."""
    if not toolchain:
        return None
    match = _TOOLCHAIN_VERSION.search(toolchain.strip())
    return match.group(1) if match else None


def read_toolchain(directory: Path) -> str | None:
    """The contents of `directory/lean-toolchain` (e.g. `leanprover/lean4:v4.15.0`), None when absent or empty."""
    path = directory / "lean-toolchain"
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _find_project_repl(project: Path) -> Path | None:
    for relative in REPL_BUILD_PATHS:
        found = _executable(project / relative)
        if found:
            return found
    return None


def existing_project(settings: Settings) -> Path:
    """The project directory the settings name; ConfigurationError when it does not exist."""
    project = settings.project_dir
    if not project.is_dir():
        raise ConfigurationError(f"The project directory {project} does not exist (--project / LEAN_MCP_PROJECT).")
    return project


def lakefile_of(project: Path) -> Path | None:
    """The project's lakefile (`lakefile.lean` or `lakefile.toml`), None when it is not a Lake project."""
    return next((project / name for name in LAKEFILES if (project / name).is_file()), None)


def under_lake_env(command: list[str], lake: Path | None, project: Path) -> list[str]:
    """`command` run as `lake env command` in a Lake project (so its packages are on the path), else as is."""
    if lake is not None and lakefile_of(project) is not None:
        return [str(lake), "env", *command]
    return command


def repl_command(repl: Path, lake: Path | None, project: Path) -> list[str]:
    """How to start `repl`: under `lake env` when the project is a Lake project, else directly."""
    return under_lake_env([str(repl)], lake, project)


def _repl_root(repl: Path) -> Path | None:
    """The REPL's own source checkout (…/repl/.lake/build/bin/repl → …/repl)."""
    for parent in list(repl.resolve().parents)[:5]:
        if (parent / "lean-toolchain").is_file():
            return parent
    return None


def discover(settings: Settings) -> Toolchain:
    """Look for everything, record what was found, and warn about version mismatches."""
    project = settings.project_dir
    found = Toolchain(project=project)
    found.lakefile = lakefile_of(project)
    found.toolchain = read_toolchain(project)
    found.lean = find_lean(settings)
    found.lean_version = lean_version(found.lean, project if project.is_dir() else None) if found.lean else None
    found.lake = find_lake(found.lean)
    _discover_repl(settings, found)
    found.warnings.extend(_version_warnings(found))
    return found


def with_recorded_project(settings: Settings) -> Settings:
    """`settings` with the project `lean-mcp setup` recorded, when no project is given and the
    current directory is not a Lean project (no lakefile, no lean-toolchain); else unchanged."""
    here = Path.cwd()
    if settings.project or lakefile_of(here) or (here / "lean-toolchain").is_file():
        return settings
    record = load_record()
    if record is None or not Path(record.project).is_dir():
        return settings
    return dataclasses.replace(settings, project=record.project)


def _cached_repl(toolchain: str | None) -> Path | None:
    """The REPL `lean-mcp setup` built for this toolchain's Lean version, if it is there."""
    version = version_of_toolchain(toolchain)
    return _executable(repl_binary(version)) if version else None


def _discover_repl(settings: Settings, found: Toolchain) -> None:
    repl_path: Path | None
    if settings.repl:
        found.repl, found.repl_source = list(settings.repl), "settings"
        repl_path = next((Path(a) for a in settings.repl if Path(a).name == "repl" and Path(a).is_file()), None)
    else:
        repl_path = _find_project_repl(found.project)
        source = "project"
        if repl_path is None:
            repl_path, source = _cached_repl(found.toolchain), "lean-mcp setup"
        if repl_path is None:
            repl_path, source = _which("repl"), "PATH"
        if repl_path is None:
            return
        found.repl, found.repl_source = repl_command(repl_path, found.lake, found.project), source
    root = _repl_root(repl_path) if repl_path else None
    found.repl_toolchain = read_toolchain(root) if root else None


def _version_warnings(found: Toolchain) -> list[str]:
    warnings = []
    wanted = version_of_toolchain(found.toolchain)
    repl_version = version_of_toolchain(found.repl_toolchain)
    if wanted and repl_version and wanted != repl_version:
        warnings.append(
            f"The REPL was built for Lean {repl_version} ({found.repl_toolchain}) but the project "
            f"{found.project} uses {wanted} ({found.toolchain}); a REPL only reads .olean files of its own "
            f"Lean version. Rebuild the REPL at tag v{wanted} (`git checkout v{wanted} && lake build`)."
        )
    if wanted and found.lean_version and wanted != found.lean_version:
        warnings.append(
            f"`{found.lean}` is Lean {found.lean_version} but {found.project}/lean-toolchain asks for {wanted}; "
            f"use elan's `lean` (it follows lean-toolchain) or set LEAN_MCP_LEAN to the right one."
        )
    return warnings
