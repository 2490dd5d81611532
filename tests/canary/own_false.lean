prelude
inductive N : Type where
  | zero : N
  | succ : N → N

inductive Eq {α : Sort u} : α → α → Prop where
  | refl (a : α) : Eq a a
inductive False : Prop where
  | intro : False
theorem boom : False := False.intro
