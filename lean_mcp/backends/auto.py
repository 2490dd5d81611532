"""Choosing and building the backend named by the settings (`--backend`)."""

from __future__ import annotations

from ..errors import ConfigurationError
from ..settings import Settings
from .base import Backend

__all__ = ["create_backend"]


def create_backend(settings: Settings) -> Backend:
    """The backend `settings.backend` names, built but not started.

    Raises ConfigurationError, saying what to install or set, when it cannot be built.
    """
    name = settings.backend
    if name == "auto":
        name = _discover(settings)
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
    raise ConfigurationError(f"Unknown backend {name!r}.")


def _discover(settings: Settings) -> str:
    """Which backend `auto` means here (the REPL pool when a REPL is configured)."""
    if settings.repl:
        return "repl"
    raise ConfigurationError("No Lean REPL configured: set --repl / LEAN_MCP_REPL.")
