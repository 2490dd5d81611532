"""Choosing and building the backend named by the settings (`--backend`).

`--backend auto` (the default) picks, in order: the REPL pool when a REPL is configured
(`--repl`) or found (built in the project, or `repl` on PATH); else the `lean` backend when a
`lean` executable is found; else it refuses with a ConfigurationError that says what to install.
"""

from __future__ import annotations

import dataclasses
import logging

from .._errors import ConfigurationError
from .._settings import Settings
from .._toolchain import INSTALL_HINT, Toolchain, discover
from .base import Backend

logger = logging.getLogger(__name__)


def create_backend(settings: Settings) -> Backend:
    """The backend `settings.backend` names, built but not started, behind the verdict checks
    (`lean_mcp._trust.guard.TrustedBackend`: refusals, axiom audit, pinned statements).

    Raises ConfigurationError, saying what to install or set, when it cannot be built.
    """
    from .._trust.guard import TrustedBackend

    return TrustedBackend(
        _create_inner(settings),
        permitted_axioms=settings.permitted_axioms,
        allow_prelude=settings.allow_prelude,
        max_proof_bytes=settings.max_proof_bytes,
    )


def _create_inner(settings: Settings) -> Backend:
    name, settings = choose_backend(settings)
    if name == "repl":
        from .repl import ReplBackend

        return ReplBackend.from_settings(settings)
    if name == "lean":
        from .lean_cli import LeanCliBackend

        return LeanCliBackend.from_settings(settings)
    if name == "remote":
        from .remote import LeanRunnerBackend

        return LeanRunnerBackend.from_settings(settings)
    if name == "kimina":
        from .remote import KiminaBackend

        return KiminaBackend.from_settings(settings)
    if name == "ray":
        from .ray_cluster import RayBackend

        return RayBackend.from_settings(settings)
    raise ConfigurationError(f"Unknown backend {name!r}.")


def choose_backend(settings: Settings, found: Toolchain | None = None) -> tuple[str, Settings]:
    """The concrete backend name for `settings`, and the settings to build it with.

    For `auto` and for `repl` without `--repl`, a discovered REPL's command is filled in; the
    returned settings name the concrete backend, so building from them needs no second discovery.
    """
    name = settings.backend
    if name not in ("auto", "repl") or (name == "repl" and settings.repl):
        return name, settings
    found = found or discover(settings)
    for warning in found.warnings:
        logger.warning("%s", warning)
    if found.repl:
        if not settings.repl:
            logger.info("Using the REPL found in %s: %s", found.repl_source, " ".join(found.repl))
        return "repl", dataclasses.replace(settings, backend="repl", repl=list(settings.repl or found.repl))
    if name == "repl":
        raise ConfigurationError(f"--backend repl needs a Lean REPL and none was configured or found. {INSTALL_HINT}")
    if found.lean is not None:
        return "lean", dataclasses.replace(settings, backend="lean")
    raise ConfigurationError(
        f"No Lean found: no REPL (--repl / LEAN_MCP_REPL) and no `lean` executable. {INSTALL_HINT}"
    )
