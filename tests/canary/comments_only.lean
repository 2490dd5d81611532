prelude
-- theorem zero_eq_one : Eq N.zero (N.succ N.zero) := by trivial
/- nothing to see -/
