prelude
inductive N : Type where
  | zero : N
  | succ : N → N

inductive Eq {α : Sort u} : α → α → Prop where
  | refl (a : α) : Eq a a
unsafe def zero_eq_one : Eq N.zero (N.succ N.zero) := zero_eq_one
