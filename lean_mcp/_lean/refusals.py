"""Constructs a proof may not use, refused before Lean runs, each with the reason. One place for all.

- `prelude`: the file then defines its own `Nat`, `Eq`, `False`..., and the kernel trusts some of
  those *names* (its fast `Nat` arithmetic), so `False` can be "proved" with no axiom at all.
  Allowed only when the server runs with `--allow-prelude` (a Lean without `Init`, e.g. for tests).
- `#exit`: Lean stops reading there; what follows (a wrong theorem, lean-mcp's own audit) is never checked.
- `debug.skipKernelTC`: turns off the kernel's type check, the check every verdict rests on.
- `#guard_msgs`: swallows the messages of the command it wraps, errors and sorry warnings included.

Scans run on the code with comments and string literals blanked (`source.code_only`), so an honest
proof that only *mentions* `#exit` in a comment is not refused. `skipKernelTC` is refused wherever
it appears, comments included: no honest proof needs the word, and no lexer trick can hide it.
Whatever slips past these scans is caught later anyway: the axiom audit runs after the proof, so
text that stops Lean early leaves the audit unanswered and the verdict is not `proved`.
"""

from __future__ import annotations

import re

from .._errors import InvalidProofError
from .lexer import code_only

_EXIT = re.compile(r"#exit(?![\w'!?])")
_GUARD_MSGS = re.compile(r"#guard_msgs(?![\w'!?])")
_PRELUDE = re.compile(r"\s*prelude(?![\w'!?.])")
_SKIP_KERNEL = re.compile(r"skip\W{0,3}Kernel\W{0,3}TC", re.IGNORECASE)


def refuse_constructs(code: str, *, allow_prelude: bool) -> None:
    """Raise InvalidProofError when `code` uses a refused construct (see the module docstring)."""
    # every character the regex takes for a letter of "kernel" lowers to that letter (checked over all of
    # Unicode in tests/test_audit_fast_paths.py), and `lower` is a plain pass while the regex is not
    if "kernel" in code.lower() and _SKIP_KERNEL.search(code):
        raise InvalidProofError(
            "The proof mentions `debug.skipKernelTC`, which turns off the kernel's type check: a wrong proof "
            "would be accepted.",
            hint="Remove it; lean-mcp only accepts proofs the kernel has checked.",
        )
    plain = code_only(code)
    commands = "#" in plain  # both commands start with it: no `#`, nothing to search for
    if commands and _GUARD_MSGS.search(plain):
        raise InvalidProofError(
            "The proof uses `#guard_msgs`, which can hide Lean's errors and `sorry` warnings, so a wrong "
            "proof would look proved.",
            hint="Remove `#guard_msgs`: lean-mcp reports every message itself.",
        )
    if commands and _EXIT.search(plain):
        raise InvalidProofError(
            "The proof uses `#exit`: Lean stops reading there, so nothing after it would be checked.",
            hint="Remove `#exit` and whatever follows it that is not meant to be checked.",
        )
    if not allow_prelude and "prelude" in plain and _PRELUDE.match(plain):
        raise InvalidProofError(
            "The proof starts with `prelude`: it would define Lean's basic types (`Nat`, `Eq`, `False`...) "
            "itself, and the kernel trusts some of them by name, so `False` could be proved without any axiom.",
            hint="Remove `prelude` and import what you need; a server meant for prelude-only Lean runs with "
            "--allow-prelude (LEAN_MCP_ALLOW_PRELUDE).",
        )
