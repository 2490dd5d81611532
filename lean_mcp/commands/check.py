"""`lean-mcp check FILE... [--json]`: verify Lean files; exit 0 iff every file is proved.

Each file is one proof job through the proof service (so the result cache and the job store
apply). Readable output is one verdict line per file, then Lean's messages as
`path:line:col: severity: text` and the goal of each `sorry`; `--json` prints one ProofResult
JSON per line instead, in the order the files were given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio

from ..errors import InvalidProofError
from ..lean.source import read_proof_file, validate_proof_text
from ..models import ProofConfig, ProofResult, Verdict
from ..render import format_result
from ..server.runtime import open_service
from ..settings import Settings

__all__ = ["run"]

EXIT_PROVED = 0
EXIT_NOT_PROVED = 1
EXIT_USAGE = 2


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Check every file in `args.files`; print verdicts; 0 iff all proved, 1 if not, 2 if a file is unreadable."""
    paths = [str(p) for p in args.files]
    sources: list[str] = []
    config = ProofConfig()
    if getattr(args, "statement", None):
        try:
            config = ProofConfig(statement=_read_source(args.statement, settings.max_proof_bytes))
        except (OSError, UnicodeDecodeError, InvalidProofError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"lean-mcp check: cannot read the statement {args.statement}: {reason}", file=sys.stderr)
            return EXIT_USAGE
    for path in paths:
        try:
            text = _read_source(path, settings.max_proof_bytes)
            # refused before the service starts, so a bad file costs no Lean; the service trusts what this returns
            sources.append(validate_proof_text(text, settings.max_proof_bytes, allow_prelude=settings.allow_prelude))
        except InvalidProofError as exc:
            print(f"lean-mcp check: {path}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    results: list[ProofResult] = anyio.run(_check_all, settings, sources, paths, bool(args.json), config)
    return EXIT_PROVED if all(r.verdict == Verdict.PROVED for r in results) else EXIT_NOT_PROVED


def _read_source(path: str, max_bytes: int) -> str:
    """The file's text (`lean.source.read_proof_file`: a regular UTF-8 file within the size limit)."""
    return read_proof_file(path, max_bytes)


async def _check_all(
    settings: Settings, sources: Sequence[str], paths: Sequence[str], as_json: bool, config: ProofConfig
) -> list[ProofResult]:
    results: list[ProofResult] = []
    async with open_service(settings) as service:
        proofs = await service.submit_many(sources, config)
        try:
            for path, proof in zip(paths, proofs, strict=True):
                result = await service.wait(proof.id)
                print(result.model_dump_json() if as_json else format_result(path, result), flush=True)
                results.append(result)
        finally:
            with anyio.CancelScope(shield=True):  # interrupted (Ctrl-C): nobody wants the rest any more
                for proof in proofs[len(results) :]:
                    await service.cancel(proof.id)
    return results
