"""Every cheat of issue 9 against the real Lean 4.35, through the backend every front end uses.

Each cheat is `proved` by a checker that stops at "no error, no sorry warning"; here each is
refused, `sorry` or `rejected`, with a message that says why. Honest controls stay `proved`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from lean_mcp._backends.auto import create_backend
from lean_mcp._backends.lean_cli import parse_lean_json
from lean_mcp._errors import InvalidProofError
from lean_mcp._models import ProofConfig, ProofResult, Verdict
from lean_mcp._server.runtime import open_service
from lean_mcp._settings import Settings
from lean_mcp._trust.probes import Probe, ProbeKind, layout

from . import cheats, proofs


def check(lean: Path, project: Path, code: str, *, allow_prelude: bool = True, **config: object) -> ProofResult:
    """Check `code` with the backend `create_backend` builds (the lean backend behind the trust checks)."""
    settings = Settings(backend="lean", lean=str(lean), project=str(project), allow_prelude=allow_prelude)

    async def main() -> ProofResult:
        async with create_backend(settings) as backend:
            return await backend.check(code, ProofConfig(timeout=60, **config))

    return anyio.run(main)


def errors(result: ProofResult) -> str:
    return "\n".join(m.data for m in result.messages if m.severity != "info")


# -- honest controls ------------------------------------------------------------------------------


def test_an_honest_proof_is_proved_with_its_audit(lean_exe: Path, project: Path) -> None:
    result = check(lean_exe, project, cheats.HONEST)
    assert result.verdict == Verdict.PROVED, errors(result)
    assert result.checks == ["lean", "sorry", "axioms"]
    assert result.axioms == {"zero_eq": []}
    assert result.messages == []  # lean-mcp's own probes leave nothing behind


def test_an_honest_proof_is_proved_against_its_statement(lean_exe: Path, project: Path) -> None:
    result = check(lean_exe, project, cheats.HONEST, statement=cheats.TRUE_CLAIM)
    assert result.verdict == Verdict.PROVED, errors(result)
    assert result.checks == ["lean", "sorry", "axioms", "statement"]


def test_theorems_in_namespaces_sections_private_protected_and_root_are_all_audited(
    lean_exe: Path, project: Path
) -> None:
    result = check(lean_exe, project, cheats.HONEST_SCOPES)
    assert result.verdict == Verdict.PROVED, errors(result)
    assert result.axioms == {"A.p": [], "A.q": [], "r": []}


def test_a_permitted_axiom_is_accepted_when_the_request_permits_it(lean_exe: Path, project: Path) -> None:
    result = check(lean_exe, project, cheats.AXIOM_CHEAT, permitted_axioms=["cheat"])
    assert result.verdict == Verdict.PROVED, errors(result)
    assert result.axioms == {"zero_eq_one": ["cheat"]}


# -- cheats, unpinned -----------------------------------------------------------------------------


def test_a_user_axiom_is_rejected_naming_axiom_and_theorem(lean_exe: Path, project: Path) -> None:
    result = check(lean_exe, project, cheats.AXIOM_CHEAT)
    assert result.verdict == Verdict.REJECTED
    assert "`zero_eq_one` depends on the axiom `cheat`, which is not permitted" in errors(result)
    assert result.axioms == {"zero_eq_one": ["cheat"]}


def test_a_renamed_sorry_axiom_is_rejected(lean_exe: Path, project: Path) -> None:
    result = check(lean_exe, project, cheats.RENAMED_SORRY)
    assert result.verdict == Verdict.REJECTED
    assert "depends on the axiom `magic`" in errors(result)


@pytest.mark.parametrize("code", [cheats.WARN_SORRY_OFF, cheats.WARN_SORRY_OFF_IN], ids=["global", "in"])
def test_a_silenced_sorry_is_still_a_sorry(lean_exe: Path, project: Path, code: str) -> None:
    result = check(lean_exe, project, code)
    assert result.verdict == Verdict.SORRY
    assert result.axioms == {"zero_eq_one": ["sorryAx"]}
    assert "`zero_eq_one` depends on `sorryAx`" in errors(result)


def test_exit_is_refused(lean_exe: Path, project: Path) -> None:
    with pytest.raises(InvalidProofError, match="#exit"):
        check(lean_exe, project, cheats.EXIT)


def test_exit_that_slipped_past_the_refusal_leaves_the_audit_unanswered(lean_exe: Path, project: Path) -> None:
    """The audit fails closed: Lean stops reading at `#exit`, so the probes after it get no answer."""
    probe_run = layout(cheats.EXIT, [Probe(ProbeKind.AXIOMS, ["zero_eq_one"])])
    lean = [str(lean_exe), "--json", "--stdin"]  # straight to Lean: every backend refuses `#exit` first
    done = subprocess.run(lean, input=probe_run.text, capture_output=True, text=True, cwd=project, timeout=60)
    probe_run.read(parse_lean_json(done.stdout))
    assert not probe_run.reached_end
    assert probe_run.probes[0].answer is None


def test_a_file_of_comments_proves_nothing(lean_exe: Path, project: Path) -> None:
    result = check(lean_exe, project, cheats.COMMENTS_ONLY)
    assert result.verdict == Verdict.REJECTED
    assert "declares no theorem" in errors(result)


def test_a_commented_out_theorem_proves_nothing(lean_exe: Path, project: Path) -> None:
    assert check(lean_exe, project, cheats.COMMENTED_OUT).verdict == Verdict.REJECTED
    pinned = check(lean_exe, project, cheats.COMMENTED_OUT, statement=cheats.FALSE_CLAIM)
    assert pinned.verdict == Verdict.REJECTED
    assert "does not declare `zero_eq_one`" in errors(pinned)


def test_prelude_is_refused_unless_allowed(lean_exe: Path, project: Path) -> None:
    with pytest.raises(InvalidProofError, match="prelude"):
        check(lean_exe, project, cheats.OWN_FALSE, allow_prelude=False)


# -- cheats against a pinned statement ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "why"),
    [
        (cheats.NAMESPACED, "does not declare `zero_eq_one`"),
        (cheats.RENAMED, "does not declare `zero_eq_one`"),
        (cheats.WEAKER, "The statement of `zero_eq_one` differs"),
        (cheats.UNSAFE, "is not a kernel-checked, safe constant"),
    ],
    ids=["namespaced", "renamed", "weaker", "unsafe"],
)
def test_a_proof_of_something_else_is_rejected_against_the_statement(
    lean_exe: Path, project: Path, code: str, why: str
) -> None:
    assert why
    result = check(lean_exe, project, code, statement=cheats.FALSE_CLAIM)
    assert result.verdict == Verdict.REJECTED
    assert why in errors(result)


def test_the_statement_mismatch_shows_both_statements(lean_exe: Path, project: Path) -> None:
    text = errors(check(lean_exe, project, cheats.WEAKER, statement=cheats.FALSE_CLAIM))
    assert "expected: zero_eq_one : @Eq.{1} N N.zero (N.succ N.zero)" in text
    assert "got:      zero_eq_one : @Eq.{1} N N.zero N.zero" in text


def test_an_own_false_with_a_constructor_is_caught_by_the_statement(lean_exe: Path, project: Path) -> None:
    assert check(lean_exe, project, cheats.OWN_FALSE).verdict == Verdict.PROVED  # what a prelude file can do
    result = check(lean_exe, project, cheats.OWN_FALSE, statement=cheats.OWN_FALSE_CLAIM)
    assert result.verdict == Verdict.REJECTED
    assert "`False` is defined differently in the proof" in errors(result)


def test_a_wrong_nat_add_is_caught_by_the_statement(lean_exe: Path, project: Path) -> None:
    assert check(lean_exe, project, cheats.WRONG_NAT_ADD).verdict == Verdict.PROVED  # Lean trusts the name
    result = check(lean_exe, project, cheats.WRONG_NAT_ADD, statement=cheats.NAT_CLAIM)
    assert result.verdict == Verdict.REJECTED
    assert "`Nat.add` is defined differently in the proof" in errors(result)


def test_a_statement_that_does_not_elaborate_is_a_clear_error(lean_exe: Path, project: Path) -> None:
    with pytest.raises(InvalidProofError, match="The statement does not elaborate: line 9"):
        check(lean_exe, project, cheats.HONEST, statement=proofs.REJECTED)


def test_a_spoofed_audit_answer_printed_by_the_proof_is_not_taken(lean_exe: Path, project: Path) -> None:
    """The proof's own info message saying "does not depend on any axioms" sits on the proof's lines."""
    spoof = cheats.AXIOM_CHEAT + "#check (Sort 0)\n"
    result = check(lean_exe, project, spoof)
    assert result.verdict == Verdict.REJECTED
    assert "`zero_eq_one` depends on the axiom `cheat`" in errors(result)


# -- the result cache -----------------------------------------------------------------------------


def test_a_cached_proved_is_not_served_to_a_request_with_a_smaller_limit(lean_exe: Path, project: Path) -> None:
    settings = Settings(
        backend="lean", lean=str(lean_exe), project=str(project), allow_prelude=True, db=str(project / "jobs.db")
    )

    async def main() -> list[ProofResult]:
        async with open_service(settings) as service:
            first = await service.verify(cheats.HONEST, ProofConfig(timeout=120))
            again = await service.verify(cheats.HONEST, ProofConfig(timeout=120))
            tight = await service.verify(cheats.HONEST, ProofConfig(timeout=0.01))
            pinned = await service.verify(cheats.HONEST, ProofConfig(timeout=120, statement=cheats.TRUE_CLAIM))
            return [first, again, tight, pinned]

    first, again, tight, pinned = anyio.run(main)
    assert first.verdict == Verdict.PROVED and not first.cached
    assert first.lean_time is not None and first.lean_time > 0.01
    assert again.verdict == Verdict.PROVED and again.cached
    assert tight.verdict == Verdict.TIMEOUT and not tight.cached
    # the statement is part of the key: a pinned request is checked, not answered with the unpinned result
    assert pinned.verdict == Verdict.PROVED and not pinned.cached and "statement" in pinned.checks


def test_print_options_set_by_the_proof_do_not_weaken_the_comparison(lean_exe: Path, project: Path) -> None:
    """`pp.all` alone does not override options the proof set: lean-mcp sets each one, and compares the raw form."""
    options = "set_option pp.universes false\nset_option pp.explicit false\nset_option pp.raw.maxDepth 1\n"
    honest = check(lean_exe, project, cheats.HONEST + options, statement=cheats.TRUE_CLAIM)
    assert honest.verdict == Verdict.PROVED, errors(honest)
    weaker = check(lean_exe, project, cheats.WEAKER + options, statement=cheats.FALSE_CLAIM)
    assert weaker.verdict == Verdict.REJECTED
    assert errors(weaker).count("The statement of `zero_eq_one` differs") == 1
