prelude
inductive N : Type where
  | zero : N
  | succ : N → N

inductive Eq {α : Sort u} : α → α → Prop where
  | refl (a : α) : Eq a a
inductive Bool : Type where | false | true
axiom sorryAx (α : Sort u) (synthetic : Bool) : α
set_option warn.sorry false
theorem zero_eq_one : Eq N.zero (N.succ N.zero) := sorryAx _ Bool.false
