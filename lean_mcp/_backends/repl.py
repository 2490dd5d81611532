"""The `repl` backend: proofs checked by a pool of Lean REPL processes (`lean_mcp._repl.pool`)."""

from __future__ import annotations

import functools
import shlex
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError
from .._models import ProofConfig, ProofResult, TacticResult, TryTacticsResult
from .._repl.pool import ReplPool
from .._repl.proof_states import ProofStateRegistry
from .._repl.tactics import TacticRunner
from .._sandbox import for_settings
from .._settings import DEFAULT_MAX_PROOF_BYTES, DEFAULT_TIMEOUT, Settings
from .._toolchain import existing_project, project_files
from .base import Backend


def repl_pool_options(settings: Settings) -> dict[str, Any]:
    """The options `settings` give a ReplBackend: its pool's (workers, limits, recycling and prestart, queue,
    prewarm, proof states, sandbox) and the tactic-size limit (`max_proof_bytes`)."""
    return {
        "workers": settings.workers,
        "limits": settings.lean_limits,
        "max_uses": settings.max_uses,
        "recycle_mb": settings.recycle_threshold_mb,
        "prestart": settings.prestart,
        "queue_timeout": settings.queue_timeout,
        "max_proof_bytes": settings.max_proof_bytes,
        "prewarm": settings.prewarm,
        "proof_states": ProofStateRegistry(ttl=settings.proof_state_ttl, max_states=settings.max_proof_states),
        "sandbox": for_settings(settings),
    }


class ReplBackend(Backend):
    """A header-reusing pool of REPLs started with `command` in `project`."""

    name = "repl"
    #: The pool class; the ray backend puts its REPLs in Ray actors with a subclass.
    pool_class: type[ReplPool] = ReplPool

    def __init__(
        self,
        command: list[str],
        *,
        project: Path,
        tactic_timeout: float = DEFAULT_TIMEOUT,
        max_proof_bytes: int = DEFAULT_MAX_PROOF_BYTES,
        **pool_options: Any,
    ) -> None:
        if not command:
            raise ConfigurationError("The REPL command is empty (--repl / LEAN_MCP_REPL).")
        self.command = list(command)
        self.project = project
        self.pool = self.pool_class(self.command, cwd=project, **pool_options)
        self.tactics = TacticRunner(self.pool, timeout=tactic_timeout, max_bytes=max_proof_bytes)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplBackend:
        """The pool `settings` describe: `repl`, `project`, `workers`, memory, recycling, prewarm, queue."""
        if not settings.repl:
            raise ConfigurationError(
                "The repl backend needs a REPL command (--repl / LEAN_MCP_REPL), "
                "e.g. `lake env /path/to/repl/.lake/build/bin/repl`."
            )
        return cls(
            settings.repl,
            project=existing_project(settings),
            tactic_timeout=settings.timeout,
            **repl_pool_options(settings),
        )

    @property
    def identity(self) -> str:
        files = project_files(self.project)
        return (
            f"repl:{self._command_text}|project={self.project}|toolchain={files.toolchain}"
            f"|files={files.fingerprint}|sandbox={self.pool.sandbox.name}"
        )

    @functools.cached_property
    def _command_text(self) -> str:
        return shlex.join(self.command)

    @property
    def capacity(self) -> int:
        return self.pool.workers

    def health(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "command": self.command,
            "project": str(self.project),
            "sandboxed": self.pool.sandbox.active,
            **self.pool.health(),
        }

    async def start(self) -> None:
        await self.pool.start()

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        """Check `code` on a REPL of its header; `config.timeout`/`memory_limit_mb` apply to it."""
        return await self.pool.check(code, config)

    async def run_tactic(self, proof_state_id: str, tactic: str, *, timeout: float | None = None) -> TacticResult:  # noqa: ASYNC109
        return await self.tactics.run_tactic(proof_state_id, tactic, timeout=timeout)

    async def try_tactics(
        self,
        proof_state_id: str,
        tactics: list[str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> TryTacticsResult:
        return await self.tactics.try_tactics(proof_state_id, tactics, timeout=timeout)
