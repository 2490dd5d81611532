"""Tactic mode on the repl backend, against real stand-in REPL processes: proof_state_ids on sorries,
run_tactic / try_tactics, what `completed` demands, and what happens to ids when their REPL goes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from lean_mcp._backends.remote import LeanRunnerBackend
from lean_mcp._backends.repl import ReplBackend
from lean_mcp._errors import InvalidProofError, ProofStateError, TacticModeUnavailableError
from lean_mcp._models import ProofConfig, ProofResult, ProofStatus, TacticResult
from lean_mcp._repl.proof_states import ProofStateRegistry, untrusted_words
from lean_mcp._settings import LeanLimits, Settings
from tests.procs import pid_alive
from tests.standin import standin_command

pytestmark = pytest.mark.anyio

AND_SKETCH = "theorem complex_and (p q r : Prop) (h1 : p ∧ q) (h2 : q → r) : p ∧ r := by sorry\n"
TWO_HOLES = "theorem a : 1 = 1 := by sorry\ntheorem b : 2 = 2 := by sorry\n"


def backend(**options: Any) -> ReplBackend:
    return ReplBackend(standin_command(), project=Path("."), **options)


@pytest.fixture
async def repl() -> AsyncIterator[ReplBackend]:
    async with backend() as started:
        yield started


async def sketch(repl: ReplBackend, code: str = AND_SKETCH) -> ProofResult:
    return await repl.check(code, ProofConfig())


async def first_id(repl: ReplBackend, code: str = AND_SKETCH) -> str:
    state_id = (await sketch(repl, code)).sorries[0].proof_state_id
    assert state_id is not None
    return state_id


def failed_checks(result: TacticResult) -> set[str]:
    return {check.name for check in result.checks if not check.passed}


# --- handles --------------------------------------------------------------------------------------------


async def test_each_sorry_gets_its_own_unguessable_id_and_such_a_result_is_never_cached(repl: ReplBackend) -> None:
    result = await sketch(repl, TWO_HOLES)
    ids = [s.proof_state_id for s in result.sorries]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert all(i is not None and re.fullmatch(r"ps_[\w-]{24}", i) for i in ids)
    assert result.reusable is False  # a cached copy would hand out ids of another run
    proved = await repl.check("theorem t : True := trivial\n", ProofConfig())
    assert proved.reusable is True and proved.sorries == []


async def test_a_goal_is_proved_step_by_step_and_old_ids_stay_usable(repl: ReplBackend) -> None:
    start = await first_id(repl)
    split = await repl.run_tactic(start, "apply And.intro")
    assert split.proof_status == ProofStatus.INCOMPLETE
    assert [g.splitlines()[0] for g in split.goals] == ["case left", "case right"]
    assert split.proof_state_id not in (None, start)
    assert split.proof_state_id is not None
    left = await repl.run_tactic(split.proof_state_id, "exact h1.left")
    assert left.proof_status == ProofStatus.INCOMPLETE and len(left.goals) == 1
    assert left.proof_state_id is not None
    done = await repl.run_tactic(left.proof_state_id, "exact h2 h1.right")
    assert done.proof_status == ProofStatus.COMPLETED
    assert done.goals == [] and done.repl_status == "Completed"
    assert [c.name for c in done.checks] == ["repl_completed", "no_errors", "no_sorry", "trusted_text"]
    assert all(c.passed for c in done.checks)
    again = await repl.run_tactic(start, "apply And.intro")  # backtracking: the first state still works
    assert len(again.goals) == 2


async def test_try_tactics_runs_each_from_the_same_state_in_order(repl: ReplBackend) -> None:
    start = await first_id(repl)
    tried = await repl.try_tactics(start, ["apply And.intro", "no_such_tactic", "exact foo", "apply And.intro"])
    assert tried.proof_state_id == start
    assert [r.tactic for r in tried.results] == ["apply And.intro", "no_such_tactic", "exact foo", "apply And.intro"]
    statuses = [r.proof_status for r in tried.results]
    assert statuses == [ProofStatus.INCOMPLETE, ProofStatus.ERROR, ProofStatus.COMPLETED, ProofStatus.INCOMPLETE]
    assert len(tried.results[0].goals) == len(tried.results[3].goals) == 2  # both saw the start state
    assert tried.results[1].proof_state_id is None
    assert "unknown tactic" in tried.results[1].messages[0].data
    ids = [r.proof_state_id for r in tried.results if r.proof_state_id]
    assert len(set(ids)) == 3


async def test_a_sorry_a_tactic_leaves_gets_an_id_of_its_own(repl: ReplBackend) -> None:
    start = await first_id(repl, "theorem t (x : Nat) : x = x := by sorry\n")
    step = await repl.run_tactic(start, "have h : x = 1 := by sorry")
    assert step.proof_status == ProofStatus.INCOMPLETE
    assert len(step.sorries) == 1 and step.sorries[0].proof_state_id is not None
    inner = await repl.run_tactic(step.sorries[0].proof_state_id, "rfl")
    assert inner.proof_status == ProofStatus.COMPLETED


# --- what `completed` demands ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tactic", "failed"),
    [
        ("native_decide", {"trusted_text"}),
        ("decide +native", {"trusted_text"}),
        ("exact Lean.ofReduceBool _ _ rfl", {"trusted_text"}),
        ("sorry", {"repl_completed", "no_sorry", "trusted_text"}),
        ("exact h1.left", set()),
    ],
)
async def test_completed_refuses_what_tactic_mode_cannot_vouch_for(
    repl: ReplBackend, tactic: str, failed: set[str]
) -> None:
    start = await first_id(repl, "theorem t (p : Prop) (h1 : p ∧ p) : p := by sorry\n")
    result = await repl.run_tactic(start, tactic)
    assert failed_checks(result) == failed
    assert (result.proof_status == ProofStatus.COMPLETED) == (not failed)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("run_tac do Lean.Elab.Tactic.closeMainGoal", ("run_tac",)),
        ("exact (by_elab pure default)", ("by_elab",)),
        ("exact Lean.ofReduceBool a b h", ("ofReduceBool",)),
        ("decide (config := { native := true })", ("native",)),
        ("@[implemented_by f] unsafe def g", ("implemented_by", "unsafe")),
        ("exact sorry_free_lemma nativeX admit'", ()),
        ("simp [Nat.add_comm]; omega", ()),
    ],
)
def test_the_untrusted_words_screen(text: str, words: tuple[str, ...]) -> None:
    assert untrusted_words(text) == words


async def test_an_untrusted_word_earlier_on_the_path_taints_every_later_state(repl: ReplBackend) -> None:
    start = await first_id(repl)
    tainted = await repl.run_tactic(start, "apply And.intro <;> skip -- native_decide")
    assert tainted.proof_state_id is not None
    left = await repl.run_tactic(tainted.proof_state_id, "exact h1.left")
    assert left.proof_state_id is not None
    done = await repl.run_tactic(left.proof_state_id, "exact h2 h1.right")
    assert done.goals == [] and done.repl_status == "Completed"
    assert done.proof_status == ProofStatus.INCOMPLETE
    assert failed_checks(done) == {"trusted_text"}
    assert "native_decide" in (done.checks[-1].detail or "")


async def test_a_sketch_that_declares_an_axiom_never_completes_in_tactic_mode(repl: ReplBackend) -> None:
    start = await first_id(repl, "axiom cheat : False\ntheorem t : 1 = 2 := by sorry\n")
    result = await repl.run_tactic(start, "exact cheat.elim")
    assert result.repl_status == "Completed"
    assert result.proof_status == ProofStatus.INCOMPLETE
    assert failed_checks(result) == {"trusted_text"}


@pytest.mark.parametrize(
    ("status", "expected", "has_id"),
    [
        ("Error: kernel type check failed: (kernel) declaration has free variables", ProofStatus.ERROR, False),
        ("Error: proof has type False but root goal has type True", ProofStatus.ERROR, False),
        ("Not verified: more than one initial goal", ProofStatus.ERROR, False),
        ("Incomplete: contains metavariable(s)", ProofStatus.INCOMPLETE, True),
    ],
)
async def test_every_repl_status_but_completed_is_not_completed(
    repl: ReplBackend, status: str, expected: ProofStatus, has_id: bool
) -> None:
    start = await first_id(repl)
    result = await repl.run_tactic(start, f"exact foo\n-- standin: status {status}")
    assert result.proof_status == expected
    assert result.repl_status == status
    assert (result.proof_state_id is not None) == has_id
    if expected == ProofStatus.ERROR:
        assert status in result.messages[-1].data


async def test_an_error_logged_by_a_tactic_is_an_error_even_when_the_goal_closed(repl: ReplBackend) -> None:
    start = await first_id(repl)
    result = await repl.run_tactic(start, "exact h1\n-- standin: error Unknown identifier `h1`")
    assert result.proof_status == ProofStatus.ERROR
    assert result.proof_state_id is None
    assert result.messages[0].data == "Unknown identifier `h1`"


# --- bad input and dead handles -------------------------------------------------------------------------


async def test_bad_ids_and_tactics_are_refused_with_what_to_do(repl: ReplBackend) -> None:
    start = await first_id(repl)
    with pytest.raises(ProofStateError, match=r"No proof state has the id 'ps_guess'.*[Vv]erify the proof"):
        await repl.run_tactic("ps_guess", "rfl")
    with pytest.raises(ProofStateError, match="not a proof_state_id"):
        await repl.run_tactic("x" * 500, "rfl")
    with pytest.raises(InvalidProofError, match="empty"):
        await repl.run_tactic(start, "  \n")
    with pytest.raises(InvalidProofError, match="non-empty list"):
        await repl.try_tactics(start, [])
    with pytest.raises(InvalidProofError, match="limit is 64"):
        await repl.try_tactics(start, ["rfl"] * 65)
    assert (await repl.run_tactic(start, "apply And.intro")).proof_status == ProofStatus.INCOMPLETE


async def test_a_tactic_longer_than_the_proof_size_limit_is_refused() -> None:
    async with backend(max_proof_bytes=40) as small:
        start = await first_id(small)
        with pytest.raises(InvalidProofError, match="41 bytes; the limit is 40 bytes"):
            await small.run_tactic(start, "a" * 41)
        with pytest.raises(InvalidProofError, match="the limit is 40 bytes"):
            await small.try_tactics(start, ["rfl", "b" * 41])
        assert (await small.run_tactic(start, "apply And.intro")).proof_status == ProofStatus.INCOMPLETE


async def test_ids_expire_after_their_ttl_unused_and_past_the_count_limit() -> None:
    now = [0.0]
    registry = ProofStateRegistry(ttl=60, max_states=3, clock=lambda: now[0])
    async with backend(proof_states=registry) as repl:
        first = await first_id(repl)
        now[0] = 50
        await repl.run_tactic(first, "apply And.intro")  # a use restarts the clock
        now[0] = 100
        await repl.run_tactic(first, "apply And.intro")
        now[0] = 161
        with pytest.raises(ProofStateError, match=r"expired after 60 s unused \(--proof-state-ttl\)"):
            await repl.run_tactic(first, "apply And.intro")
        ids = [await first_id(repl) for _ in range(4)]
        with pytest.raises(ProofStateError, match=r"more than 3 proof states.*--max-proof-states"):
            await repl.run_tactic(ids[0], "apply And.intro")
        assert len(registry) == 3
        assert (await repl.run_tactic(ids[-1], "apply And.intro")).proof_state_id is not None


async def test_a_tactic_timeout_kills_the_repl_its_ids_say_so_and_the_pool_recovers(repl: ReplBackend) -> None:
    start = await first_id(repl)
    pid = repl.pool.health()["pids"][0]
    result = await repl.run_tactic(start, "skip\n-- standin: hang", timeout=0.5)
    assert result.proof_status == ProofStatus.ERROR and result.failure == "timeout"
    assert "0.5 s timeout" in result.messages[0].data and "verify the proof again" in result.messages[0].data
    assert not pid_alive(pid)
    with pytest.raises(ProofStateError, match=r"killed while running a tactic.*[Vv]erify the proof"):
        await repl.run_tactic(start, "apply And.intro")
    assert (await repl.run_tactic(await first_id(repl), "apply And.intro")).proof_state_id is not None


async def test_a_crash_mid_try_stops_the_rest_which_say_they_did_not_run(repl: ReplBackend) -> None:
    start = await first_id(repl)
    tried = await repl.try_tactics(start, ["apply And.intro", "skip\n-- standin: crash", "exact h1.left"])
    assert [r.failure for r in tried.results] == [None, "crash", "not_run"]
    assert "stand-in crash directive" in tried.results[1].messages[0].data
    assert "Not run" in tried.results[2].messages[0].data
    assert tried.results[0].proof_state_id is not None
    with pytest.raises(ProofStateError, match="gone"):
        await repl.run_tactic(tried.results[0].proof_state_id, "exact h1.left")


async def test_a_tactic_past_the_memory_cap_is_killed() -> None:
    async with backend(limits=LeanLimits(memory_mb=150)) as repl:
        start = await first_id(repl)
        result = await repl.run_tactic(start, "skip\n-- standin: memory 300")
        assert result.failure == "memory_limit" and "150 MB memory limit" in result.messages[0].data


async def test_a_cancelled_tactic_kills_its_repl_and_the_next_call_works(repl: ReplBackend) -> None:
    start = await first_id(repl)
    with anyio.move_on_after(0.5):
        await repl.run_tactic(start, "skip\n-- standin: hang")
    with pytest.raises(ProofStateError):
        await repl.run_tactic(start, "apply And.intro")
    assert repl.pool.health()["live"] == 0
    assert (await repl.run_tactic(await first_id(repl), "apply And.intro")).proof_status == ProofStatus.INCOMPLETE


# --- the pool keeps the REPL ----------------------------------------------------------------------------


async def test_a_tactic_waits_for_its_own_repl_while_it_checks_a_proof() -> None:
    async with backend(workers=2) as repl:
        start = await first_id(repl)
        owner = repl.pool.health()["pids"][0]
        results: list[Any] = []

        async def slow_proof() -> None:
            results.append(await repl.check("theorem s : True := by\n-- standin: work 0.6\n  trivial\n", ProofConfig()))

        async with anyio.create_task_group() as group:
            group.start_soon(slow_proof)
            await anyio.sleep(0.2)  # the slow proof holds the REPL that holds `start`
            started = anyio.current_time()
            step = await repl.run_tactic(start, "apply And.intro")
            waited = anyio.current_time() - started
        assert step.proof_status == ProofStatus.INCOMPLETE and waited >= 0.3
        assert owner in repl.pool.health()["pids"]


async def test_recycling_waits_while_ids_are_live_and_then_says_why_they_stopped() -> None:
    async with backend(max_uses=2) as repl:
        start = await first_id(repl)
        await repl.check("theorem u : True := trivial\n", ProofConfig())  # 2 uses: kept, `start` is live
        assert (await repl.run_tactic(start, "apply And.intro")).proof_state_id is not None
        for _ in range(2):  # 4 uses = 2 × max_uses: recycled even so
            await repl.check("theorem u : True := trivial\n", ProofConfig())
        with pytest.raises(ProofStateError, match="recycled \\(after 4 proofs"):
            await repl.run_tactic(start, "apply And.intro")


async def test_another_header_evicts_the_repl_without_live_ids_first() -> None:
    async with backend(workers=2) as repl:
        held = await first_id(repl)
        async with anyio.create_task_group() as group:  # two REPLs of the prelude header, one holds `held`
            for _ in range(2):
                group.start_soon(repl.check, "theorem s : True := by\n-- standin: work 0.3\n  trivial\n", ProofConfig())
        assert repl.pool.health()["live"] == 2
        await repl.check("import Lean\ntheorem v : True := trivial\n", ProofConfig())
        assert (await repl.run_tactic(held, "apply And.intro")).proof_state_id is not None


# --- other backends -------------------------------------------------------------------------------------


async def test_backends_without_proof_states_name_the_repl_backend() -> None:
    remote = LeanRunnerBackend.from_settings(Settings(backend="remote", remote_url="http://127.0.0.1:9"))
    with pytest.raises(TacticModeUnavailableError, match=r"`remote` backend has no proof states.*`repl` backend"):
        await remote.run_tactic("ps_x", "rfl")
    with pytest.raises(TacticModeUnavailableError, match="--backend repl"):
        await remote.try_tactics("ps_x", ["rfl"])
