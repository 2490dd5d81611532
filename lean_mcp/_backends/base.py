"""The one interface every place that checks proofs implements.

A backend turns Lean text into a `ProofResult` whose status is `finished` (Lean answered:
proved, sorry or rejected) or `error` (timeout, memory limit, crash, unreachable runner).
Lean-level failures are results, never exceptions; exceptions are for "cannot serve at all"
(`BusyError`, `BackendUnavailableError`, `InvalidProofError`).
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Any, Self

from .._errors import TacticModeUnavailableError
from .._models import ProofConfig, ProofResult, TacticResult, TryTacticsResult


class Backend(abc.ABC):
    """Where a proof is checked. Use as `async with backend:`; `check` may run concurrently."""

    #: Short name shown in `/health`, `doctor` and logs ("repl", "lean", "remote", "kimina").
    name: str = "backend"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (start processes, open connections). Idempotent."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release everything: no process of ours may outlive this call."""

    @abc.abstractmethod
    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        """Check `code` and return its final result (status `finished` or `error`).

        The result is a new object the caller owns: nothing else holds it (no cache below a backend's
        `check`), so a wrapper may change it in place (the trust guard judges it again: `ProofResult.rejudge`).

        Cancelling the calling task must stop the Lean work for this proof and leave the
        backend healthy for the next one.
        """

    @property
    @abc.abstractmethod
    def identity(self) -> str:
        """What besides the text and config decides the answer (toolchain, project, command).

        Two backends with the same identity give the same answer to the same proof, so the
        result cache keys on it.
        """

    @property
    def capacity(self) -> int:
        """How many `check` calls are worth running at once."""
        return 1

    def health(self) -> dict[str, Any]:
        """A JSON-ready snapshot of the backend's real state (live processes, queue)."""
        return {"backend": self.name}

    # -- tactic mode (the `repl` backend only) -----------------------------------------------

    async def run_tactic(self, proof_state_id: str, tactic: str, *, timeout: float | None = None) -> TacticResult:  # noqa: ASYNC109 - Lean's limit for the tactic
        """Run `tactic` on a proof state a sorry of an earlier result named (`Sorry.proof_state_id`)."""
        raise self._no_tactic_mode()

    async def try_tactics(
        self,
        proof_state_id: str,
        tactics: list[str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - Lean's limit for each tactic
    ) -> TryTacticsResult:
        """Run each of `tactics` from the same proof state; one result per tactic."""
        raise self._no_tactic_mode()

    def _no_tactic_mode(self) -> TacticModeUnavailableError:
        return TacticModeUnavailableError(
            f"The `{self.name}` backend has no proof states: run_tactic and try_tactics need the `repl` backend "
            "(Lean's REPL keeps the proof state at each sorry; this backend does not)."
        )


class WrappingBackend(Backend):
    """A backend that adds to another (`inner`): lifecycle, identity, capacity and health are the inner one's."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def identity(self) -> str:
        return self.inner.identity

    @property
    def capacity(self) -> int:
        return self.inner.capacity

    def health(self) -> dict[str, Any]:
        return self.inner.health()

    async def run_tactic(self, proof_state_id: str, tactic: str, *, timeout: float | None = None) -> TacticResult:  # noqa: ASYNC109 - Lean's limit for the tactic
        return await self.inner.run_tactic(proof_state_id, tactic, timeout=timeout)

    async def try_tactics(
        self,
        proof_state_id: str,
        tactics: list[str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - Lean's limit for each tactic
    ) -> TryTacticsResult:
        return await self.inner.try_tactics(proof_state_id, tactics, timeout=timeout)
