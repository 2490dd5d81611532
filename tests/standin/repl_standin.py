#!/usr/bin/env python3
"""A protocol-faithful stand-in for the Lean 4 REPL (leanprover-community/repl), for tests.

It speaks the REPL's stdin/stdout protocol exactly (see shared/spec/repl-protocol.md): requests are
read with `getLines` semantics, responses are Lean `Json.pretty` (width 80, keys in descending order)
followed by a blank line, bad requests kill the process with exit status 1 and nothing on stdout.

It does not know Lean. Its answers are scripted by the proof text:

* a `sorry` token (outside comments and strings) is reported as a sorry with a proof state, plus the
  warning ``declaration uses `sorry` `` on its declaration;
* `import X` in the header of an env-less command costs `--import-seconds`; a module whose name starts
  with `Nonexistent` gives the error `unknown module prefix 'X'`; `import` anywhere else is an error;
* `theorem|lemma|def|abbrev|axiom|inductive|structure|instance NAME` declarations are tracked per env;
  redeclaring a name of the env gives the error `'NAME' has already been declared`;
* each declaration depends on axioms as Lean's would: `sorryAx` when it holds a `sorry`, an `axiom`
  on itself, and any declaration on those of the names it mentions; `#print axioms NAME` on a line of
  its own answers as Lean 4.35 does (`'NAME' depends on axioms: [a, b]` / `'NAME' does not depend on
  any axioms`, info at the command; `Unknown constant` error for a name the env lacks), and
  `#check (Sort 0)` answers `Prop : Type`;
* directive comments on their own line, `-- standin: VERB [ARG]`: `error TEXT`, `info TEXT`,
  `work SECONDS`, `hang`, `crash`, `crash-once PATH`, `memory MB`, `stderr BYTES`; the hostile
  actions `write PATH`, `read PATH`, `connect HOST:PORT`, `getenv NAME` (see HOSTILE); misbehaviours for
  the driver's tests: `flood BYTES` (stdout bytes that end no answer), `answer-twice [SECONDS]` (the
  answer is written again, at once or SECONDS later), `env NAME` (an info message with NAME's value), and in tactic
  mode `status TEXT` (the step's `proofStatus` is TEXT, e.g. `Error: kernel type check failed: x`);
* tactic mode: see `Repl.tactic`;
* anything else elaborates cleanly: `{"env": n}`.

Stdlib only; it must never import the code under test.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn

# ---------------------------------------------------------------------------------------------------
# Lean `Json.pretty`: a faithful port of `Json.render` and of `Std.Format`'s layout algorithm.
# A document is a str (text), LINE, ("nest", n, doc), ("group", doc) or a list (concatenation).
# ---------------------------------------------------------------------------------------------------

LINE = ("line",)
WIDTH = 80


_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r"} | {
    code: f"\\u{code:04x}" for code in range(0x20) if code not in (0x0A, 0x0D)
}


def escape_string(s: str) -> str:
    """Lean's `Json.escape`: only `"`, `\\`, newline, CR and chars below 0x20 are escaped."""
    return '"' + s.translate(_ESCAPES) + '"'


def _bracket(left: str, body: Any, right: str) -> Any:
    return ("group", ("nest", len(left), [left, body, right]))


def _join_sep(docs: list[Any]) -> list[Any]:
    out: list[Any] = []
    for i, doc in enumerate(docs):
        if i:
            out += [",", LINE]
        out.append(doc)
    return out


def render(value: Any) -> Any:
    """Lean's `Json.render`: a JSON value as a Format document (object keys in descending order)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return escape_string(value)
    if isinstance(value, list):
        return _bracket("[", _join_sep([render(v) for v in value]), "]")
    if isinstance(value, dict):
        kvs = [("group", [escape_string(k), ":", LINE, render(value[k])]) for k in sorted(value, reverse=True)]
        return _bracket("{", _join_sep(kvs), "}")
    raise TypeError(f"cannot render {type(value).__name__}")


def _flat_width(doc: Any, memo: dict[int, int]) -> int:
    """The width of `doc` laid out flat (every line a space), memoized per node for one `pretty` call."""
    if isinstance(doc, str):
        return len(doc)
    width = memo.get(id(doc))
    if width is None:
        if doc is LINE:
            width = 1
        elif isinstance(doc, list):
            width = sum(_flat_width(part, memo) for part in doc)
        else:  # nest or group: flat either way
            width = _flat_width(doc[2] if doc[0] == "nest" else doc[1], memo)
        memo[id(doc)] = width
    return width


def _space(doc: Any, flatten: bool, budget: int, memo: dict[int, int]) -> tuple[bool, int]:
    """Lean's `spaceUptoLine`: (found a line break, width) of `doc`, stopping once over `budget`.

    Flat, a document never breaks, and its width past the budget matters only as "over": so the
    flat width (memoized) stands in for Lean's partial sum, the answer to every comparison the same.
    """
    if isinstance(doc, str):
        return False, len(doc)
    if flatten:
        return False, _flat_width(doc, memo)
    if doc is LINE:
        return True, 0
    if isinstance(doc, list):
        total = 0
        for part in doc:
            found, width = _space(part, flatten, budget - total, memo)
            total += width
            if found or total > budget:
                return found, total
        return False, total
    if doc[0] == "nest":
        return _space(doc[2], flatten, budget, memo)
    return False, _flat_width(doc[1], memo)  # group


@dataclass
class _Group:
    flatten: bool
    items: list[tuple[Any, int]]  # a stack: the next item is the last one


def _fits(group_doc: Any, stack: list[_Group], budget: int, memo: dict[int, int]) -> bool:
    """Lean's `pushGroup` test: the flattened group plus the rest up to the next line break fits."""
    _, total = _space(group_doc, True, budget, memo)
    if total > budget:
        return False
    for group in reversed(stack):
        for doc, _ in reversed(group.items):
            found, width = _space(doc, group.flatten, budget - total, memo)
            total += width
            if found or total > budget:
                return total <= budget
    return total <= budget


def pretty(value: Any, width: int = WIDTH) -> str:
    """Lean's `Json.pretty value width`: the exact text the REPL writes for a response."""
    out: list[str] = []
    column = 0
    memo: dict[int, int] = {}  # by id: `document` keeps every node alive, so no id is reused meanwhile
    document = render(value)
    stack = [_Group(False, [(document, 0)])]
    while stack:
        group = stack[-1]
        if not group.items:
            stack.pop()
            continue
        doc, indent = group.items.pop()
        if isinstance(doc, str):
            out.append(doc)
            column += len(doc)
        elif doc is LINE:
            if group.flatten:
                out.append(" ")
                column += 1
            else:
                out.append("\n" + " " * indent)
                column = indent
        elif isinstance(doc, list):
            group.items.extend((part, indent) for part in reversed(doc))
        elif doc[0] == "nest":
            group.items.append((doc[2], indent + doc[1]))
        elif group.flatten:
            group.items.append((doc[1], indent))
        else:
            fits = _fits(doc[1], stack, max(width - column, 0), memo)
            stack.append(_Group(fits, [(doc[1], indent)]))
    return "".join(out)


# ---------------------------------------------------------------------------------------------------
# Framing: `getLines`, fatal errors, responses.
# ---------------------------------------------------------------------------------------------------

LEAN_WS = " \t\r\n"


def read_request(stdin: Any) -> str:
    """The REPL's `getLines`: right-trimmed lines joined without separator, up to a blank line or EOF."""
    parts: list[str] = []
    while True:
        line = stdin.readline().decode("utf-8", errors="replace")
        if not line.strip(LEAN_WS):
            parts.append(line)
            return "".join(parts)
        parts.append(line.rstrip(LEAN_WS))


def write_response(value: Any) -> None:
    """`IO.println (toString json)` then `printFlush "\\n"`."""
    sys.stdout.buffer.write((pretty(value) + "\n\n").encode("utf-8", errors="replace"))
    sys.stdout.buffer.flush()


def die(message: str) -> NoReturn:
    """An uncaught Lean exception: message on stderr, nothing on stdout, exit status 1."""
    sys.stderr.write(f"uncaught exception: {message}\n")
    sys.stderr.flush()
    sys.exit(1)


def io_error_text(exc: OSError, path: str) -> str:
    """Lean's `IO.Error` text for a failed file operation."""
    reason = (exc.strerror or "io error").lower()
    return f"{reason} (error code: {exc.errno or 0})\n  file: {path}"


# ---------------------------------------------------------------------------------------------------
# Request decoding, by the precedence of the upstream `parse` (first matching shape wins).
# ---------------------------------------------------------------------------------------------------


class Mismatch(Exception):
    """This request shape does not decode."""


def _nat(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _check(v: Any, kind: str) -> bool:
    if kind == "nat":
        return _nat(v)
    if kind == "str":
        return isinstance(v, str)
    return isinstance(v, bool)


CMD_OPTIONS = {"env": "nat", "allTactics": "bool", "rootGoals": "bool", "infotree": "str"}
SHAPES: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("tactic", {"proofState": "nat", "tactic": "str"}, {}),
    ("pickle_env", {"env": "nat", "pickleTo": "str"}, {}),
    ("unpickle_env", {"unpickleEnvFrom": "str"}, {}),
    ("pickle_proof_state", {"proofState": "nat", "pickleTo": "str"}, {}),
    ("unpickle_proof_state", {"unpickleProofStateFrom": "str"}, {"env": "nat"}),
    ("command", {"cmd": "str"}, CMD_OPTIONS),
    ("file", {"path": "str"}, CMD_OPTIONS),
]


def _decode_shape(obj: Any, required: dict[str, str], optional: dict[str, str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise Mismatch("expected a JSON object")
    fields: dict[str, Any] = {}
    for key, kind in required.items():
        if obj.get(key) is None:
            raise Mismatch(f"property not found: {key}")
        if not _check(obj[key], kind):
            raise Mismatch(f"{key}: expected {kind}")
        fields[key] = obj[key]
    for key, kind in optional.items():
        value = obj.get(key)
        if value is not None and not _check(value, kind):
            raise Mismatch(f"{key}: expected {kind}")
        fields[key] = value
    return fields


def _fix_surrogates(value: Any) -> Any:
    """Lone surrogate escapes decode to U+FFFD in Lean's JSON parser."""
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if isinstance(value, list):
        return [_fix_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {k: _fix_surrogates(v) for k, v in value.items()}
    return value


def parse_request(query: str) -> tuple[str, dict[str, Any]]:
    """Decode one request, or die like the REPL does."""
    try:
        obj = _fix_surrogates(json.loads(query, parse_constant=_reject_constant))
    except (ValueError, RecursionError) as exc:
        pos = getattr(exc, "pos", 0)
        reason = getattr(exc, "msg", str(exc))
        die(pretty({"message": f"Could not parse JSON:\noffset {pos}: {reason}"}))
    error = "no request shape matches"
    for kind, required, optional in SHAPES:
        try:
            return kind, _decode_shape(obj, required, optional)
        except Mismatch as exc:
            error = str(exc)
    die(pretty({"message": f"Could not parse as a valid JSON command:\n{error}"}))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"unexpected constant {name}")


# ---------------------------------------------------------------------------------------------------
# A tiny Lean lexer: comments, strings, identifiers and other characters, with line/column.
# ---------------------------------------------------------------------------------------------------

TOKEN = re.compile(
    r"""(?P<comment>--[^\n]*)
      | (?P<block>/-)
      | (?P<string>"(?:[^"\\]|\\.)*"?)
      | (?P<ident>[^\W\d][\w'.!?]*)
      | (?P<space>\s+)
      | (?P<other>:=|=>|<;>|.)""",
    re.S | re.X,
)
DIRECTIVE = re.compile(r"--\s*standin:\s*(?P<verb>[\w-]+)\s*(?P<arg>.*?)\s*$")
DECL_KEYWORDS = {"theorem", "lemma", "def", "abbrev", "axiom", "inductive", "structure", "instance"}
NONEXISTENT = "Nonexistent"


@dataclass
class Token:
    kind: str
    text: str
    offset: int
    line: int  # 1-based
    column: int  # 0-based, code points

    def pos(self) -> dict[str, int]:
        return {"line": self.line, "column": self.column}

    def end_pos(self) -> dict[str, int]:
        return {"line": self.line, "column": self.column + len(self.text)}


def _block_end(text: str, start: int) -> int:
    """The offset just after the nested block comment starting at `start`."""
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


def lex(text: str) -> list[Token]:
    """Tokens of `text` (whitespace and block comments dropped)."""
    tokens: list[Token] = []
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    line_no, i = 0, 0
    while i < len(text):
        match = TOKEN.match(text, i)
        assert match is not None
        kind = match.lastgroup or "other"
        end = _block_end(text, i) if kind == "block" else match.end()
        while line_no + 1 < len(line_starts) and line_starts[line_no + 1] <= i:
            line_no += 1
        if kind not in ("space", "block"):
            tokens.append(Token(kind, text[i:end], i, line_no + 1, i - line_starts[line_no]))
        i = end
    return tokens


def line_prefix_blank(text: str, token: Token) -> bool:
    """Whether only whitespace precedes `token` on its line."""
    return not text[token.offset - token.column : token.offset].strip()


# ---------------------------------------------------------------------------------------------------
# REPL state and the scripted "elaboration".
# ---------------------------------------------------------------------------------------------------


@dataclass
class Env:
    decls: frozenset[str]
    imports: tuple[str, ...] = ()
    axioms: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass
class ProofState:
    goals: list[str]
    has_sorry: bool = False
    status: str | None = None  # a `status` directive's proofStatus


@dataclass
class Decl:
    keyword: Token
    name: Token | None
    goal: str
    tactics: list[list[Token]]  # the top-level tactics of its `by` block
    sorries: list[Token] = field(default_factory=list)


def message(severity: str, pos: dict[str, int], end_pos: dict[str, int] | None, data: str) -> dict[str, Any]:
    return {"severity": severity, "pos": pos, "endPos": end_pos, "data": data}


CLOSING_TACTICS = {
    "rfl", "exact", "assumption", "decide", "simp", "simp_all", "omega", "trivial", "norm_num", "linarith",
    "nlinarith", "aesop", "tauto", "contradiction", "ring", "positivity", "exact?", "apply?", "done", "sorry",
    "admit", "native_decide", "simpa",
}  # fmt: skip
SPLITTING_TACTICS = {
    "by_cases": ("pos", "neg"), "cases": ("zero", "succ"), "induction": ("zero", "succ"),
    "constructor": ("left", "right"), "split": ("isTrue", "isFalse"), "induction'": ("zero", "succ"),
}  # fmt: skip
#: `apply X` that leaves one goal per field of X.
SPLITTING_TERMS = {"And.intro": ("left", "right"), "Iff.intro": ("mp", "mpr")}
TACTIC_SEPARATORS = {";", "=>", "·", "<;>", "all_goals", "any_goals", "try", "first", "|", "focus", "next"}
PROGRESS_TACTICS = {
    "intro", "intros", "apply", "have", "cases'", "induction'", "refine", "trace", "use", "rw", "rewrite",
    "unfold", "show", "calc", "obtain", "rcases", "specialize", "exists", "left", "right", "ext", "funext",
    "skip", "set", "let", "case", "next", "first", "try", "repeat", "focus", "conv", "change",
    "generalize", "subst", "injection", "by_contra", "push_neg", "field_simp", "ring_nf", "all_goals",
    "any_goals", "on_goal", "rintro", "simp_rw", "dsimp", "norm_cast", "push_cast", "symm", "trans", "clear",
    "exfalso", "·",
}  # fmt: skip


PRINT_AXIOMS = re.compile(r"^#print axioms (?P<name>\S+)[ \t]*$", re.M)
CHECK_SORT = re.compile(r"^#check \(Sort 0\)[ \t]*$", re.M)


def axioms_of(body: list[Token], decls: list[Decl], known: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """The axioms each new declaration depends on: its sorries, itself if an axiom, and those of the names it uses."""
    found: dict[str, frozenset[str]] = {}
    starts = [d.keyword.offset for d in decls] + [sys.maxsize]
    for decl, end in zip(decls, starts[1:], strict=True):
        if decl.name is None:
            continue
        deps: set[str] = {"sorryAx"} if decl.sorries else set()
        if decl.keyword.text == "axiom":
            deps.add(decl.name.text)
        for tok in body:
            if tok.offset <= decl.name.offset or tok.kind == "comment":
                continue
            if tok.offset >= end or tok.column == 0:  # the next command
                break
            for used in (tok.text, tok.text.split(".")[0]):
                deps |= found.get(used) or known.get(used) or set()
        found[decl.name.text] = frozenset(deps)
    return found


def info_answers(text: str, axioms: dict[str, frozenset[str]]) -> list[dict[str, Any]]:
    """Lean's answers to the `#print axioms NAME` and `#check (Sort 0)` lines of `text`."""
    answers = []
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def pos(offset: int) -> dict[str, int]:
        line = bisect.bisect_right(line_starts, offset) - 1  # the last line that starts at or before offset
        return {"line": line + 1, "column": offset - line_starts[line]}

    for match in CHECK_SORT.finditer(text):
        start = pos(match.start())
        answers.append(message("info", start, {**start, "column": start["column"] + 6}, "Prop : Type"))
    for match in PRINT_AXIOMS.finditer(text):
        start = pos(match.start())
        name = match["name"].removeprefix("_root_.").replace("«", "").replace("»", "")
        if name not in axioms:
            where = pos(match.start("name"))
            end = {**where, "column": where["column"] + len(match["name"])}
            answers.append(message("error", where, end, f"Unknown constant `{match['name']}`"))
            continue
        deps = sorted(axioms[name])
        data = f"'{name}' depends on axioms: [{', '.join(deps)}]" if deps else f"'{name}' does not depend on any axioms"
        answers.append(message("info", start, {**start, "column": start["column"] + 6}, data))
    return answers


class Repl:
    """The REPL state: append-only environments and proof states, and the request handlers."""

    def __init__(self, import_seconds: float, work_seconds: float) -> None:
        self.import_seconds = import_seconds
        self.work_seconds = work_seconds
        self.envs: list[Env] = []
        self.proof_states: list[ProofState] = []
        self.memory: list[bytearray] = []
        self.repeat_after: float | None = None
        #: Set by a `status` directive: the proofStatus of the tactic step being run.
        self.forced_status: str | None = None

    # -- commands ------------------------------------------------------------------------------------

    def command(self, text: str, env_id: int | None, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Elaborate `text` (on env `env_id`, or fresh with a header) and record a new env."""
        if env_id is not None and env_id >= len(self.envs):
            return {"message": "Unknown environment."}
        tokens = lex(text)
        messages: list[dict[str, Any]] = []
        self.run_directives(text, tokens, messages)
        if self.work_seconds:  # sleep(0) would still give the CPU away on every command
            time.sleep(self.work_seconds)
        if env_id is None:
            imports, body = self.header(tokens, messages)
            base = Env(frozenset(), imports)
        else:
            base, body = self.envs[env_id], tokens
        decls = self.declarations(text, body, base, messages)
        options = options or {}
        sorries = self.sorries(decls, bool(options.get("rootGoals")), messages)
        tactics = self.all_tactics(text, decls) if options.get("allTactics") else []
        messages.sort(key=lambda m: (m["pos"]["line"], m["pos"]["column"]))
        new_names = {d.name.text for d in decls if d.name is not None}
        axioms = {**base.axioms, **axioms_of(body, decls, base.axioms)}
        messages += info_answers(text, axioms)
        messages.sort(key=lambda m: (m["pos"]["line"], m["pos"]["column"]))
        self.envs.append(Env(base.decls | new_names, base.imports, axioms))
        response: dict[str, Any] = {"env": len(self.envs) - 1}
        if messages:
            response["messages"] = messages
        if sorries:
            response["sorries"] = sorries
        if tactics:
            response["tactics"] = tactics
        return response

    def header(self, tokens: list[Token], messages: list[dict[str, Any]]) -> tuple[tuple[str, ...], list[Token]]:
        """Parse the header (`prelude`/`module`, then `[public|meta] import [all] A B ...` lines); pay the
        import cost once; report unknown modules."""
        code = [t for t in tokens if t.kind != "comment"]
        imports: list[str] = []
        i = 0
        while i < len(code) and code[i].text in ("prelude", "module"):
            i += 1
        while True:
            j = i
            while j < len(code) and code[j].text in ("public", "meta"):
                j += 1
            if j >= len(code) or code[j].text != "import":
                break
            line, j = code[j].line, j + 1
            if j < len(code) and code[j].text == "all":
                j += 1
            while j < len(code) and code[j].kind == "ident" and code[j].line == line:
                imports.append(code[j].text)
                j += 1
            i = j
        if imports and self.import_seconds:  # sleep(0) would still give the CPU away
            time.sleep(self.import_seconds)
        for module in imports:
            if module.startswith(NONEXISTENT):
                prefix = module.split(".")[0]
                messages.append(message("error", {"line": 1, "column": 0}, None, f"unknown module prefix '{prefix}'"))
        rest = [t for t in tokens if t.offset >= code[i].offset] if i < len(code) else []
        return tuple(imports), rest

    def run_directives(self, text: str, tokens: list[Token], messages: list[dict[str, Any]]) -> None:
        """Execute `-- standin:` directives: `stderr` ones first, then the others in order."""
        directives = []
        for tok in tokens:
            match = DIRECTIVE.match(tok.text) if tok.kind == "comment" else None
            if match and line_prefix_blank(text, tok):
                directives.append((tok, match["verb"], match["arg"]))
        for tok, verb, arg in sorted(directives, key=lambda d: d[1] != "stderr"):
            self.directive(tok, verb, arg, messages)

    def directive(self, tok: Token, verb: str, arg: str, messages: list[dict[str, Any]]) -> None:
        """Execute one directive; a malformed one is reported as an error message."""
        try:
            self._directive(tok, verb, arg, messages)
        except ValueError:
            messages.append(message("error", tok.pos(), tok.end_pos(), f"bad stand-in directive: {verb} {arg}".strip()))

    def _directive(self, tok: Token, verb: str, arg: str, messages: list[dict[str, Any]]) -> None:
        if verb in ("error", "info"):
            messages.append(message(verb, tok.pos(), tok.end_pos(), arg))
        elif verb == "work":
            time.sleep(float(arg))
        elif verb == "hang":
            while True:
                time.sleep(3600)
        elif verb == "crash-once" and os.path.exists(arg):
            pass
        elif verb in ("crash", "crash-once"):
            if verb == "crash-once":
                open(arg, "w").close()
            sys.stderr.write("INTERNAL PANIC: stand-in crash directive\n")
            sys.stderr.flush()
            os._exit(134)
        elif verb == "memory":
            size = int(float(arg) * 1024 * 1024)
            try:
                block = bytearray(size)
                block[::4096] = b"\x01" * len(range(0, size, 4096))  # touch every page so RSS grows
            except MemoryError:  # e.g. under RLIMIT_AS: die like Lean's allocator does
                sys.stderr.write("INTERNAL PANIC: out of memory\n")
                sys.stderr.flush()
                os._exit(1)
            self.memory.append(block)
        elif verb == "flood":
            for start in range(0, int(arg), 1 << 20):
                sys.stdout.buffer.write(b"x" * min(1 << 20, int(arg) - start))
            sys.stdout.buffer.flush()
        elif verb == "answer-twice":
            self.repeat_after = float(arg or 0)
        elif verb == "env":
            value = os.environ.get(arg)
            messages.append(
                message("info", tok.pos(), tok.end_pos(), f"{arg} is unset" if value is None else f"{arg}={value}")
            )
        elif verb == "status":
            self.forced_status = arg
        elif verb == "stderr":
            size = int(arg)
            chunk = ("standin stderr noise " * 4)[:-1] + "\n"
            noise = (chunk * (size // len(chunk) + 1))[:size]
            sys.stderr.write(noise)
            sys.stderr.flush()
        elif verb in HOSTILE:
            messages.append(message("info", tok.pos(), tok.end_pos(), hostile(verb, arg)))
        else:
            raise ValueError(verb)

    def declarations(self, text: str, body: list[Token], base: Env, messages: list[dict[str, Any]]) -> list[Decl]:
        """Find declarations; misplaced imports and redeclared names are errors."""
        code = [t for t in body if t.kind != "comment"]
        decls: list[Decl] = []
        seen = set(base.decls)
        for i, tok in enumerate(code):
            if tok.text == "import" and tok.kind == "ident":
                messages.append(
                    message(
                        "error",
                        tok.pos(),
                        tok.end_pos(),
                        "invalid 'import' command, it must be used in the beginning of the file",
                    )
                )
            if tok.kind == "ident" and (tok.text in DECL_KEYWORDS or tok.text == "example"):
                name = code[i + 1] if tok.text != "example" and i + 1 < len(code) else None
                name = name if name is not None and name.kind == "ident" else None
                decls.append(Decl(tok, name, goal_of(text, code[i + 1 :]), tactic_block(code[i + 1 :])))
                if name is not None:
                    if name.text in seen:
                        messages.append(
                            message("error", name.pos(), name.end_pos(), f"'{name.text}' has already been declared")
                        )
                    seen.add(name.text)
            if tok.kind == "ident" and tok.text == "sorry" and tok.column == 0:
                messages.append(
                    message("error", tok.pos(), tok.end_pos(), "unexpected token 'sorry'; expected command")
                )
            elif tok.kind == "ident" and tok.text == "sorry":
                if not decls:
                    decls.append(Decl(tok, None, "⊢ Prop", []))
                decls[-1].sorries.append(tok)
        return decls

    def sorries(self, decls: list[Decl], root_goals: bool, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sorry entries (ids first for the sorries, then for root goals) and their warnings."""
        entries = []
        for decl in decls:
            for tok in decl.sorries:
                entries.append(self.sorry_entry(decl.goal, tok.pos(), tok.end_pos()))
            if decl.sorries:
                where = decl.name or decl.keyword
                messages.append(message("warning", where.pos(), where.end_pos(), "declaration uses `sorry`"))
        if root_goals:
            for decl in decls:
                if decl.tactics:
                    pos = decl.tactics[0][0].pos()
                    entries.append(self.sorry_entry(decl.goal, pos, pos))
        return entries

    def all_tactics(self, text: str, decls: list[Decl]) -> list[dict[str, Any]]:
        """`allTactics`: one entry per top-level tactic of each `by` block, each with a new proof state."""
        entries = []
        for decl in decls:
            for tactic in decl.tactics:
                self.proof_states.append(ProofState([decl.goal]))
                first, last = tactic[0], tactic[-1]
                entry = {
                    "tactic": text[first.offset : last.offset + len(last.text)],
                    "proofState": len(self.proof_states) - 1,
                    "pos": first.pos(),
                    "endPos": last.end_pos(),
                    "goals": decl.goal,
                    "usedConstants": [],
                }
                entries.append(entry)
        return entries

    def sorry_entry(self, goal: str, pos: dict[str, int] | None, end: dict[str, int] | None) -> dict[str, Any]:
        self.proof_states.append(ProofState([goal]))
        entry: dict[str, Any] = {"proofState": len(self.proof_states) - 1, "goal": goal}
        if pos is not None:
            entry["pos"], entry["endPos"] = pos, end
        return entry

    # -- tactic mode ---------------------------------------------------------------------------------

    def tactic(self, state_id: int, text: str) -> dict[str, Any]:
        """Run a tactic. A closing tactic (or `sorry`) in tactic position closes the first goal (every goal
        after `all_goals`/`any_goals`); a splitting tactic (or `apply And.intro`) at the start of the text,
        of a line or after a separator turns the first goal into its cases; other known tactics leave
        the goals as they are; an unknown head is a parse error."""
        if state_id >= len(self.proof_states):
            return {"message": "Unknown proof state."}
        state = self.proof_states[state_id]
        tokens = lex(text)
        messages: list[dict[str, Any]] = []
        self.forced_status = None
        self.run_directives(text, tokens, messages)
        for msg in messages:  # messages logged in tactic mode sit at 0:0
            msg["pos"] = msg["endPos"] = {"line": 0, "column": 0}
        code = [t for t in tokens if t.kind != "comment" and t.text not in ("{", "(")]
        head = code[0].text if code else ""
        if head not in CLOSING_TACTICS | PROGRESS_TACTICS | SPLITTING_TACTICS.keys():
            return {"message": "Lean error:\n<input>:1:1: unknown tactic"}
        first_goal = state.goals[0] if state.goals else "⊢ Prop"
        sorry_count = sum(t.kind == "ident" and t.text == "sorry" for t in code)
        every_goal = head in ("all_goals", "any_goals")
        if every_goal and sorry_count:
            sorries = [self.sorry_entry(goal, None, None) for goal in state.goals]
        else:
            sorries = [self.sorry_entry(first_goal, None, None) for _ in range(sorry_count)]
        errors = any(m["severity"] == "error" for m in messages)
        closes = errors or any(
            t.text in CLOSING_TACTICS and (i == 0 or code[i - 1].text in TACTIC_SEPARATORS) for i, t in enumerate(code)
        )
        goals = list(state.goals)
        cases = split_cases(code)
        if closes:
            goals = [] if every_goal else goals[1:]
        elif cases and goals:
            goals[:1] = [f"case {case}\n{goals[0]}" for case in cases]
        has_sorry = state.has_sorry or bool(sorry_count) or errors
        if self.forced_status is not None and not self.forced_status.startswith("Incomplete: open goals"):
            goals = []
        return self.new_proof_state(ProofState(goals, has_sorry, self.forced_status), sorries, messages)

    def new_proof_state(
        self,
        state: ProofState,
        sorries: list[dict[str, Any]] | None = None,
        messages: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        self.proof_states.append(state)
        if state.status is not None:
            status = state.status
        elif state.goals:
            status = "Incomplete: open goals remain"
        elif state.has_sorry:
            status = "Incomplete: contains sorry"
        else:
            status = "Completed"
        response: dict[str, Any] = {
            "proofState": len(self.proof_states) - 1,
            "goals": state.goals,
            "proofStatus": status,
        }
        if sorries:
            response["sorries"] = sorries
        if messages:
            response["messages"] = messages
        return response

    # -- pickling ------------------------------------------------------------------------------------

    def pickle(self, path: str, payload: dict[str, Any]) -> None:
        try:
            with open(path, "w", encoding="utf-8") as out:
                json.dump(payload, out)
        except OSError as exc:
            die(io_error_text(exc, path))

    def unpickle(self, path: str, kind: str) -> dict[str, Any]:
        try:
            with open(path, encoding="utf-8") as src:
                payload = json.load(src)
        except (OSError, ValueError) as exc:
            die(io_error_text(exc, path) if isinstance(exc, OSError) else f"failed to read {path}: {exc}")
        if not isinstance(payload, dict) or payload.get("kind") != kind:
            die(f"failed to read {path}: not a pickled {kind}")
        return dict(payload)

    def handle(self, kind: str, req: dict[str, Any]) -> dict[str, Any]:
        """Dispatch one decoded request to its handler."""
        if kind == "command":
            return self.command(req["cmd"], req["env"], req)
        if kind == "file":
            try:
                with open(req["path"], encoding="utf-8", errors="replace") as src:
                    text = src.read()
            except OSError as exc:
                return {"message": io_error_text(exc, req["path"])}
            return self.command(text, req["env"], req)
        if kind == "tactic":
            return self.tactic(req["proofState"], req["tactic"])
        if kind == "pickle_env":
            if req["env"] >= len(self.envs):
                return {"message": "Unknown environment."}
            env = self.envs[req["env"]]
            self.pickle(
                req["pickleTo"],
                {
                    "kind": "env",
                    "decls": sorted(env.decls),
                    "imports": list(env.imports),
                    "axioms": {name: sorted(deps) for name, deps in env.axioms.items()},
                },
            )
            return {"env": req["env"]}
        if kind == "unpickle_env":
            payload = self.unpickle(req["unpickleEnvFrom"], "env")
            axioms = {name: frozenset(deps) for name, deps in payload.get("axioms", {}).items()}
            self.envs.append(Env(frozenset(payload["decls"]), tuple(payload["imports"]), axioms))
            return {"env": len(self.envs) - 1}
        if kind == "pickle_proof_state":
            if req["proofState"] >= len(self.proof_states):
                return {"message": "Unknown proof State."}
            state = self.proof_states[req["proofState"]]
            self.pickle(req["pickleTo"], {"kind": "proofState", "goals": state.goals, "hasSorry": state.has_sorry})
            return self.new_proof_state(ProofState(list(state.goals), state.has_sorry))
        # unpickle_proof_state
        if req["env"] is not None and req["env"] >= len(self.envs):
            return {"message": "Unknown environment."}
        payload = self.unpickle(req["unpickleProofStateFrom"], "proofState")
        return self.new_proof_state(ProofState(list(payload["goals"]), bool(payload["hasSorry"])))


OPEN, CLOSE = ("(", "[", "{", "⟨", "⦃"), (")", "]", "}", "⟩", "⦄")


def _squash(text: str) -> str:
    return " ".join(text.split())


def goal_of(text: str, rest: list[Token]) -> str:
    """A plausible goal from a declaration's signature: `x : T` per binder, then `⊢ TYPE`."""
    depth, colon, hyps, binder = 0, None, [], 0
    end = len(rest)
    for i, tok in enumerate(rest):
        if tok.text in OPEN:
            depth += 1
            binder = i if depth == 1 else binder
        elif tok.text in CLOSE:
            depth -= 1
            if depth == 0 and colon is None:
                hyps.append(_squash(text[rest[binder].offset + 1 : tok.offset]))
        elif depth == 0 and tok.text == ":" and colon is None:
            colon = i + 1
        elif depth == 0 and (tok.text in (":=", "where", "|") or tok.text in DECL_KEYWORDS):
            end = i
            break
    if colon is None or colon >= end:
        return "⊢ Prop"
    target = _squash(text[rest[colon].offset : rest[end - 1].offset + len(rest[end - 1].text)])
    return "\n".join([h for h in hyps if " : " in h] + [f"⊢ {target}"])


def split_cases(code: list[Token]) -> tuple[str, ...] | None:
    """The cases a splitting tactic in tactic position (start, new line, after a separator) makes."""
    for i, tok in enumerate(code):
        if i and code[i - 1].text not in TACTIC_SEPARATORS and code[i - 1].line == tok.line:
            continue
        if tok.text in SPLITTING_TACTICS:
            return SPLITTING_TACTICS[tok.text]
        if tok.text == "apply" and i + 1 < len(code) and code[i + 1].text in SPLITTING_TERMS:
            return SPLITTING_TERMS[code[i + 1].text]
    return None


def tactic_block(rest: list[Token]) -> list[list[Token]]:
    """The top-level tactics after `:= by` in a declaration: split at `;` and at lines that start at or
    left of the first tactic's column."""
    end = next((i for i, t in enumerate(rest) if t.text in DECL_KEYWORDS or t.text == "example"), len(rest))
    start = next((i + 2 for i in range(end - 1) if rest[i].text == ":=" and rest[i + 1].text == "by"), end)
    tactics: list[list[Token]] = []
    for tok in rest[start:end]:
        new_line = bool(tactics) and tactics[-1] and tok.line > tactics[-1][-1].line
        if not tactics or (new_line and tok.column <= tactics[0][0].column):
            tactics.append([])
        if tok.text == ";":
            tactics.append([])
        else:
            tactics[-1].append(tok)
    return [t for t in tactics if t]


# ---------------------------------------------------------------------------------------------------
# Hostile actions (what a proof's `#eval` could do), for the sandbox tests. Each reports, as an info
# message, `VERB ARG: ok ...` when the action worked and `VERB ARG: failed: ...` when it did not.
#   write PATH        create PATH and write to it
#   read PATH         read PATH (the message quotes its first 200 characters)
#   connect HOST:PORT open a TCP connection
#   getenv NAME       read an environment variable (the message quotes its value)
# ---------------------------------------------------------------------------------------------------


def _write(path: str) -> str:
    with open(path, "w") as f:
        f.write("written by a hostile proof\n")
    return "ok"


def _read(path: str) -> str:
    with open(path, errors="replace") as f:
        return "ok " + f.read(200)


def _connect(address: str) -> str:
    import socket

    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5):
        return "ok"


def _getenv(name: str) -> str:
    if name not in os.environ:
        raise KeyError("unset")
    return "ok " + os.environ[name]


HOSTILE = {"write": _write, "read": _read, "connect": _connect, "getenv": _getenv}


def hostile(verb: str, arg: str) -> str:
    """Try the hostile action `verb arg`; say whether it worked."""
    try:
        return f"{verb} {arg}: {HOSTILE[verb](arg)}"
    except (OSError, KeyError, ValueError) as exc:
        return f"{verb} {arg}: failed: {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------------------
# Main loop.
# ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--import-seconds", type=float, default=0.0, help="cost of each env-less import header")
    parser.add_argument("--work-seconds", type=float, default=0.0, help="cost of each command")
    args = parser.parse_args(argv)
    repl = Repl(args.import_seconds, args.work_seconds)
    stdin = sys.stdin.buffer
    while True:
        query = read_request(stdin)
        if query == "":
            return 0
        if query.startswith(("#", "--")):
            continue
        kind, req = parse_request(query)
        response = repl.handle(kind, req)
        write_response(response)
        if repl.repeat_after is not None:
            threading.Timer(repl.repeat_after, write_response, (response,)).start()
            repl.repeat_after = None


if __name__ == "__main__":
    sys.exit(main())
