"""Lean's JSON as our models: REPL responses and `lean --json` lines → messages, sorries, output.

Both speak the same message object (`severity`, `pos`, `endPos`, `data`); one parser reads it.
Unknown severities read as info, a missing position as 1:0, and nothing Lean said is dropped:
a `lean --json` line that is not a message (what `#eval` printed) becomes an info message.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from .._models import LeanOutput, Message, Pos, Severity, Sorry

#: The `goal` of a sorry found by the lean backend: `lean --json` does not print goals.
GOAL_NOT_REPORTED = "(goal not reported: the lean backend sees only Lean's warning; the repl backend shows goals)"

_SEVERITIES = {
    "information": Severity.INFO,
    "info": Severity.INFO,
    "warning": Severity.WARNING,
    "error": Severity.ERROR,
}
_INFO = Severity.INFO  # (looked up once: a member looked up on its enum costs a Python call)
_START = Pos(line=1, column=0)


@functools.lru_cache(maxsize=4096)
def _position(line: int, column: int) -> Pos:
    """The Pos at `line`:`column` (ints ≥ 0), one per place: Pos is frozen, so messages share them."""
    return Pos(line=line, column=column)


def _pos(value: Any) -> Pos | None:
    if not isinstance(value, dict):
        return None
    line, column = value.get("line", 1), value.get("column", 0)
    if type(line) is int and type(column) is int:  # as Lean writes it
        return _position(line if line > 0 else 0, column if column > 0 else 0)
    return Pos(line=max(0, int(line)), column=max(0, int(column)))


def message_of(raw: Any) -> Message:
    """One Lean message object as a Message (anything else becomes an info message of its text).

    Every message of every proof comes through here, so a message as Lean writes it (a str
    severity and data) is assembled from its parts without validating again; anything else is
    validated.
    """
    if type(raw) is dict:
        severity, data = raw.get("severity"), raw.get("data", "")
        if type(severity) is str and type(data) is str:
            pos, end_pos = _pos(raw.get("pos")) or _START, _pos(raw.get("endPos"))
            return Message.assembled(_SEVERITIES.get(severity, _INFO), pos, end_pos, data)
    if not isinstance(raw, dict):
        return Message(severity=Severity.INFO, pos=_START, data=str(raw))
    return Message(
        severity=_SEVERITIES.get(str(raw.get("severity")), Severity.INFO),
        pos=_pos(raw.get("pos")) or _START,
        end_pos=_pos(raw.get("endPos")),
        data=str(raw.get("data", "")),
    )


def _sorry(raw: Any) -> Sorry:
    if not isinstance(raw, dict):
        return Sorry(goal=str(raw))
    state = raw.get("proofState")
    return Sorry(
        pos=_pos(raw.get("pos")),
        end_pos=_pos(raw.get("endPos")),
        goal=str(raw.get("goal", "")),
        proof_state=state if isinstance(state, int) else None,
    )


_OUTPUT_FIELDS = frozenset(LeanOutput.model_fields)


def to_lean_output(raw: dict[str, Any]) -> LeanOutput:
    """A REPL command response as our LeanOutput (unknown keys kept).

    Every proof's answer comes through here, so when each part is already of its field's type
    (an int env, tactics a list of objects: what the REPL writes) the model is assembled from
    them without validating again; anything else is validated (and refused) as it always was.
    """
    extra = {} if raw.keys() <= _OUTPUT_FIELDS else {k: v for k, v in raw.items() if k not in _OUTPUT_FIELDS}
    env, tactics = raw.get("env"), raw.get("tactics")
    messages, sorries = raw.get("messages"), raw.get("sorries")
    env = env if isinstance(env, int) else None
    tactics = tactics if isinstance(tactics, list) else None
    values = {
        "env": env,
        "messages": [message_of(m) for m in messages] if messages else [],
        "sorries": [_sorry(s) for s in sorries] if sorries else [],
        "tactics": tactics,
        "infotree": raw.get("infotree"),
    }
    if type(env) is not bool and (tactics is None or _all_objects(tactics)):
        return LeanOutput.assembled(values, extra)
    return LeanOutput(**values, **extra)


def _all_objects(items: list[Any]) -> bool:
    """True when every item is a JSON object (a dict with str keys)."""
    return all(type(item) is dict and all(type(key) is str for key in item) for item in items)


def _json_message(line: str) -> dict[str, Any] | None:
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    return raw if isinstance(raw, dict) and "severity" in raw and "data" in raw else None


def parse_lean_json(stdout: str) -> LeanOutput:
    """Lean's `--json` output (one message per line) as our LeanOutput.

    Lines that are not Lean messages become info messages. A `hasSorry` message also yields a
    Sorry entry; Lean's CLI reports no goal, so its `goal` says so (GOAL_NOT_REPORTED).
    """
    output = LeanOutput()
    for line in stdout.split("\n"):  # not splitlines(): Lean leaves U+2028, U+0085, ... unescaped in JSON
        if not line.strip():
            continue
        raw = _json_message(line)
        if raw is None:
            output.messages.append(Message(severity=Severity.INFO, pos=_START, data=line))
            continue
        message = message_of(raw)
        output.messages.append(message)
        if raw.get("kind") == "hasSorry":
            output.sorries.append(Sorry(pos=message.pos, end_pos=message.end_pos, goal=GOAL_NOT_REPORTED))
    return output
