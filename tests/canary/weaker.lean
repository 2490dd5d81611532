prelude
inductive N : Type where
  | zero : N
  | succ : N → N

inductive Eq {α : Sort u} : α → α → Prop where
  | refl (a : α) : Eq a a
theorem zero_eq_one : Eq N.zero N.zero := Eq.refl N.zero
