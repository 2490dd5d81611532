"""Prelude-only Lean proofs for the real-Lean tier and the lean benchmark (no `Init` needed)."""

from __future__ import annotations

BASICS = """prelude
inductive N : Type where
  | zero : N
  | succ : N → N

inductive Eq {α : Sort u} : α → α → Prop where
  | refl (a : α) : Eq a a
"""

#: Lean accepts it: no message at all.
PROVED = BASICS + "\ntheorem zero_eq : Eq N.zero N.zero := Eq.refl N.zero\n"

#: Rejected: Lean's type mismatch is on line 9, at the proof term `Eq.refl` (the `α` before it makes
#: the column in code points differ from the byte offset).
REJECTED = BASICS + "\ntheorem bad_α : Eq N.zero (N.succ N.zero) := Eq.refl N.zero\n"

#: A real sorry (the `sorry` keyword needs Init; `sorryAx` is what it elaborates to). Lean exits 0.
SORRY = (
    BASICS
    + """
inductive Bool : Type where | false | true
axiom sorryAx (α : Sort u) (synthetic : Bool) : α
theorem later : Eq N.zero (N.succ N.zero) := sorryAx _ Bool.false
"""
)

#: A kernel check that takes about a minute and grows to gigabytes: unary 2^18 compared.
SLOW = (
    BASICS
    + """
noncomputable def add (a b : N) : N := N.rec a (fun _ r => N.succ r) b
noncomputable def mul (a b : N) : N := N.rec N.zero (fun _ r => add r a) b
noncomputable def pow (a b : N) : N := N.rec (N.succ N.zero) (fun _ r => mul r a) b
noncomputable def two : N := N.succ (N.succ N.zero)
noncomputable def n18 : N :=
  N.succ (N.succ (N.succ (N.succ (N.succ (N.succ (N.succ (N.succ (N.succ
  (N.succ (N.succ (N.succ (N.succ (N.succ (N.succ (N.succ (N.succ (N.succ N.zero)))))))))))))))))
set_option maxRecDepth 1000000 in
set_option maxHeartbeats 0 in
theorem big : Eq (pow two n18) (mul (pow two n18) (N.succ N.zero)) := Eq.refl (pow two n18)
"""
)


def numbered(i: int, *, correct: bool = True) -> str:
    """A distinct small proof: proved when `correct`, rejected otherwise."""
    rhs = "N.zero" if correct else "(N.succ N.zero)"
    return BASICS + f"\ntheorem t{i} : Eq N.zero {rhs} := Eq.refl N.zero\n"
