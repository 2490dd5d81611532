"""The composition root: settings → backend → proof service, the one place they are wired together.

Every front end (MCP, the runner, `lean-mcp check`) and the Python API (`lean_mcp.open_service`)
opens its service here.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from .._backends.auto import create_backend
from .._jobs.service import ProofService
from .._settings import Settings


@contextlib.asynccontextmanager
async def open_service(settings: Settings) -> AsyncIterator[ProofService]:
    """Build the backend the settings name, start it, and run a ProofService over it."""
    backend = create_backend(settings)
    async with backend, ProofService.from_settings(settings, backend) as service:
        yield service


#: The cyclic collector's thresholds in a server (Python's default is (700, 10, 10)).
GC_THRESHOLDS = (20_000, 20, 20)


def settle_heap() -> None:
    """Tune the cyclic garbage collector for a long-running server, once start-up is done.

    Everything alive now (modules, pydantic schemas, the backend) lives as long as the server:
    `gc.freeze` takes it out of every later collection, which would otherwise walk it again and
    again. The young generation is collected after 20,000 new objects instead of 700: reference
    counting frees almost everything a request makes, so the passes mostly found nothing, and each
    cost a walk of the objects in flight.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
