prelude
set_option genCtorIdx false
inductive Nat : Type where
  | zero : Nat
  | succ : Nat → Nat
inductive Eq {α : Sort u} : α → α → Prop where
  | refl (a : α) : Eq a a
inductive Bool : Type where | false | true
axiom sorryAx (α : Sort u) (synthetic : Bool) : α
noncomputable def Nat.add (a b : Nat) : Nat := Nat.rec a (fun _ r => Nat.succ r) b
theorem add_claim : Eq (Nat.add Nat.zero Nat.zero) Nat.zero := sorryAx _ Bool.false
