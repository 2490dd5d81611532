"""Reading Lean source text the way Lean's tokenizer does, as far as lean-mcp needs it.

`code_only(text)` blanks out comments and string/char literals (every character but a newline
becomes a space), so a scan for a command or a keyword never matches words inside a comment or a
string, and positions stay where they were. `tokens(text)` cuts the code into identifiers
(dotted, `«guillemet»` parts included) and single symbols, with their line numbers.

Where a construct is ambiguous (an interpolated string `s!"..{..}.."`, whose braces hold code) the
text is left as code: a scan may then see too much (a false refusal), never too little.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

__all__ = ["Token", "code_only", "name_parts", "render_name", "tokens"]

_IDENT_START = re.compile(r"[^\W\d]|_")
_IDENT_CHAR = re.compile(r"[\w'!?]")


def _is_ident_char(ch: str) -> bool:
    return bool(_IDENT_CHAR.match(ch))


def _block_comment_end(text: str, start: int) -> int:
    """The offset just past the nested `/- ... -/` comment opening at `start` (len(text) if unterminated)."""
    depth, i = 0, start
    while i < len(text):
        if text.startswith("/-", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("-/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(text)


def _string_end(text: str, start: int) -> int:
    """The offset just past the string literal whose `"` is at `start`."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    return len(text)


def _char_end(text: str, start: int) -> int | None:
    """The offset just past a char literal `'x'` / `'\\n'` / `'\\u{41}'` at `start`, or None if it is none."""
    if start + 2 < len(text) and text[start + 1] != "\\" and text[start + 2] == "'":
        return start + 3
    if text.startswith("\\", start + 1):
        close = text.find("'", start + 3)
        if 0 < close <= start + 12 and "\n" not in text[start:close]:
            return close + 1
    return None


def _blank(chunk: str) -> str:
    return "".join("\n" if ch == "\n" else " " for ch in chunk)


_SPECIAL = re.compile(r"--|/-|«|\"|r#*\"|'")


@functools.lru_cache(maxsize=64)
def code_only(text: str) -> str:
    """`text` with comments and string/char literals blanked (same length, same line breaks)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        match = _SPECIAL.search(text, i)
        if match is None:
            out.append(text[i:])
            break
        start = match.start()
        out.append(text[i:start])
        end = _literal_end(text, start, match.group())
        if end is None:  # not a literal after all (an identifier's `'`, `r`...): code
            out.append(text[start])
            i = start + 1
            continue
        chunk = text[start:end]
        out.append(chunk if chunk.startswith("«") else _blank(chunk))
        i = end
    return "".join(out)


def _literal_end(text: str, start: int, found: str) -> int | None:
    """Where the comment / literal / escaped identifier found at `start` ends; None if it is none."""
    prev = text[start - 1] if start else " "
    if found == "--":
        end = text.find("\n", start)
        return len(text) if end < 0 else end
    if found == "/-":
        return _block_comment_end(text, start)
    if found == "«":  # an escaped identifier part: code, whatever it holds
        close = text.find("»", start)
        return len(text) if close < 0 else close + 1
    if found == '"':
        return None if prev == "!" else _string_end(text, start)
    if found.startswith("r"):
        if _is_ident_char(prev):
            return None
        hashes = found[1:-1]
        close = text.find('"' + hashes, start + len(found))
        return len(text) if close < 0 else close + 1 + len(hashes)
    return None if _is_ident_char(prev) else _char_end(text, start)


class Token(NamedTuple):
    """One token of code: its text, its 1-based line and its offset in the text."""

    text: str
    line: int
    offset: int

    @property
    def is_ident(self) -> bool:
        return bool(_IDENT_START.match(self.text)) or self.text.startswith("«")


_PART = r"(?:«[^»]*»|[^\W\d][\w'!?]*)"
_TOKEN = re.compile(rf"{_PART}(?:\.{_PART})*|#[A-Za-z_]\w*|:=|\S")
_NAME_PART = re.compile(r"«([^»]*)»|([^.«»]+)")


@functools.lru_cache(maxsize=64)
def tokens(text: str) -> tuple[Token, ...]:
    """The tokens of `text` (comments and literals skipped), each with its line."""
    code = code_only(text)
    found: list[Token] = []
    line, last = 1, 0
    count, make = code.count, tuple.__new__  # hot: a few µs per token add up on short proofs
    for match in _TOKEN.finditer(code):
        start = match.start()
        line += count("\n", last, start)
        last = start
        found.append(make(Token, (match.group(), line, start)))
    return tuple(found)


def name_parts(name: str) -> list[str]:
    """The components of a dotted Lean name, guillemets removed (`A.«b c»` → ["A", "b c"])."""
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _NAME_PART.finditer(name)]


def render_name(parts: list[str]) -> str:
    """A name that Lean reads back as exactly `parts`, whatever they hold: every part in guillemets."""
    return ".".join(f"«{part}»" for part in parts)
