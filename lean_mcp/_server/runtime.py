"""The composition root: settings → backend → proof service, the one place they are wired together.

Every front end (MCP, the runner, `lean-mcp check`) and the Python API (`lean_mcp.open_service`)
opens its service here.
"""

from __future__ import annotations

import contextlib
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
