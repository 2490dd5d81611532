"""Reading Lean source text the way Lean's tokenizer does, as far as lean-mcp needs it.

`code_only(text)` blanks out comments and string/char literals (every character but a newline
becomes a space), so a scan for a command or a keyword never matches words inside a comment or a
string, and positions stay where they were. `Code(text).tokens()` cuts the code into identifiers
(dotted, `«guillemet»` parts included) and single symbols, with their line numbers; a `WordScanner`
finds only the tokens that are given words (keywords), cut exactly as `tokens()` cuts them.

Every scan is a regex pass (linear in the text's length): no Python work per character, and per
token only where a caller asks for every token.

Where a construct is ambiguous (an interpolated string `s!"..{..}.."`, whose braces hold code) the
text is left as code: a scan may then see too much (a false refusal), never too little.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

_IDENT_START = re.compile(r"[^\W\d]|_")
_IDENT_CHAR = re.compile(r"[\w'!?]")


def _is_ident_char(ch: str) -> bool:
    return bool(_IDENT_CHAR.match(ch))


_COMMENT_MARK = re.compile(r"/-|-/")
_STRING_REST = re.compile(r'(?:[^"\\]++|\\.)*+"', re.S)


def _block_comment_end(text: str, start: int) -> int:
    """The offset just past the nested `/- ... -/` comment opening at `start` (len(text) if unterminated)."""
    depth, search = 0, _COMMENT_MARK.search
    mark = search(text, start)
    while mark is not None:
        depth += 1 if mark.group() == "/-" else -1
        if depth == 0:
            return mark.end()
        mark = search(text, mark.end())
    return len(text)


def _string_end(text: str, start: int) -> int:
    """The offset just past the string literal whose `"` is at `start` (a backslash escapes the next character)."""
    match = _STRING_REST.match(text, start + 1)
    return len(text) if match is None else match.end()


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
    return "\n".join(" " * len(line) for line in chunk.split("\n"))


_SPECIAL = re.compile(r"--|/-|«|\"|r#*\"|'")


def code_only(text: str) -> str:
    """`text` with comments and string/char literals blanked (same length, same line breaks)."""
    if "-" not in text and '"' not in text and "'" not in text and "«" not in text:
        return text  # every construct `_SPECIAL` finds holds one of these characters: nothing to blank
    return _blanked(text)


@functools.lru_cache(maxsize=4)  # the refusal scan and the declaration scan of one text share one pass
def _blanked(text: str) -> str:
    return _blank_literals(text)


def _blank_literals(text: str) -> str:
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
#: Regex source for a (dotted) name token: what `Token.is_ident` holds when no `«` is left unclosed.
NAME = rf"{_PART}(?:\.{_PART})*"
_TOKEN_RE = rf"{NAME}|#[A-Za-z_]\w*|:=|\S"
_TOKEN = re.compile(_TOKEN_RE)
_NEXT_TOKEN = re.compile(rf"\s*+({_TOKEN_RE})")
_NAME_PART = re.compile(r"«([^»]*)»|([^.«»]+)")
#: Stands in for a `«` that no `»` follows (see `_unclosed_escapes`): a one-character token either way.
_UNCLOSED = "\x01"
#: Regex source for an identifier token of `Code.scan` (dotted, escaped parts; an unclosed `«` counts too).
IDENT = rf"(?:{NAME}|{_UNCLOSED})"


def token_is(words: Iterable[str]) -> str:
    """Regex source matching, where a token starts, a token that is exactly one of `words` (nothing longer)."""
    alternatives = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    return rf"(?:{alternatives})(?![\w'!?])(?!\.{_PART})"


def _unclosed_escapes(code: str) -> str:
    """`code` with every `«` that no `»` follows replaced by a placeholder of the same length.

    Such a `«` is a one-character token whatever comes after it; without the placeholder each one
    would send the token pattern looking for a `»` to the end of the text (quadratic time). The
    placeholder's own character, if the code holds it, becomes another symbol (a one-character
    token either way), so the placeholder stands for nothing else.
    """
    if _UNCLOSED in code:
        code = code.replace(_UNCLOSED, "\x02")
    first = code.find("«", code.rfind("»") + 1)
    return code if first < 0 else code[:first] + code[first:].replace("«", _UNCLOSED)


class Code:
    """The code of a Lean text (`code_only`: comments and literals blanked), ready for token scans."""

    __slots__ = ("scan", "text")

    def __init__(self, source: str) -> None:
        self.text = code_only(source)
        #: `text` as token patterns run on it (same length and tokens; see `_unclosed_escapes`)
        self.scan = _unclosed_escapes(self.text)

    def tokens(self, start: int = 0) -> Iterator[Token]:
        """The tokens from offset `start` (a token boundary) on, each with its line."""
        text = self.text
        line, last = text.count("\n", 0, start) + 1, start
        for match in _TOKEN.finditer(self.scan, start):
            begin = match.start()
            line += text.count("\n", last, begin)
            last = begin
            yield Token(text[begin : match.end()], line, begin)


class WordScanner:
    """Finds the tokens of a `Code` that are one of `words`, exactly where `Code.tokens` would cut them.

    Without a `«` in the code no token holds a space, so a space ends every token: an occurrence of a
    word that follows a space (or the start) is a token, and any other occurrence is checked by cutting
    tokens from the nearest earlier space. With a `«` (an escaped name may hold spaces) one regex pass
    skips token after token to each word. Either way no Python work per token, and linear time.
    """

    def __init__(self, words: Iterable[str]) -> None:
        whole = token_is(words)
        self._occurrence = re.compile(whole)
        # Runs of spaces, digits and symbols hold no word's start (each such character is a token of its
        # own, or a space); a letter, `_`, `«` or `#` starts a token that is matched whole.
        self._skipping = re.compile(rf"(?:[\s\d]++|[^\w«#]++|(?!{whole})(?>{_TOKEN_RE}))*+({whole})?")

    def find(self, code: Code, start: int = 0) -> Iterator[tuple[Token, Token | None]]:
        """From offset `start` (a token boundary) on: each token that is one of the words, and the token
        after it (None at the end), with their lines."""
        text, scan = code.text, code.scan
        line, last = text.count("\n", 0, start) + 1, start
        for begin, end in self._spans(text, scan, start):
            line += text.count("\n", last, begin)
            last = begin
            after = _NEXT_TOKEN.match(scan, end)
            following = None
            if after is not None:
                at = after.start(1)
                following = Token(text[at : after.end(1)], line + text.count("\n", begin, at), at)
            yield Token(text[begin:end], line, begin), following

    def _spans(self, text: str, scan: str, start: int) -> Iterator[tuple[int, int]]:
        """(start, end) of each token from `start` on that is one of the words."""
        if "«" in text:
            for match in self._skipping.finditer(scan, start):
                if match.group(1) is not None:
                    yield match.span(1)
            return
        boundary = start  # a known token boundary: nothing before it needs cutting again
        for match in self._occurrence.finditer(scan, start):
            begin = match.start()
            if begin > boundary and not scan[begin - 1].isspace():
                cut = max(scan.rfind(" ", boundary, begin), scan.rfind("\n", boundary, begin)) + 1
                if not _token_starts_at(scan, max(cut, boundary), begin):
                    boundary = match.end()  # the token holding this occurrence ends with it (see `token_is`)
                    continue
            boundary = match.end()
            yield begin, boundary


def _token_starts_at(scan: str, boundary: int, offset: int) -> bool:
    """Whether cutting tokens from `boundary` (a token boundary) on starts one at `offset`."""
    for token in _TOKEN.finditer(scan, boundary):
        if token.start() >= offset:
            return token.start() == offset
        if token.end() > offset:
            return False
    return False


def name_parts(name: str) -> list[str]:
    """The components of a dotted Lean name, guillemets removed (`A.«b c»` → ["A", "b c"])."""
    if "«" not in name and "»" not in name:
        parts = name.split(".")
        return [part for part in parts if part] if "" in parts else parts
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _NAME_PART.finditer(name)]


def render_name(parts: list[str]) -> str:
    """A name that Lean reads back as exactly `parts`, whatever they hold: every part in guillemets."""
    return "«" + "».«".join(parts) + "»" if parts else ""
