"""What a Lean text declares, read from its tokens: theorems (full names), axioms, imports, `sorry`.

Namespaces, sections and `mutual` blocks are tracked (`end` closes the innermost), modifiers
(`private`, `protected`, `noncomputable`, attributes, docstrings) are skipped, `_root_.` names are
taken as written. This is a syntactic reading: a theorem produced by a macro is not found, and a
name read wrongly is audited under a name Lean does not know, which fails closed (the audit's
answer is missing, so the verdict is not `proved`). Pin the statement for a verdict that does not
depend on this reading at all.
"""

from __future__ import annotations

import dataclasses

from ..lean.lexer import Token, name_parts, tokens

__all__ = ["Declarations", "read_declarations"]

THEOREM_KEYWORDS = frozenset({"theorem", "lemma"})
_SCOPE_OPENERS = frozenset({"namespace", "section", "mutual"})
_KEYWORDS = THEOREM_KEYWORDS | _SCOPE_OPENERS | {"sorry", "admit", "end", "axiom"}


@dataclasses.dataclass
class Declarations:
    """The declarations lean-mcp found in a text."""

    #: Full names (as lists of components) of the theorems and lemmas, in order.
    theorems: list[list[str]] = dataclasses.field(default_factory=list)
    #: The line (1-based) of each theorem's keyword, same order.
    theorem_lines: list[int] = dataclasses.field(default_factory=list)
    #: Names of the axioms the text declares; None stands for an axiom whose name cannot be read.
    axioms: list[str | None] = dataclasses.field(default_factory=list)
    #: The modules imported by the header.
    imports: list[str] = dataclasses.field(default_factory=list)
    prelude: bool = False
    #: Lines holding a `sorry` / `admit` token.
    sorry_lines: list[int] = dataclasses.field(default_factory=list)


def _header(toks: tuple[Token, ...], found: Declarations) -> int:
    """Read `module`/`prelude`/imports; the index of the first body token."""
    i = 0
    while i < len(toks) and toks[i].text in ("module", "prelude"):
        found.prelude = found.prelude or toks[i].text == "prelude"
        i += 1
    while True:
        j = i
        while j < len(toks) and toks[j].text in ("public", "private", "meta"):
            j += 1
        if j >= len(toks) or toks[j].text != "import":
            return i
        j += 1
        if j < len(toks) and toks[j].text == "all":
            j += 1
        line = toks[j - 1].line
        while j < len(toks) and toks[j].is_ident and toks[j].line == line and toks[j].text not in ("import",):
            found.imports.append(".".join(name_parts(toks[j].text)))
            j += 1
        i = j


def read_declarations(text: str) -> Declarations:
    """The theorems, axioms, imports and sorries of `text` (see the module docstring)."""
    toks = tokens(text)
    found = Declarations()
    body = _header(toks, found)
    scopes: list[list[str]] = []  # the namespace parts each open scope adds
    for i in range(body, len(toks)):
        tok = toks[i]
        word = tok.text
        if word not in _KEYWORDS:  # most tokens: one set lookup
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if word in ("sorry", "admit"):
            found.sorry_lines.append(tok.line)
        elif word in _SCOPE_OPENERS:
            adds = name_parts(nxt.text) if word == "namespace" and nxt is not None and nxt.is_ident else []
            scopes.append(adds)
        elif word == "end" and scopes:
            scopes.pop()
        elif word in THEOREM_KEYWORDS and nxt is not None and nxt.is_ident:
            found.theorems.append(_full_name(scopes, name_parts(nxt.text)))
            found.theorem_lines.append(tok.line)
        elif word == "axiom":
            readable = nxt is not None and nxt.is_ident
            found.axioms.append(".".join(_full_name(scopes, name_parts(nxt.text))) if readable and nxt else None)
    return found


def _full_name(scopes: list[list[str]], parts: list[str]) -> list[str]:
    if parts and parts[0] == "_root_":
        return parts[1:]
    return [part for scope in scopes for part in scope] + parts
