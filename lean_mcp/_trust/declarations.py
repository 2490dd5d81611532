"""What a Lean text declares, read from its tokens: theorems (full names), axioms, imports, `sorry`.

Namespaces, sections and `mutual` blocks are tracked (`end` closes the innermost), modifiers
(`private`, `protected`, `noncomputable`, attributes, docstrings) are skipped, `_root_.` names are
taken as written. This is a syntactic reading: a theorem produced by a macro is not found, and a
name read wrongly is audited under a name Lean does not know, which fails closed (the audit's
answer is missing, so the verdict is not `proved`). Pin the statement for a verdict that does not
depend on this reading at all.

Two readings give the same answer: `_read_tokens` cuts tokens as `lexer.Code` does and works on
any text; `_read_plain`, for code without a `«` (where a space ends every token), reads the header
and the keywords in two regex passes, and gives up (the token reading decides) wherever a keyword's
start is not plain: after a digit, `'`, `!`, `?` or `.`, or a header with `public`/`private`/`meta`/
`all`. `tests/test_audit_fast_paths.py` pins the two to each other on adversarial and random texts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

from .._lean.lexer import IDENT, NAME, Code, WordScanner, code_only, name_parts, token_is

THEOREM_KEYWORDS = frozenset({"theorem", "lemma"})
_SCOPE_OPENERS = frozenset({"namespace", "section", "mutual"})
_KEYWORDS = THEOREM_KEYWORDS | _SCOPE_OPENERS | {"sorry", "admit", "end", "axiom"}
_KEYWORD_SCAN = WordScanner(_KEYWORDS)


@dataclasses.dataclass(slots=True)
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


#: One keyword of the body, as both readings hand it on: the word, its line, the name after it (if the
#: next token is a name).
_Keyword = tuple[str, int, str | None]

_LEADING_SRC = rf"\s*+(?P<word>{token_is(['module', 'prelude'])})"
_IMPORT_SRC = (
    rf"\s*+(?:{token_is(['public', 'private', 'meta'])}\s*+)*+{token_is(['import'])}(?:\s*+{token_is(['all'])})?+"
)
_LEADING = re.compile(_LEADING_SRC)
_IMPORT = re.compile(_IMPORT_SRC)
#: A module name: an identifier on the import's line (not `import` itself, which starts the next import).
_MODULE = re.compile(rf"[^\S\n]*+(?!{token_is(['import'])})({IDENT})")
_SPACE = re.compile(r"\s*+")


def read_declarations(text: str) -> Declarations:
    """The theorems, axioms, imports and sorries of `text` (see the module docstring)."""
    plain = code_only(text)
    if "«" not in plain:
        found = _read_plain(plain)
        if found is not None:
            return found
    return _read_tokens(text)


def _read_tokens(text: str) -> Declarations:
    """The token reading: any text."""
    code = Code(text)
    found = Declarations()
    start = _header(code, found)
    _take(found, _token_keywords(code, start))
    return found


def _header(code: Code, found: Declarations) -> int:
    """Read `module`/`prelude`/imports; the offset where the body starts (its first token, or the end)."""
    scan, text = code.scan, code.text
    pos = 0
    while (match := _LEADING.match(scan, pos)) is not None:
        found.prelude = found.prelude or match["word"] == "prelude"
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


def _token_keywords(code: Code, start: int) -> Iterator[_Keyword]:
    for tok, nxt in _KEYWORD_SCAN.find(code, start):
        yield tok.text, tok.line, nxt.text if nxt is not None and nxt.is_ident else None


#: The header as `_header` reads it, in one match (`leading`: the `module`/`prelude` words; `imports`: the
#: import commands; `_MODULE`'s `\n` rule cannot apply: without a `«` no name holds a line break).
_PLAIN_HEADER = re.compile(
    rf"(?P<leading>(?:\s*+{token_is(['module', 'prelude'])})*+)"
    rf"(?P<imports>(?:{_IMPORT_SRC}(?:[^\S\n]*+(?!{token_is(['import'])}){NAME})*+)*+)\s*+"
)
#: Words that make an import command's words ambiguous to split (a module may be named `all`, too).
_IMPORT_MODIFIERS = frozenset({"public", "private", "meta", "all"})
#: A keyword token (`word`), and the `name` after it when the next token is a name. A keyword is a token
#: of its own when what precedes it is a space, the start, or a symbol other than `#` (`#theorem` is one
#: token) and `.`; after a letter or `_` it is inside a name (each keyword checks that behind itself, so
#: the pattern still starts with the keywords' letters and the regex engine skips ahead to them). After a
#: digit, `'`, `!`, `?` or `.` it may be either (`1theorem` is a numeral and a keyword, `x1theorem` one
#: name): `_ODD_BEFORE` says so, and the token reading decides.
_PLAIN_KEYWORD = re.compile(
    "(?P<word>(?:"
    + "|".join(rf"{word}(?<![^\W\d]{word})(?<!#{word})" for word in sorted(_KEYWORDS, key=len, reverse=True))
    + rf")(?![\w'!?])(?!\.{NAME}))(?=\s*+(?P<name>{NAME})|)"
)
_ODD_BEFORE = re.compile(r"[\d'!?.]")


#: The last header `_plain_header` read whole, if it has an import and ends a line: its text, `prelude`, its
#: modules. Prover loops send the same header again and again; a text that starts with it has the same
#: header unless another import follows (more space only moves the body's start; `module`/`prelude` can
#: only come before the first import).
_last_header: list[tuple[str, bool, tuple[str, ...]]] = [("", False, ())]
#: The words one of which starts every match of `_IMPORT` after its leading space.
_IMPORT_STARTS = ("import", "public", "private", "meta")


def _plain_header(code: str) -> tuple[int, bool, list[str]] | None:
    """`_PLAIN_HEADER`'s reading of `code`: where the body starts, `prelude`, the imported modules; None
    when a modifier word makes the import words ambiguous."""
    text, prelude, modules = _last_header[0]
    if text and code.startswith(text):
        start = len(text)
        if code[start : start + 1].isspace():
            start = _SPACE.match(code, start).end()  # type: ignore[union-attr]  # `\s*` always matches
        if not code.startswith(_IMPORT_STARTS, start):  # so `_IMPORT` cannot match there: no import follows
            return start, prelude, list(modules)
    head = _PLAIN_HEADER.match(code)
    assert head is not None  # every part of the pattern may match empty
    words = head["imports"].split()  # `import` words and module names: without a `«`, a space ends each
    if not _IMPORT_MODIFIERS.isdisjoint(words):
        return None
    start, prelude, found = head.end(), "prelude" in head["leading"], [word for word in words if word != "import"]
    if words and code.endswith("\n", 0, start):  # no name runs on past a line break: what follows is not the header
        _last_header[0] = (code[:start], prelude, tuple(found))
    return start, prelude, found


def _read_plain(code: str) -> Declarations | None:
    """The plain reading of `code` (comments and literals blanked, no `«`); None where it cannot be sure."""
    if "import" in code or "prelude" in code or "module" in code:
        header = _plain_header(code)
        if header is None:
            return None
        start, prelude, modules = header
        found = Declarations([], [], [], modules, prelude, [])
    else:  # no header word anywhere: the header is the leading space (`\s` and `str.isspace` agree)
        start = len(code) - len(code.lstrip())
        found = Declarations([], [], [], [], False, [])
    keywords: list[_Keyword] = []
    line, last = code.count("\n", 0, start) + 1 if start else 1, start
    # a short text is searched match by match here (as `_keyword_matches` would, without listing them first)
    found_at = iter(_keyword_matches(code, start)) if len(code) - start >= _FIND_FROM else None
    match = next(found_at, None) if found_at is not None else _PLAIN_KEYWORD.search(code, start)
    while match is not None:
        begin = match.start()
        if begin and code[begin - 1] not in " \n" and _ODD_BEFORE.match(code, begin - 1):
            return None
        if begin != last:
            line += code.count("\n", last, begin)
            last = begin
        word, name = match.group(1, 2)  # "word", "name"
        keywords.append((word, line, name))
        match = next(found_at, None) if found_at is not None else _PLAIN_KEYWORD.search(code, match.end())
    _take(found, keywords)
    return found


#: From how many characters on `str.find` beats the regex scan: `find` costs a fixed ~2 k instructions
#: per call (nine words, ten calls at least) and ~1 per character; the scan ~200 per character.
_FIND_FROM = 128


def _keyword_matches(code: str, start: int) -> list[re.Match[str]]:
    """`_PLAIN_KEYWORD`'s matches from `start` on, in order. A long text's candidates are found with
    `str.find` (a regex scan for words stops at every letter they start with; `find` skips ahead in C),
    each checked by the same pattern anchored there: the same matches, as no two keyword tokens overlap."""
    if len(code) - start < _FIND_FROM:  # (one `search` per match: cheaper than `finditer`'s scanner for a few)
        matches = []
        search = _PLAIN_KEYWORD.search
        match = search(code, start)
        while match is not None:
            matches.append(match)
            match = search(code, match.end())
        return matches
    at_offsets = []
    for word in _KEYWORDS:
        at = code.find(word, start)
        while at >= 0:
            at_offsets.append(at)
            at = code.find(word, at + len(word))
    at_offsets.sort()
    matches = []
    for at in at_offsets:
        match = _PLAIN_KEYWORD.match(code, at)
        if match is not None:
            matches.append(match)
    return matches


def _take(found: Declarations, keywords: Iterator[_Keyword] | list[_Keyword]) -> None:
    """Add the body's keywords, in order, to `found`: namespaces, theorems, axioms, sorries."""
    scopes: list[list[str]] = []  # the namespace parts each open scope adds
    for word, line, name in keywords:
        if word in THEOREM_KEYWORDS:
            if name is not None:
                parts = name_parts(name)
                if scopes or (parts and parts[0] == "_root_"):
                    parts = _full_name(scopes, parts)
                found.theorems.append(parts)
                found.theorem_lines.append(line)
        elif word in ("sorry", "admit"):
            found.sorry_lines.append(line)
        elif word in _SCOPE_OPENERS:
            scopes.append(name_parts(name) if word == "namespace" and name is not None else [])
        elif word == "end":
            if scopes:
                scopes.pop()
        else:  # axiom
            found.axioms.append(".".join(_full_name(scopes, name_parts(name))) if name is not None else None)


def _full_name(scopes: list[list[str]], parts: list[str]) -> list[str]:
    """The full name of `parts` (a fresh list) declared in `scopes`."""
    if parts and parts[0] == "_root_":
        return parts[1:]
    return [part for scope in scopes for part in scope] + parts if scopes else parts
