"""lean-mcp: check Lean 4 proofs for agents and prover loops.

The public surface: the models, the errors, and the HTTP clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
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
from .models import (
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

if TYPE_CHECKING:
    from .client import AsyncLeanClient, LeanClient

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
    "ProofStateError",
    "ProofStatus",
    "ProofTooLargeError",
    "QueueFullError",
    "RateLimitedError",
    "RemoteError",
    "RunnerUnreachableError",
    "Severity",
    "Sorry",
    "TacticCheck",
    "TacticModeUnavailableError",
    "TacticResult",
    "TryTacticsResult",
    "Verdict",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The HTTP clients import httpx; load them only when asked for.
    if name in ("LeanClient", "AsyncLeanClient"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'lean_mcp' has no attribute {name!r}")
