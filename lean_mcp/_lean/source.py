"""Lean source text: the rules a proof's text must meet, reading a proof file, and splitting a
proof into its import header and its body (mapping positions back).

`validate_proof_text` is the one rule set for proof text; `read_proof_file` the one way a proof
is read from a file (never blocks on a FIFO, never reads past the size limit, strict UTF-8).

A text that passed the rules comes back as a `CheckedProof` (a `str`) that remembers the limits
it passed under, so each layer can call the gate and a text is scanned once on its way: the job
service checks a proof when it is submitted, and the trust guard, which checks whatever reaches a
backend, passes it on unscanned; a plain `str` (a direct backend call, a job recovered from the
store after a restart under other limits) is checked in full.

Header splitting:

The header is every line up to and including the last `import` line of the leading block of
`import` lines, blank lines and comments (`--` lines and whole-line `/- ... -/` blocks, nested
as Lean nests them; a doc comment `/-- ... -/` or `/-! ... -/` is code and ends the block, as it
ends Lean's header). `prelude`, `module`, and the module-system forms `public import`,
`meta import`, `import all` count as header lines too. Whole lines are removed, so a position
in the body maps back to the user's text by adding the header's line count to its line; its
column is unchanged. Lines are counted on `\\n` only, as Lean does (CRLF keeps its `\\r` on the
line it ends).

A text whose leading block cannot be read with certainty (e.g. an import line that runs into
a block comment continuing on the next line, or a tab that Lean refuses) is not split: it is
checked whole, as a fresh REPL command, which is always correct, only slower.
"""

from __future__ import annotations

import os
import re
import stat
from typing import NamedTuple

from .._errors import InvalidProofError, ProofTooLargeError
from .refusals import refuse_constructs

#: Commands that can swallow Lean's messages: a proof using them could hide its own errors.


class CheckedProof(str):
    """Proof text that `validate_proof_text` accepted under `max_bytes` and `allow_prelude`."""

    max_bytes: int
    allow_prelude: bool

    def __new__(cls, text: str, max_bytes: int, allow_prelude: bool) -> CheckedProof:
        checked = super().__new__(cls, text)
        checked.max_bytes, checked.allow_prelude = max_bytes, allow_prelude
        return checked

    def __reduce__(self) -> tuple[type[CheckedProof], tuple[str, int, bool]]:  # pickling
        return CheckedProof, (str(self), self.max_bytes, self.allow_prelude)

    def __copy__(self) -> CheckedProof:  # immutable, as a str is
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> CheckedProof:
        return self

    def passes(self, max_bytes: int, allow_prelude: bool) -> bool:
        """Whether the limits it passed are at least as strict as these."""
        return self.max_bytes <= max_bytes and (allow_prelude or not self.allow_prelude)


def validate_proof_text(code: str, max_bytes: int, *, allow_prelude: bool = False) -> CheckedProof:
    """`code` as a `CheckedProof`; refused when it cannot be checked as given: not a string, empty, over
    `max_bytes`, or using a refused construct (`lean.refusals`: `#guard_msgs`, `#exit`,
    `debug.skipKernelTC`, and `prelude` unless `allow_prelude`).

    A `CheckedProof` that passed limits at least as strict is returned as it is, unscanned.
    Raises InvalidProofError / ProofTooLargeError with a message that says what to do.
    """
    if isinstance(code, CheckedProof) and code.passes(max_bytes, allow_prelude):
        return code
    check_proof_text(code, max_bytes, allow_prelude=allow_prelude)
    return CheckedProof(code, max_bytes, allow_prelude)


def check_proof_text(code: str, max_bytes: int, *, allow_prelude: bool = False) -> None:
    """The same gate for a layer that passes the text on as it is (the trust guard): raises as
    `validate_proof_text` does, and lets a `CheckedProof` of limits at least as strict through unscanned."""
    if isinstance(code, CheckedProof) and code.passes(max_bytes, allow_prelude):
        return
    if not isinstance(code, str):
        raise InvalidProofError(f"The proof must be Lean source text (a string), not {type(code).__name__}.")
    if not code or code.isspace():
        raise InvalidProofError("The proof is empty.")
    if len(code) * 4 > max_bytes:  # else it fits for sure: a character is at most 4 bytes of UTF-8
        size = len(code.encode("utf-8", errors="surrogatepass"))
        if size > max_bytes:
            raise ProofTooLargeError(f"The proof is {size:,} bytes; the limit is {max_bytes:,} bytes.")
    refuse_constructs(code, allow_prelude=allow_prelude)


#: What to do about a proof file that cannot be read.
READ_HINT = "Send the proof's text, or the path of a readable UTF-8 .lean file."


def read_proof_file(path: str | os.PathLike[str], max_bytes: int | None = None) -> str:
    """The text of the proof file `path`: a regular file, at most `max_bytes` (if given), UTF-8.

    Never blocks (a FIFO is opened non-blocking and refused) and never reads more than the limit.
    Raises InvalidProofError (or ProofTooLargeError) naming the file and what is wrong with it.
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidProofError(f"Cannot read the proof file {name}: it does not exist.", hint=READ_HINT) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise _unreadable(name, _reason(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _unreadable(name, "it is not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise ProofTooLargeError(
                f"The proof file {name} is {info.st_size:,} bytes; the limit is {max_bytes:,} bytes."
            )
        with open(fd, "rb", closefd=False) as file:
            data = file.read() if max_bytes is None else file.read(max_bytes + 1)
    except OSError as exc:
        raise _unreadable(name, _reason(exc)) from None
    finally:
        os.close(fd)
    if max_bytes is not None and len(data) > max_bytes:  # it grew while we read it
        raise ProofTooLargeError(f"The proof file {name} is over the limit of {max_bytes:,} bytes.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _unreadable(name, f"it is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})") from None


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)).rstrip(".")


def _unreadable(name: str, reason: str) -> InvalidProofError:
    return InvalidProofError(f"Cannot read the proof file {name}: {reason}.", hint=READ_HINT)


_PART = r"(?:«[^»\n]*»|[^\W\d][\w'!?]*)"
_IDENT = rf"{_PART}(?:\.{_PART})*"
_IMPORT = re.compile(rf"^(?:(?:public|private)\s+)?(?:meta\s+)?import(?:\s+all)?((?:\s+{_IDENT})+)$")
_KEYWORD_LINE = re.compile(r"^(?:prelude|module)$")
_LEAN_KEYWORDS = frozenset(
    {
        "theorem",
        "lemma",
        "def",
        "abbrev",
        "example",
        "axiom",
        "instance",
        "inductive",
        "structure",
        "class",
        "namespace",
        "section",
        "open",
        "variable",
        "universe",
        "set_option",
        "end",
        "noncomputable",
        "private",
        "protected",
        "attribute",
        "macro",
        "syntax",
        "notation",
        "where",
        "by",
        "fun",
        "have",
        "show",
        "let",
        "in",
        "at",
        "with",
    }
)


class SplitProof(NamedTuple):
    """A proof cut into `header` (imports) and `body`; `line_offset` is the header's line count.

    `key` is the normalised header (one `import X` line per import line, comments and spacing
    dropped): proofs with the same key can share a REPL whose environment ran the header.
    `key` is None when the text could not be split safely: then `body` is the whole text and
    it must be run as a fresh (env-less) command. (Immutable, and a tuple: every proof is split,
    and a tuple is built for half the cost of a frozen dataclass.)
    """

    header: str
    body: str
    line_offset: int
    key: str | None

    @property
    def whole(self) -> bool:
        """True when the text is to be checked whole, without a shared header env."""
        return self.key is None


def _strip_line_comment(line: str) -> str:
    index = line.find("--")
    return line if index < 0 else line[:index]


class _BlockComments:
    """Tracks `/- ... -/` nesting across lines."""

    def __init__(self) -> None:
        self.depth = 0

    def consume(self, line: str) -> str:
        """The part of `line` outside comments; remembers a block comment left open.

        `/--` and `/-!` outside a comment open a doc comment, which Lean parses as part of a
        command, not as whitespace: they and the rest of the line are returned as code.
        """
        if self.depth == 0 and "/-" not in line:
            return _strip_line_comment(line)
        outside: list[str] = []
        i = 0
        while i < len(line):
            if self.depth == 0 and line.startswith("--", i):
                break
            if self.depth == 0 and line.startswith(("/--", "/-!"), i):
                return "".join(outside) + line[i:]
            if line.startswith("/-", i):
                i += 3 if self.depth == 0 else 2  # Lean's whitespace skips the character after an outer `/-`
                self.depth += 1
                continue
            if self.depth > 0 and line.startswith("-/", i):
                self.depth -= 1
                i += 2
                continue
            if self.depth == 0:
                outside.append(line[i])
            i += 1
        return "".join(outside)


def _import_modules(code: str) -> list[str] | None:
    """The module names of an import line's code (comments already removed), or None."""
    match = _IMPORT.match(code)
    if not match:
        return None
    modules = match.group(1).split()
    if any(m in _LEAN_KEYWORDS for m in modules):
        return None
    return modules


def _normalise(code: str) -> str:
    return " ".join(code.split())


#: Whitespace Lean refuses outside comments (a tab: "tabs are not allowed"; a CR not ending its line:
#: "isolated carriage returns are not allowed"; others: "expected token").
_ODD_SPACE = re.compile(r"[^\S ]")


def _odd_spacing(lines: list[str]) -> bool:
    """True when code in `lines` (outside comments) holds whitespace other than spaces and line-ending CRs.

    Lean rejects such a header, so it must not share a REPL with a header of the same key.
    """
    comments = _BlockComments()
    return any(_ODD_SPACE.search(comments.consume(line.removesuffix("\r"))) for line in lines)


def split_header(text: str) -> SplitProof:
    """Cut `text` after the last line of its leading import block (see the module docstring)."""
    if "import" not in text and "prelude" not in text and "module" not in text:
        return SplitProof(header="", body=text, line_offset=0, key="")  # no line can be a header line
    return _split_lines(text)


def _split_lines(text: str) -> SplitProof:
    """`split_header`, line by line."""
    lines = text.split("\n")
    comments = _BlockComments()
    key_lines: list[str] = []
    header_end = 0  # number of lines in the header
    for index, line in enumerate(lines):
        stripped = comments.consume(line).strip()
        if not stripped:
            continue
        if _KEYWORD_LINE.match(stripped):
            key_lines.append(stripped)
            header_end = index + 1
            continue
        if _import_modules(stripped) is None:
            if re.match(r"^(?:(?:(?:public|private)\s+)?(?:meta\s+)?import|prelude|module)\b", stripped):
                return SplitProof(header="", body=text, line_offset=0, key=None)
            break
        if comments.depth > 0:
            # an import line that opens a comment running onto the next lines
            return SplitProof(header="", body=text, line_offset=0, key=None)
        key_lines.append(_normalise(stripped))
        header_end = index + 1
    if _odd_spacing(lines[:header_end]):
        return SplitProof(header="", body=text, line_offset=0, key=None)
    header = "\n".join(lines[:header_end])
    body = "\n".join(lines[header_end:])
    if header_end:
        header += "\n"
    return SplitProof(header=header, body=body, line_offset=header_end, key="\n".join(key_lines))
