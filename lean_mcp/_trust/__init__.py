"""What makes `proved` trustworthy: refused constructs, theorem discovery, the axiom audit, pinned statements.

`guard.TrustedBackend` wraps any backend with these checks; `docs/verdicts.md` says what they mean.
"""
