prelude
set_option genCtorIdx false
inductive Nat : Type where
  | zero : Nat
  | succ : Nat → Nat
inductive Eq {α : Sort u} : α → α → Prop where
  | refl (a : α) : Eq a a
noncomputable def Nat.add (_a _b : Nat) : Nat := Nat.succ Nat.zero
theorem add_claim : Eq (Nat.add Nat.zero Nat.zero) Nat.zero := Eq.refl _
