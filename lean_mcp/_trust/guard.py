"""`TrustedBackend`: any backend, with the checks that make `proved` mean the asked theorem is proved.

    backend = TrustedBackend(LeanCliBackend(...), permitted_axioms=DEFAULT_PERMITTED_AXIOMS)

For each proof it refuses the constructs of `refusals`, finds the theorems the proof declares
(`declarations`), appends one `#print axioms` probe per theorem (plus, with a statement, the
statement's probes) after the proof text, runs the whole on the inner backend, reads the answers
back by position (`probes`), and judges them (`verdict`). Without a statement the probes are always
the same, and `audit` lays them out and reads them without an object per probe; the result is the
same. The inner backend can be anything that returns Lean's positioned messages: the REPL pool,
`lean --json`, a lean-runner, a Kimina server.
"""

from __future__ import annotations

import hashlib
from typing import Any

import anyio

from .._backends.base import Backend, WrappingBackend
from .._lean.source import check_proof_text
from .._models import LEAN_ANSWERS, ProofConfig, ProofResult
from .._settings import DEFAULT_MAX_PROOF_BYTES
from . import audit
from .declarations import Declarations, read_declarations
from .probes import Probe, ProbeKind, ProbeRun, layout
from .statement import Reference, build_reference
from .verdict import DEFAULT_PERMITTED_AXIOMS, apply, assess

#: How many statements' references are kept in memory.
MAX_REFERENCES = 256
_UNPINNED_CHECKS = ["lean", "sorry", "axioms"]
_PINNED_CHECKS = [*_UNPINNED_CHECKS, "statement"]


class TrustedBackend(WrappingBackend):
    """Wraps `inner` with refusals, the axiom audit and statement pinning."""

    def __init__(
        self,
        inner: Backend,
        *,
        permitted_axioms: tuple[str, ...] | list[str] = DEFAULT_PERMITTED_AXIOMS,
        allow_prelude: bool = False,
        max_proof_bytes: int = DEFAULT_MAX_PROOF_BYTES,
    ) -> None:
        super().__init__(inner)
        self.permitted_axioms = frozenset(permitted_axioms)
        self.allow_prelude = allow_prelude
        self.max_proof_bytes = max_proof_bytes
        self._references: dict[str, Reference] = {}
        self._reference_locks: dict[str, anyio.Lock] = {}

    @property
    def identity(self) -> str:
        permitted = ",".join(sorted(self.permitted_axioms))
        return f"{self.inner.identity}|trust=v1|permitted={permitted}|prelude={self.allow_prelude}"

    def health(self) -> dict[str, Any]:
        return {
            **self.inner.health(),
            "permitted_axioms": sorted(self.permitted_axioms),
            "allow_prelude": self.allow_prelude,
        }

    async def check(self, code: str, config: ProofConfig) -> ProofResult:
        """Check `code` with every check `config` asks for; `result.checks` says which ran."""
        # the one gate (`lean.source`): a text the job service already checked under these limits passes as is
        check_proof_text(code, self.max_proof_bytes, allow_prelude=self.allow_prelude)
        declared = read_declarations(code)
        asked = config.permitted_axioms
        permitted = self.permitted_axioms.union(asked) if asked else self.permitted_axioms
        theorems = declared.theorems
        if theorems and config.statement is None:  # the common case, on the lean path (`audit`)
            text, start = audit.layout(code, theorems)
            result = await self.inner.check(text, config)
            output, verdict = result.result, result.verdict
            if output is None or verdict not in LEAN_ANSWERS:  # (`Verdict.lean_finished`, without its call)
                return result
            kept, found = audit.judge(output, declared, start, permitted)
            checks = _UNPINNED_CHECKS
        else:
            reference = await self._reference(config.statement, config) if config.statement is not None else None
            probe_run = probe_layout(code, declared, reference)
            # the statement is ours to check: a remote lean-mcp behind us need not pin it again
            inner_config = config if config.statement is None else config.model_copy(update={"statement": None})
            result = await self.inner.check(probe_run.text, inner_config)
            if result.result is None or result.verdict is None or not result.verdict.lean_finished:
                return result
            kept = probe_run.read(result.result)
            found = assess(probe_run, declared, reference, permitted)
            for problem in _header_problems(declared, reference) if reference is not None else []:
                found.reject(problem)
            checks = _PINNED_CHECKS if reference is not None else _UNPINNED_CHECKS
        return apply(result, kept, found, checks=checks)

    async def _reference(self, statement: str, config: ProofConfig) -> Reference:
        """The statement's reference, elaborated once per statement (kept in memory)."""
        check_proof_text(statement, self.max_proof_bytes, allow_prelude=self.allow_prelude)
        key = hashlib.sha256(statement.encode("utf-8", errors="surrogatepass")).hexdigest()
        lock = self._reference_locks.setdefault(key, anyio.Lock())
        async with lock:
            if key not in self._references:
                plain = config.model_copy(update={"statement": None, "all_tactics": False, "tactics": False})

                async def run(text: str) -> ProofResult:
                    return await self.inner.check(text, plain)

                self._references[key] = await build_reference(statement, run)
                while len(self._references) > MAX_REFERENCES:
                    self._references.pop(next(iter(self._references)))
        self._reference_locks.pop(key, None)
        return self._references[key]


def probe_layout(code: str, declared: Declarations, reference: Reference | None) -> ProbeRun:
    """`code` with the audit's probes (and the statement's, with a `reference`) laid out after it."""
    return layout(code, _probes(declared, reference))


#: The audit's probes for each theorem (looked up once: an enum member looked up on its class costs a Python call).
_AUDIT_KINDS = (ProbeKind.AXIOMS, ProbeKind.SAFE)


def _probes(declared: Declarations, reference: Reference | None) -> list[Probe]:
    names = declared.theorems
    if reference is not None:
        names = names + [t for t in reference.theorems if t not in names]
    probes = [Probe(kind, name) for name in names for kind in _AUDIT_KINDS]
    if reference is not None:
        for raw in (False, True):
            probes += [Probe(ProbeKind.TYPE, list(t), raw) for t in reference.theorems]
            probes += [Probe(ProbeKind.DEFINITION, list(parts), raw) for parts in reference.constants.values()]
    return probes


def _header_problems(declared: Declarations, reference: Reference) -> list[str]:
    """A pinned proof must import what the challenge imports, and be `prelude` only if the challenge is."""
    problems = []
    missing = [module for module in reference.imports if module not in declared.imports]
    if missing:
        problems.append(
            f"The proof does not import {', '.join(missing)}, which the statement imports, so the statement's "
            "constants would not be the same ones. Start the proof with the statement's own import lines."
        )
    if declared.prelude and not reference.prelude:
        problems.append(
            "The proof is a `prelude` file but the statement is not: the proof would define Lean's basic types itself."
        )
    return problems
