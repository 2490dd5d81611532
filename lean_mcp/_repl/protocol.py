"""The Lean REPL's JSON protocol: framing requests, reading responses, typing what comes back.

Requests go out as ONE physical line of JSON followed by one blank line. `json.dumps` escapes
every control character (newline, CR, tab, NUL) inside the proof text, so no proof can split a
request. Lone UTF-16 surrogates (which `str` can hold but UTF-8 cannot encode) are replaced by
U+FFFD, one code point for one code point, so columns stay where they were; a well-formed
surrogate *pair* held as two code points is first combined into the character it encodes.

Responses come back as Lean's multi-line pretty JSON ended by the first empty line. The reader
skips anything that is not JSON (e.g. text a Lean program printed straight to stdout).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import pydantic_core

logger = logging.getLogger(__name__)

_SURROGATE = re.compile("[\ud800-\udfff]")


def sanitize_text(text: str) -> str:
    """`text` made encodable as UTF-8: surrogate pairs combined, lone surrogates → U+FFFD."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # one encoder: json.dumps builds one per call with options
_STRING = json.encoder.encode_basestring  # a str as a JSON string, as `_ENCODER` writes it (non-ASCII kept)


def encode_request(request: dict[str, Any]) -> bytes:
    """One request on the wire: a single line of JSON, then a blank line.

    Exactly the bytes of `json.dumps(request, ensure_ascii=False)` (sanitized), written directly
    for the flat requests the pool sends (str keys; str, int, bool values): every proof's request
    goes through here, and the general encoder costs several times more.
    """
    line = _flat_json(request) or _ENCODER.encode(request)
    try:
        return (line + "\n\n").encode("utf-8")
    except UnicodeEncodeError:  # a surrogate: made encodable (which leaves any other text alone)
        return (sanitize_text(line) + "\n\n").encode("utf-8")


def _flat_json(request: dict[str, Any]) -> str | None:
    """`request` as `_ENCODER` writes it when every key is a str and every value a str, int or bool; else None."""
    parts = []
    for key, value in request.items():
        kind = type(value)
        if kind is str:
            text = _STRING(value)
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is int:
            text = int.__repr__(value)
        else:
            return None
        if type(key) is not str:
            return None
        parts.append(f"{_STRING(key)}: {text}")
    return "{" + ", ".join(parts) + "}"


def command_request(code: str, env: int | None = None, *, all_tactics: bool = False) -> dict[str, Any]:
    """A Command request: `code` elaborated on env `env` (a fresh session when None)."""
    request: dict[str, Any] = {"cmd": code}
    if env is not None:
        request["env"] = env
    if all_tactics:
        request["allTactics"] = True
    return request


def encode_command(code: str, env: int | None = None, *, all_tactics: bool = False) -> bytes:
    """`encode_request(command_request(code, env, all_tactics=all_tactics))`, written without the dict:
    the bytes of every proof's request (pinned to `encode_request` by a test)."""
    if env is not None and type(env) is not int:
        return encode_request(command_request(code, env, all_tactics=all_tactics))
    line = '{"cmd": ' + _STRING(code)
    if env is not None:
        line += ', "env": ' + int.__repr__(env)
    line += ', "allTactics": true}\n\n' if all_tactics else "}\n\n"
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError:  # a surrogate: as `encode_request` makes it encodable
        return sanitize_text(line).encode("utf-8")


class ResponseReader:
    """Turns the REPL's stdout bytes into response objects, one per empty-line-terminated block.

    Text that is not a JSON object (noise a Lean program wrote to stdout) is skipped; when noise
    precedes a response in the same block, parsing starts at the first line that opens an object.
    """

    def __init__(self, on_noise: Callable[[str], None] | None = None) -> None:
        #: The bytes fed and not yet returned in a response (others only read it).
        self.buffer = bytearray()
        self._scan_from = 0
        self._on_noise = on_noise or (lambda text: logger.debug("REPL stdout noise: %.200r", text))

    def __len__(self) -> int:
        return len(self.buffer)

    def feed(self, data: bytes) -> None:
        """Add bytes read from the REPL's stdout."""
        self.buffer += data

    def read(self, data: bytes) -> dict[str, Any] | None:
        """`feed(data)`, then `next_response()`.

        A chunk that is exactly one answer as the REPL writes it (nothing left over before it, one
        JSON object in valid UTF-8, then the one blank line) is parsed as it is, without passing
        through the buffer (that is one answer per request: all of them); anything else goes the
        general way, which reads such a chunk to the same object.
        """
        if not self.buffer and data[:1] == b"{" and data.find(b"\n\n") == len(data) - 2:
            try:
                obj = pydantic_core.from_json(data[:-2])
            except ValueError:  # (not valid UTF-8, or what `json` reads instead: `_whole_object`)
                obj = None
            if type(obj) is dict:
                return obj
        self.buffer += data
        return self.next_response()

    def next_response(self) -> dict[str, Any] | None:
        """The next complete response in the buffer, or None until more bytes arrive."""
        while True:
            end = self.buffer.find(b"\n\n", self._scan_from)
            if end < 0:
                self._scan_from = max(0, len(self.buffer) - 1)
                return None
            block = self.buffer[:end].decode("utf-8", errors="replace")
            del self.buffer[: end + 2]
            self._scan_from = 0
            parsed = _whole_object(block)
            if parsed is None:
                parsed = _parse_block(block)
            if parsed is not None:
                return parsed
            if block.strip():
                self._on_noise(block)


_DECODER = json.JSONDecoder()


def _whole_object(block: str) -> dict[str, Any] | None:
    """`block` as a JSON object when it is exactly one (the REPL's answer as it writes it); else None.

    Read by pydantic-core's parser, about twice as fast as `json`'s on an answer. It accepts
    strictly less than `json` (no lone surrogate escape, at most 200 levels of nesting, only JSON
    whitespace after the object) and reads what it accepts to the same value; what it refuses is
    read by `json` as before.
    """
    if block[:1] != "{":
        return None
    try:
        obj = pydantic_core.from_json(block)
    except ValueError:
        try:
            obj, end = _DECODER.raw_decode(block)
        except ValueError:
            return None
        if end != len(block) and block[end:].strip():
            return None
    return obj if type(obj) is dict else None


def _parse_block(block: str) -> dict[str, Any] | None:
    """The JSON object in `block`, tolerating noise lines before it; None if there is none."""
    stripped = block.lstrip()
    if stripped.startswith("{"):
        obj = _loads_object(stripped)
        if obj is not None:
            return obj
    for match in re.finditer(r"(?m)^[ \t]*\{", block):
        obj = _loads_object(block[match.start() :])
        if obj is not None:
            return obj
    start = block.find("{")
    while start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(block, start)
        except ValueError:
            start = block.find("{", start + 1)
            continue
        if isinstance(obj, dict):
            return obj
        start = block.find("{", start + 1)
    return None


def _loads_object(text: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


@dataclasses.dataclass(frozen=True)
class ReplMessage:
    """A REPL-level error reply, `{"message": ...}` (unknown env, tactic parse error, ...)."""

    message: str


@dataclasses.dataclass(frozen=True)
class CommandResponse:
    """A reply to a command or file request: it always names the new `env`."""

    env: int
    raw: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ProofStepResponse:
    """A reply to a tactic (proof-step) request."""

    proof_state: int
    goals: list[str]
    proof_status: str | None
    raw: dict[str, Any]


Response = ReplMessage | CommandResponse | ProofStepResponse


def classify(obj: dict[str, Any]) -> Response:
    """Which of the REPL's three reply shapes `obj` is (by its keys, as the REPL writes them).

    Raises ValueError for an object that is none of them.
    """
    if "env" in obj and isinstance(obj["env"], int):
        return CommandResponse(env=obj["env"], raw=obj)
    if "proofState" in obj and isinstance(obj["proofState"], int):
        return ProofStepResponse(
            proof_state=obj["proofState"],
            goals=[str(g) for g in obj.get("goals") or []],
            proof_status=obj.get("proofStatus"),
            raw=obj,
        )
    if "message" in obj:
        return ReplMessage(message=str(obj["message"]))
    raise ValueError(f"not a REPL response: {json.dumps(obj)[:200]}")


def shift_positions(value: Any, line_offset: int) -> Any:
    """A copy of `value` with every `{"line", "column"}` position (line ≥ 1) moved down `line_offset` lines.

    Line 0 (what tactic mode reports) is left alone. Covers messages, sorries, tactics and the
    ranges inside info trees.
    """
    if line_offset == 0:
        return value
    if isinstance(value, dict):
        line = value.get("line")
        if isinstance(line, int) and isinstance(value.get("column"), int) and len(value) == 2:
            return {"line": line + line_offset if line >= 1 else line, "column": value["column"]}
        return {key: shift_positions(item, line_offset) for key, item in value.items()}
    if isinstance(value, list):
        return [shift_positions(item, line_offset) for item in value]
    return value
