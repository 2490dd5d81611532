"""`ServiceSlot`: where the tools find the proof service, ready once it is up or holding why it never will be."""

from __future__ import annotations

import logging

import anyio

from .._errors import BackendUnavailableError, LeanMCPError
from .._jobs.service import ProofService
from .._server.runtime import open_service
from .._settings import Settings

logger = logging.getLogger(__name__)


class ServiceSlot:
    """Where the tools find the proof service: ready once it is up, or holding why it never will be.

    The server can answer `initialize` and `tools/list` while the backend is still starting, and
    keeps answering (with the reason) when no Lean is configured.
    """

    def __init__(self) -> None:
        self._ready = anyio.Event()
        self._service: ProofService | None = None
        self._error: LeanMCPError | None = None

    @classmethod
    def of(cls, service: ProofService) -> ServiceSlot:
        """A slot that holds `service` from the start."""
        slot = cls()
        slot.set(service)
        return slot

    def set(self, service: ProofService) -> None:
        """Make `service` available to the tools."""
        self._service, self._error = service, None
        self._ready.set()

    def fail(self, error: LeanMCPError) -> None:
        """Record why there is no service; every tool call will answer with this error."""
        self._service, self._error = None, error
        self._ready.set()

    async def get(self) -> ProofService:
        """The service, once ready; raises the recorded error when there is none."""
        if self._service is None:
            await self._ready.wait()
            if self._service is None:
                raise self._error or LeanMCPError("The proof service has stopped.")
        return self._service

    async def provide(self, settings: Settings, stop: anyio.Event) -> None:
        """Open the service from `settings`, publish it, and close it once `stop` is set.

        A failure to open it (no Lean found, backend cannot start) is recorded, not raised.
        """
        try:
            async with open_service(settings) as service:
                self.set(service)
                await stop.wait()
        except LeanMCPError as exc:
            logger.warning("No proof service: %s", exc)
            self.fail(exc)
        except Exception as exc:  # e.g. an unwritable job store: keep serving, and say why
            logger.exception("The proof service failed")
            error = f"The proof service could not start or stopped: {exc}."
            self.fail(BackendUnavailableError(error, hint="See the server log (stderr), and run `lean-mcp doctor`."))
        finally:
            if self._service is not None:
                self.fail(LeanMCPError("The server is shutting down."))
