"""The file-path policy: a tool's `path` argument is read only inside the server's allowed roots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio

from .._errors import InvalidProofError
from .._lean.source import read_proof_file
from .._settings import DEFAULT_MAX_PROOF_BYTES


class ProofSources:
    """Turns a tool's `proof` / `path` arguments into Lean text.

    `proof` is always Lean text, whatever it looks like. A file is read only when the caller names it
    in `path`, it resolves (symlinks followed) inside one of the allowed roots, and it is within the
    proof size limit (read by `lean.source.read_proof_file`, the one proof-file reader).
    """

    def __init__(self, allowed_roots: Sequence[str | Path], max_bytes: int = DEFAULT_MAX_PROOF_BYTES) -> None:
        self.roots = [Path(root).expanduser().resolve() for root in allowed_roots]
        self.max_bytes = max_bytes

    async def text_of(self, proof: str | None, path: str | None = None) -> str:
        """The Lean text to check: `proof`, or the file at `path` (exactly one of them).

        Raises InvalidProofError when both or neither are given, or for a path that may not or cannot be read.
        """
        if (proof is None) == (path is None):
            raise InvalidProofError(
                "Give exactly one of `proof` (the Lean text) and `path` (a .lean file on the server).",
                hint="Send the proof's Lean source as `proof`.",
            )
        if proof is not None:
            return proof
        assert path is not None
        name = path.strip()
        try:
            return await self._read(name)
        except OSError as exc:
            reason = exc.strerror or str(exc)
        except (RuntimeError, ValueError) as exc:  # a symlink loop, `~user` unknown, a NUL in the name
            reason = str(exc).rstrip(".")
        raise InvalidProofError(
            f"Cannot read {name}: {reason}.", hint="Send the proof's text, or the path of a readable UTF-8 .lean file."
        )

    async def _read(self, name: str) -> str:
        path = await anyio.Path(name).expanduser()
        if not path.is_absolute() and self.roots:
            path = anyio.Path(self.roots[0]) / path
        resolved = await path.resolve()
        if not any(resolved.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(root) for root in self.roots) or "none"
            raise InvalidProofError(
                f"{name} is not inside a directory this server may read (allowed: {allowed}).",
                hint="Send the proof's text instead, or start the server with --allowed-roots including it.",
            )
        return await anyio.to_thread.run_sync(read_proof_file, str(resolved), self.max_bytes)
