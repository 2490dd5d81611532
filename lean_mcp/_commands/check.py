"""`lean-mcp check FILE... [--json]`: verify Lean files; exit 0 iff every file is proved.

Each file is one proof job through the proof service (so the result cache and the job store
apply). Readable output is one verdict line per file, then Lean's messages as
`path:line:col: severity: text` and the goal of each `sorry`; `--json` prints one ProofResult
JSON per line instead, in the order the files were given.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

import anyio

from .._errors import InvalidProofError
from .._jobs.service import ProofService
from .._lean.source import READ_HINT, CheckedProof, read_proof_file
from .._models import ProofConfig, ProofResult, Verdict
from .._render import format_result
from .._server.runtime import open_service
from .._settings import Settings

EXIT_PROVED = 0
EXIT_NOT_PROVED = 1
EXIT_USAGE = 2


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Check every file in `args.files`; print verdicts; 0 iff all proved, 1 if not, 2 if a file cannot be checked.

    Files are read by `lean.source.read_proof_file` (the one proof-file reader) and refused by the
    service's own gate (`ProofService.validate`) before any is submitted; each error names the file.
    """
    paths = [str(p) for p in args.files]
    statement_path: str | None = getattr(args, "statement", None)
    try:
        statement = _read(statement_path, settings, name=_statement_name(statement_path)) if statement_path else None
        sources = [_read(path, settings) for path in paths]
        files = _Files(paths, sources, statement_path, statement)
        results: list[ProofResult] = anyio.run(_check_all, settings, files, bool(args.json))
    except _FileError as exc:
        print(f"lean-mcp check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_PROVED if all(r.verdict == Verdict.PROVED for r in results) else EXIT_NOT_PROVED


#: What to do about a file that cannot be checked, said to a command-line user.
_FILE_HINT = "Pass Lean files: regular UTF-8 files within --max-proof-bytes."


class _FileError(Exception):
    """A file that cannot be checked: which file, what is wrong, what to do."""


@dataclasses.dataclass(frozen=True)
class _Files:
    paths: Sequence[str]
    sources: Sequence[str]
    statement_path: str | None
    statement: str | None


def _read(path: str, settings: Settings, *, name: str | None = None) -> str:
    try:
        return read_proof_file(path, settings.max_proof_bytes)
    except InvalidProofError as exc:
        raise _FileError(f"{name or path}: {exc.message} {_hint(exc)}") from None


def _validate(service: ProofService, files: _Files) -> list[CheckedProof]:
    """Each file through the service's gate (the one rule set for proof text), named when refused;
    returns the files' checked texts (submitted as they are, not scanned again)."""
    if files.statement_path is not None and files.statement is not None:
        _validated(service, _statement_name(files.statement_path), files.statement)
    return [_validated(service, path, code) for path, code in zip(files.paths, files.sources, strict=True)]


def _validated(service: ProofService, name: str, code: str) -> CheckedProof:
    try:
        return service.validate(code)
    except InvalidProofError as exc:
        raise _FileError(f"{name}: {exc.message} {_hint(exc)}") from None


def _statement_name(path: str) -> str:
    return f"{path} (--statement)"


def _hint(exc: InvalidProofError) -> str:
    """The error's own hint when it is specific, else what to do with a file (not "send the text")."""
    return _FILE_HINT if exc.hint in (InvalidProofError.hint, READ_HINT) else exc.hint


async def _check_all(settings: Settings, files: _Files, as_json: bool) -> list[ProofResult]:
    results: list[ProofResult] = []
    async with open_service(settings) as service:
        sources = _validate(service, files)  # the statement too, named as the --statement file
        config = ProofConfig() if files.statement is None else ProofConfig(statement=files.statement)
        proofs = await service.submit_many(sources, config)
        try:
            for path, proof in zip(files.paths, proofs, strict=True):
                result = await service.wait(proof.id)
                print(result.model_dump_json() if as_json else format_result(path, result), flush=True)
                results.append(result)
        finally:
            with anyio.CancelScope(shield=True):  # interrupted (Ctrl-C): nobody wants the rest any more
                for proof in proofs[len(results) :]:
                    await service.cancel(proof.id)
    return results
