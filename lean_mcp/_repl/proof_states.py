"""Proof-state handles: opaque ids for the REPL's proof states, their lifetimes, and what they may claim.

A sorry the REPL reports carries a proof-state number that only means something inside the REPL
process that made it. The registry hands out an unguessable `proof_state_id` for each one, naming
(that process, that number), and answers every later use of the id:

* with the live handle, whose REPL is still the one that made it;
* or with a `ProofStateError` that says why not: never issued, expired (unused for `ttl` seconds,
  or pushed out past `max_states` live ids, least recently used first), or its REPL is gone
  (recycled, crashed, killed at a timeout or memory cap, shut down).

A handle also remembers its *taint*: words in the text that led to it (the sketch, every tactic on
its path) that can make a "Completed" proof untrustworthy in tactic mode (`native_decide`, meta code,
a declared `axiom`, ...). `completion_checks` is the one place that decides whether the REPL's
"Completed" may be reported as `completed`; the axiom audit plugs in there.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import secrets
import time
from collections.abc import Callable, Sequence

from .._errors import InvalidProofError, ProofStateError
from .._models import MAX_TACTICS_PER_TRY, Message, Severity, Sorry, TacticCheck

#: Longest string that can be a proof_state_id (anything longer was never issued).
_MAX_ID_LENGTH = 64
#: How many ids of gone proof states are remembered, to say why they are gone.
_GONE_MEMORY = 100_000

#: Words that can make tactic mode's "Completed" untrustworthy: sorries, the compiler-trusting
#: `native_decide` / `ofReduceBool` (axiom `Lean.ofReduceBool`), meta code that can change the
#: environment (`run_tac`, `by_elab`, ...), and declarations the kernel takes on trust.
_UNTRUSTED = re.compile(
    r"(?<![\w.'])(?:[\w']+\.)*("
    r"sorry|admit|sorryAx|native_decide|native|ofReduceBool|ofReduceNat|"
    r"run_tac|run_meta|run_elab|by_elab|elab|macro|implemented_by|extern|unsafe|axiom"
    r")(?![\w'!?])"
)
#: The sketch's own sorries are the holes it is about: they do not taint its goals.
_HOLES = frozenset({"sorry", "admit"})


def untrusted_words(text: str, *, allow: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The untrusted words in `text` (each once, in order of appearance), minus `allow`."""
    found = dict.fromkeys(m.group(1) for m in _UNTRUSTED.finditer(text))
    return tuple(word for word in found if word not in allow)


def sketch_taint(text: str) -> tuple[str, ...]:
    """What a sketch's text taints its proof states with (its sorries are not counted)."""
    return untrusted_words(text, allow=_HOLES)


def validate_tactic(tactic: object, max_bytes: int) -> str:
    """The tactic text, or InvalidProofError for one that cannot be sent: not a string, blank, too large."""
    if not isinstance(tactic, str):
        raise InvalidProofError(f"A tactic must be Lean text (a string), not {type(tactic).__name__}.")
    if not tactic.strip():
        raise InvalidProofError("The tactic is empty.", hint="Send a tactic such as `intro h` or `simp`.")
    size = len(tactic.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise InvalidProofError(f"The tactic is {size:,} bytes; the limit is {max_bytes:,} bytes.")
    return tactic


def validate_tactics(tactics: object, max_bytes: int) -> list[str]:
    """A `try_tactics` list: 1 to MAX_TACTICS_PER_TRY valid tactics."""
    if not isinstance(tactics, list | tuple) or not tactics:
        raise InvalidProofError("`tactics` must be a non-empty list of tactic strings.")
    if len(tactics) > MAX_TACTICS_PER_TRY:
        raise InvalidProofError(
            f"{len(tactics)} tactics in one call; the limit is {MAX_TACTICS_PER_TRY}.",
            hint="Split them over several try_tactics calls.",
        )
    return [validate_tactic(tactic, max_bytes) for tactic in tactics]


@dataclasses.dataclass(eq=False)
class ProofStateHandle:
    """One issued proof_state_id: the REPL process holding it and the REPL's number for it."""

    id: str
    owner: object
    state: int
    taint: tuple[str, ...]
    last_used: float


class ProofStateRegistry:
    """Issues, finds and expires proof_state_ids (one registry per pool)."""

    def __init__(
        self, *, ttl: float = 3600.0, max_states: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_states = max(1, max_states)
        self._clock = clock
        self._live: collections.OrderedDict[str, ProofStateHandle] = collections.OrderedDict()
        self._per_owner: collections.Counter[int] = collections.Counter()
        self._gone: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.counts = {"issued": 0, "expired": 0, "invalidated": 0}

    def __len__(self) -> int:
        return len(self._live)

    def register(self, owner: object, state: int, taint: Sequence[str] = ()) -> str:
        """A new id for proof state `state` of REPL `owner`."""
        handle_id = "ps_" + secrets.token_urlsafe(18)
        self._live[handle_id] = ProofStateHandle(handle_id, owner, state, tuple(taint), self._clock())
        self._per_owner[id(owner)] += 1
        self.counts["issued"] += 1
        self._expire()
        return handle_id

    def get(self, handle_id: object) -> ProofStateHandle:
        """The live handle named `handle_id` (its lifetime restarts), or ProofStateError saying why not."""
        self._expire()
        if not isinstance(handle_id, str) or len(handle_id) > _MAX_ID_LENGTH:
            raise ProofStateError("That is not a proof_state_id (they look like `ps_...`).")
        handle = self._live.get(handle_id)
        if handle is None:
            reason = self._gone.get(handle_id)
            if reason is None:
                raise ProofStateError(f"No proof state has the id {handle_id!r} on this server.")
            raise ProofStateError(f"Proof state {handle_id} is gone: {reason}.")
        handle.last_used = self._clock()
        self._live.move_to_end(handle_id)
        return handle

    def live_on(self, owner: object) -> int:
        """How many live ids name proof states of REPL `owner`."""
        return self._per_owner.get(id(owner), 0)

    def release_owner(self, owner: object, reason: str) -> int:
        """Every id of REPL `owner` stops working, answering with `reason`; how many there were."""
        if not self.live_on(owner):
            return 0
        dropped = [h.id for h in self._live.values() if h.owner is owner]
        for handle_id in dropped:
            self._drop(handle_id, reason)
        self.counts["invalidated"] += len(dropped)
        return len(dropped)

    def _expire(self) -> None:
        now = self._clock()
        while self._live:
            handle_id, handle = next(iter(self._live.items()))
            if now - handle.last_used > self.ttl:
                self._drop(handle_id, f"it expired after {self.ttl:g} s unused (--proof-state-ttl)")
            elif len(self._live) > self.max_states:
                self._drop(
                    handle_id,
                    f"it expired: more than {self.max_states} proof states were live (--max-proof-states), "
                    "and it was the least recently used",
                )
            else:
                return
            self.counts["expired"] += 1

    def _drop(self, handle_id: str, reason: str) -> None:
        handle = self._live.pop(handle_id)
        self._per_owner[id(handle.owner)] -= 1
        if self._per_owner[id(handle.owner)] <= 0:
            del self._per_owner[id(handle.owner)]
        self._gone[handle_id] = reason
        while len(self._gone) > _GONE_MEMORY:
            self._gone.popitem(last=False)


# --------------------------------------------------------------------------- what `completed` rests on

#: The REPL's proofStatus for a finished proof that passed its kernel check.
REPL_COMPLETED = "Completed"


def completion_checks(
    repl_status: str | None, messages: Sequence[Message], sorries: Sequence[Sorry], taint: Sequence[str]
) -> list[TacticCheck]:
    """Every check a "Completed" tactic step must pass to be reported `completed`, as run.

    * `repl_completed`: the REPL's own check (no goal left, one root goal, the term has no sorry
      and no metavariable, and the kernel accepted it as a declaration);
    * `no_errors`: Lean logged no error while running the tactic;
    * `no_sorry`: the step reported no sorry;
    * `trusted_text`: no untrusted word in the sketch or in any tactic on the way here (see
      `untrusted_words`): tactic mode has no declaration to audit, so these are refused outright.

    The axiom audit (`#print axioms`, permitted: propext, Classical.choice, Quot.sound) needs a
    declaration; in tactic mode there is none, so it is not among these checks: verify the finished
    proof with `verify_proof` for the full verdict.
    """
    errors = [m.data for m in messages if m.severity == Severity.ERROR]
    return [
        TacticCheck(name="repl_completed", passed=repl_status == REPL_COMPLETED, detail=repl_status),
        TacticCheck(name="no_errors", passed=not errors, detail="; ".join(errors)[:500] or None),
        TacticCheck(name="no_sorry", passed=not sorries, detail=f"{len(sorries)} sorries" if sorries else None),
        TacticCheck(
            name="trusted_text",
            passed=not taint,
            detail=f"uses {', '.join(f'`{w}`' for w in taint)}; verify the whole proof instead" if taint else None,
        ),
    ]
