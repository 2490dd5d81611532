"""Where proofs are checked: the Backend interface and its implementations."""

from .base import Backend

__all__ = ["Backend"]
