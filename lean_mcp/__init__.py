"""lean-mcp: check Lean 4 proofs for agents and prover loops.

The public surface is `__all__` (pinned by tests/test_public_api.py): the models, the errors, the
settings, the in-process engine (`open_service`, `ProofService`, and `RayVerifier` with the [ray]
extra) and the HTTP clients. Everything else is internal and may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    AuthenticationError,
    BackendUnavailableError,
    BusyError,
    ConfigurationError,
    InvalidProofError,
    JobNotFoundError,
    LeanMCPError,
    ProofStateError,
    ProofTooLargeError,
    QueueFullError,
    RateLimitedError,
    RemoteError,
    RunnerUnreachableError,
    TacticModeUnavailableError,
)
from ._models import (
    JobStatus,
    LeanOutput,
    Message,
    Pos,
    Proof,
    ProofConfig,
    ProofResult,
    ProofStatus,
    Severity,
    Sorry,
    TacticCheck,
    TacticResult,
    TryTacticsResult,
    Verdict,
)
from ._settings import Settings

if TYPE_CHECKING:
    from ._client import AsyncLeanClient, LeanClient
    from ._jobs.service import ProofService
    from ._ray_verifier import RayVerifier
    from ._server.runtime import open_service

__version__ = "0.1.0"

__all__ = [
    "AsyncLeanClient",
    "AuthenticationError",
    "BackendUnavailableError",
    "BusyError",
    "ConfigurationError",
    "InvalidProofError",
    "JobNotFoundError",
    "JobStatus",
    "LeanClient",
    "LeanMCPError",
    "LeanOutput",
    "Message",
    "Pos",
    "Proof",
    "ProofConfig",
    "ProofResult",
    "ProofService",
    "ProofStateError",
    "ProofStatus",
    "ProofTooLargeError",
    "QueueFullError",
    "RateLimitedError",
    "RayVerifier",
    "RemoteError",
    "RunnerUnreachableError",
    "Settings",
    "Severity",
    "Sorry",
    "TacticCheck",
    "TacticModeUnavailableError",
    "TacticResult",
    "TryTacticsResult",
    "Verdict",
    "__version__",
    "open_service",
]

# Loaded on first use: the clients import httpx, the engine the whole job and backend stack.
_LAZY = {
    "AsyncLeanClient": "_client",
    "LeanClient": "_client",
    "ProofService": "_jobs.service",
    "open_service": "_server.runtime",
    "RayVerifier": "_ray_verifier",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'lean_mcp' has no attribute {name!r}")
