"""`RayVerifier`: check batches of proofs on Ray from plain synchronous code, without a server.

Made for RL reward functions and Ray jobs: it runs the same engine as `lean-mcp serve --backend
ray` (the proof service with its cache over the Ray backend) on an event loop of its own, in a
background thread, and returns the same `ProofResult`s. Inside a Ray job or task it uses the Ray
that is already running; elsewhere it joins `ray_address`, or starts a local Ray and stops it on
close. Keep one verifier for many batches: its REPLs keep their imported headers between batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import anyio.from_thread

from ._jobs.service import ProofService
from ._models import ProofConfig, ProofResult, Verdict
from ._server.runtime import open_service
from ._settings import Settings


class RayVerifier:
    """Checks batches of proofs on REPLs placed as Ray actors. Use as `with RayVerifier(...) as v:`.

    Keyword arguments are settings (`repl`, `project`, `workers`, `ray_address`, `ray_cpus`,
    `timeout`, ...; unset ones come from `LEAN_MCP_*` and the defaults); the job store defaults to
    `:memory:`. Or pass a whole `settings=Settings(...)`. The backend is always `ray`.
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        if settings is None:
            settings = Settings.load(**{"db": ":memory:", **overrides, "backend": "ray"})
        elif overrides:
            raise TypeError("Pass either settings=... or keyword settings, not both.")
        self.settings = dataclasses.replace(settings, backend="ray")
        self.settings.validate()
        self._stack: contextlib.ExitStack | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._service: ProofService | None = None

    def __enter__(self) -> Self:
        stack = contextlib.ExitStack()
        try:
            self._portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
            self._service = stack.enter_context(self._portal.wrap_async_context_manager(open_service(self.settings)))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every REPL and actor (and the local Ray, if this verifier started it). Idempotent."""
        stack, self._stack, self._portal, self._service = self._stack, None, None, None
        if stack is not None:
            stack.close()

    def verify(self, codes: Sequence[str], config: ProofConfig | None = None) -> list[ProofResult]:
        """Check every proof in `codes` (in parallel across the cluster); results in the same order.

        A text that is not a valid proof (empty, too large) gets an `error` result of its own; the
        rest of the batch is still checked.
        """
        if self._portal is None:
            raise RuntimeError("The RayVerifier is not open; use `with RayVerifier(...) as verifier:`.")
        return self._portal.call(self._verify, list(codes), config)

    async def _verify(self, codes: list[str], config: ProofConfig | None) -> list[ProofResult]:
        service = self._service
        assert service is not None
        answers = await service.check_each(codes, config)  # the service's gate: its size limit and prelude policy
        return [
            answer
            if isinstance(answer, ProofResult)
            else ProofResult.failure(Verdict.ERROR, str(answer), error_type="invalid_proof")
            for answer in answers
        ]
