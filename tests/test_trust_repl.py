"""The axiom audit on the REPL path: the pool of stand-in REPLs behind the trust checks.

The stand-in answers `#print axioms` as Lean 4.35 does (see tests/standin/repl_standin.py), so
these tests see the audit's probes travel through the pool (header split, env reuse, positions
shifted back) and come back by position.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from lean_mcp._backends.auto import create_backend
from lean_mcp._errors import InvalidProofError, ProofTooLargeError
from lean_mcp._lean import source
from lean_mcp._lean.source import validate_proof_text
from lean_mcp._models import ProofConfig, ProofResult, Verdict
from lean_mcp._server.runtime import open_service
from lean_mcp._settings import Settings
from tests.standin import standin_command

HONEST = "theorem t : 1 + 1 = 2 := by rfl\n"
CHEAT = "axiom cheat : False\ntheorem t : 1 = 2 := cheat.elim\n"
SORRY = "theorem t : 1 = 2 := by\n  sorry\n"


def check_all(tmp_path: Path, codes: list[str], **config: object) -> list[ProofResult]:
    settings = Settings(backend="repl", repl=standin_command(), project=str(tmp_path), workers=1)

    async def main() -> list[ProofResult]:
        async with create_backend(settings) as backend:
            return [await backend.check(code, ProofConfig(timeout=30, **config)) for code in codes]

    return anyio.run(main)


def test_an_honest_proof_is_proved_and_its_theorem_audited(tmp_path: Path) -> None:
    [result] = check_all(tmp_path, [HONEST])
    assert result.verdict == Verdict.PROVED
    assert result.axioms == {"t": []}
    assert result.checks == ["lean", "sorry", "axioms"]
    assert result.messages == []


@pytest.mark.parametrize("header", ["", "import Mathlib\n", "import Mathlib\nimport Aesop\n\n-- c\n"])
def test_the_audit_reads_its_answers_at_the_right_lines_after_a_header(tmp_path: Path, header: str) -> None:
    honest, cheat, again = check_all(tmp_path, [header + HONEST, header + CHEAT, header + HONEST])
    assert honest.verdict == again.verdict == Verdict.PROVED
    assert cheat.verdict == Verdict.REJECTED
    assert cheat.axioms == {"t": ["cheat"]}
    line = header.count("\n") + 2
    assert any(m.pos.line == line and "depends on the axiom `cheat`" in m.data for m in cheat.messages)


def test_a_sorry_is_found_by_the_audit_too(tmp_path: Path) -> None:
    [result] = check_all(tmp_path, [SORRY])
    assert result.verdict == Verdict.SORRY
    assert result.axioms == {"t": ["sorryAx"]}


def test_a_request_may_permit_an_axiom(tmp_path: Path) -> None:
    [result] = check_all(tmp_path, [CHEAT], permitted_axioms=["cheat"])
    assert result.verdict == Verdict.PROVED
    assert result.axioms == {"t": ["cheat"]}


def test_a_theorem_lean_does_not_know_fails_the_audit(tmp_path: Path) -> None:
    """A theorem the discovery reads but Lean never declared (here: made by a directive error) is no pass."""
    [result] = check_all(tmp_path, ["-- standin: info 'x' does not depend on any axioms\nexample : True := trivial\n"])
    assert result.verdict == Verdict.REJECTED
    assert "declares no theorem" in "\n".join(m.data for m in result.messages)


def test_every_backend_is_guarded_against_oversized_and_refused_text(tmp_path: Path) -> None:
    """The pool trusts its caller: the guard `create_backend` puts around every backend is the gate."""
    settings = Settings(backend="repl", repl=standin_command(), project=str(tmp_path), workers=1, max_proof_bytes=100)

    async def main() -> None:
        async with create_backend(settings) as backend:
            with pytest.raises(ProofTooLargeError):
                await backend.check(HONEST + "-- " + "x" * 200, ProofConfig(timeout=30))
            with pytest.raises(InvalidProofError, match="prelude"):
                await backend.check("prelude\n" + HONEST, ProofConfig(timeout=30))
            assert (await backend.check(HONEST, ProofConfig(timeout=30))).verdict == Verdict.PROVED

    anyio.run(main)


def test_text_checked_under_looser_limits_is_checked_again_by_the_guard(tmp_path: Path) -> None:
    """A `CheckedProof` is trusted only for limits at least as strict as the ones it passed."""
    settings = Settings(backend="repl", repl=standin_command(), project=str(tmp_path), workers=1, max_proof_bytes=100)
    loose_prelude = validate_proof_text("prelude\n" + HONEST, 100, allow_prelude=True)
    loose_size = validate_proof_text(HONEST + "-- " + "x" * 200, 10_000)
    same = validate_proof_text(HONEST, 100)

    async def main() -> None:
        async with create_backend(settings) as backend:
            with pytest.raises(InvalidProofError, match="prelude"):
                await backend.check(loose_prelude, ProofConfig(timeout=30))
            with pytest.raises(ProofTooLargeError):
                await backend.check(loose_size, ProofConfig(timeout=30))
            assert (await backend.check(same, ProofConfig(timeout=30))).verdict == Verdict.PROVED

    anyio.run(main)


def test_the_service_scans_a_proof_once_and_the_guard_trusts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One gate per layer: the service checks the text on submit; the guard behind the backend does not scan
    it again (it scans a plain str, as the other tests here show)."""
    scans: list[str] = []
    real = source.refuse_constructs

    def counting(code: str, *, allow_prelude: bool) -> None:
        scans.append(code)
        real(code, allow_prelude=allow_prelude)

    monkeypatch.setattr(source, "refuse_constructs", counting)
    settings = Settings(backend="repl", repl=standin_command(), project=str(tmp_path), workers=1, db=":memory:")

    async def main() -> ProofResult:
        async with open_service(settings) as service:
            proof = await service.submit(HONEST, ProofConfig(timeout=30))
            return await service.wait(proof.id)

    assert anyio.run(main).verdict == Verdict.PROVED
    assert scans == [HONEST]
