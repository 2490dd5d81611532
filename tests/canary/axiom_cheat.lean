prelude
inductive N : Type where
  | zero : N
  | succ : N → N

inductive Eq {α : Sort u} : α → α → Prop where
  | refl (a : α) : Eq a a
inductive False : Prop
axiom cheat : False
theorem zero_eq_one : Eq N.zero (N.succ N.zero) := False.rec _ cheat
