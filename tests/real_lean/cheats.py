"""Proofs written to fool the verdict, and honest controls, for the real Lean 4.35 (prelude files).

Each cheat is `proved` by a checker that stops at "no error, no sorry warning". lean-mcp must answer
each with something else: refused, `sorry` or `rejected`.
"""

from __future__ import annotations

from .proofs import BASICS

FALSE = "inductive False : Prop\n"
SORRY_AX = "inductive Bool : Type where | false | true\naxiom sorryAx (α : Sort u) (synthetic : Bool) : α\n"

#: The challenge most cheats below aim at: a false claim, `zero = one`.
FALSE_CLAIM = BASICS + SORRY_AX + "theorem zero_eq_one : Eq N.zero (N.succ N.zero) := sorryAx _ Bool.false\n"
#: A true claim, and its honest proof.
TRUE_CLAIM = BASICS + SORRY_AX + "theorem zero_eq : Eq N.zero N.zero := sorryAx _ Bool.false\n"
HONEST = BASICS + "theorem zero_eq : Eq N.zero N.zero := Eq.refl N.zero\n"

AXIOM_CHEAT = (
    BASICS + FALSE + "axiom cheat : False\ntheorem zero_eq_one : Eq N.zero (N.succ N.zero) := False.rec _ cheat\n"
)
RENAMED_SORRY = BASICS + "axiom magic (α : Sort u) : α\ntheorem zero_eq_one : Eq N.zero (N.succ N.zero) := magic _\n"
WARN_SORRY_OFF = (
    BASICS + SORRY_AX + "set_option warn.sorry false\n"
    "theorem zero_eq_one : Eq N.zero (N.succ N.zero) := sorryAx _ Bool.false\n"
)
WARN_SORRY_OFF_IN = (
    BASICS + SORRY_AX + "set_option warn.sorry false in\n"
    "theorem zero_eq_one : Eq N.zero (N.succ N.zero) := sorryAx _ Bool.false\n"
)
EXIT = BASICS + "#exit\ntheorem zero_eq_one : Eq N.zero (N.succ N.zero) := Eq.refl N.zero\n"
COMMENTS_ONLY = "prelude\n-- theorem zero_eq_one : Eq N.zero (N.succ N.zero) := by trivial\n/- nothing to see -/\n"
COMMENTED_OUT = BASICS + "/-\ntheorem zero_eq_one : Eq N.zero (N.succ N.zero) := Eq.refl N.zero\n-/\n"
#: A true theorem under the asked name's last component, in another namespace.
NAMESPACED = BASICS + "namespace Cheat\ntheorem zero_eq_one : Eq N.zero N.zero := Eq.refl N.zero\nend Cheat\n"
#: A true theorem under another name.
RENAMED = BASICS + "theorem zero_eq_zero : Eq N.zero N.zero := Eq.refl N.zero\n"
#: The asked name with a weaker (true) statement.
WEAKER = BASICS + "theorem zero_eq_one : Eq N.zero N.zero := Eq.refl N.zero\n"
#: An `unsafe def` that "proves" the claim by calling itself: no axiom at all.
UNSAFE = BASICS + "unsafe def zero_eq_one : Eq N.zero (N.succ N.zero) := zero_eq_one\n"
#: A `False` with a constructor: `False` proved with no axiom (needs `prelude`).
OWN_FALSE_CLAIM = BASICS + SORRY_AX + FALSE + "theorem boom : False := sorryAx _ Bool.false\n"
OWN_FALSE = BASICS + "inductive False : Prop where\n  | intro : False\ntheorem boom : False := False.intro\n"

#: (`genCtorIdx` needs more of Init than a prelude file has.)
_NAT = "set_option genCtorIdx false\ninductive Nat : Type where\n  | zero : Nat\n  | succ : Nat → Nat\n"
_EQ = "inductive Eq {α : Sort u} : α → α → Prop where\n  | refl (a : α) : Eq a a\n"
#: `0 + 0 = 0` with the challenge's `Nat.add`...
NAT_CLAIM = (
    "prelude\n"
    + _NAT
    + _EQ
    + SORRY_AX
    + "noncomputable def Nat.add (a b : Nat) : Nat := Nat.rec a (fun _ r => Nat.succ r) b\n"
    + "theorem add_claim : Eq (Nat.add Nat.zero Nat.zero) Nat.zero := sorryAx _ Bool.false\n"
)
#: ...and "proved" with a wrong `Nat.add` of the proof's own (its definition says 1): Lean evaluates
#: `Nat.add` by its name, with built-in arithmetic, whatever the definition says.
WRONG_NAT_ADD = (
    "prelude\n"
    + _NAT
    + _EQ
    + "noncomputable def Nat.add (_a _b : Nat) : Nat := Nat.succ Nat.zero\n"
    + "theorem add_claim : Eq (Nat.add Nat.zero Nat.zero) Nat.zero := Eq.refl _\n"
)

#: Honest proofs that use the constructs the discovery must follow.
HONEST_SCOPES = (
    BASICS
    + "namespace A\nsection S\n/-- a docstring -/\nprivate theorem p : Eq N.zero N.zero := Eq.refl N.zero\n"
    + "protected theorem q : Eq N.zero N.zero := Eq.refl N.zero\nend S\nend A\n"
    + "theorem _root_.r : Eq N.zero N.zero := Eq.refl N.zero -- #exit in a comment is fine\n"
)
