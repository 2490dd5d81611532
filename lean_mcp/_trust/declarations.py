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
import re

from .._lean.lexer import IDENT, Code, WordScanner, name_parts, token_is

THEOREM_KEYWORDS = frozenset({"theorem", "lemma"})
_SCOPE_OPENERS = frozenset({"namespace", "section", "mutual"})
_KEYWORDS = THEOREM_KEYWORDS | _SCOPE_OPENERS | {"sorry", "admit", "end", "axiom"}
_KEYWORD_SCAN = WordScanner(_KEYWORDS)


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


_LEADING = re.compile(rf"\s*+({token_is(['module', 'prelude'])})")
_IMPORT = re.compile(
    rf"\s*+(?:{token_is(['public', 'private', 'meta'])}\s*+)*+{token_is(['import'])}(?:\s*+{token_is(['all'])})?+"
)
#: A module name: an identifier on the import's line (not `import` itself, which starts the next import).
_MODULE = re.compile(rf"[^\S\n]*+(?!{token_is(['import'])})({IDENT})")
_SPACE = re.compile(r"\s*+")


def _header(code: Code, found: Declarations) -> int:
    """Read `module`/`prelude`/imports; the offset where the body starts (its first token, or the end)."""
    scan, text = code.scan, code.text
    pos = 0
    while (match := _LEADING.match(scan, pos)) is not None:
        found.prelude = found.prelude or match.group(1) == "prelude"
        pos = match.end()
    while (match := _IMPORT.match(scan, pos)) is not None:
        pos = match.end()
        while (module := _MODULE.match(scan, pos)) is not None:
            name = text[module.start(1) : module.end(1)]
            found.imports.append(".".join(name_parts(name)))
            pos = module.end()
            if "\n" in name:  # a `«...»` part ran onto the next lines: what follows is not on the import's line
                break
    return _SPACE.match(scan, pos).end()  # type: ignore[union-attr]  # `\s*` always matches


def read_declarations(text: str) -> Declarations:
    """The theorems, axioms, imports and sorries of `text` (see the module docstring)."""
    code = Code(text)
    found = Declarations()
    scopes: list[list[str]] = []  # the namespace parts each open scope adds
    for tok, nxt in _KEYWORD_SCAN.find(code, _header(code, found)):
        word = tok.text
        if word in ("sorry", "admit"):
            found.sorry_lines.append(tok.line)
        elif word in _SCOPE_OPENERS:
            adds = name_parts(nxt.text) if word == "namespace" and nxt is not None and nxt.is_ident else []
            scopes.append(adds)
        elif word == "end":
            if scopes:
                scopes.pop()
        elif word in THEOREM_KEYWORDS:
            if nxt is not None and nxt.is_ident:
                found.theorems.append(_full_name(scopes, name_parts(nxt.text)))
                found.theorem_lines.append(tok.line)
        else:  # axiom
            readable = nxt is not None and nxt.is_ident
            found.axioms.append(".".join(_full_name(scopes, name_parts(nxt.text))) if readable and nxt else None)
    return found


def _full_name(scopes: list[list[str]], parts: list[str]) -> list[str]:
    if parts and parts[0] == "_root_":
        return parts[1:]
    return [part for scope in scopes for part in scope] + parts
