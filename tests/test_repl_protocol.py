"""The REPL wire protocol: requests stay one line whatever the proof holds; replies are read robustly."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from lean_mcp._lean.messages import message_of, to_lean_output
from lean_mcp._models import LeanOutput, Message, Pos, ProofConfig, Severity, Verdict
from lean_mcp._repl.pool import ReplPool
from lean_mcp._repl.protocol import (
    CommandResponse,
    ProofStepResponse,
    ReplMessage,
    ResponseReader,
    classify,
    command_request,
    encode_command,
    encode_request,
    sanitize_text,
    shift_positions,
)
from tests.standin import standin_command

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

HOSTILE = [
    pytest.param("theorem a : True := trivial\n\n\n\ntheorem b : True := trivial", id="blank-lines"),
    pytest.param("theorem a : True := trivial\r\n\r\n\r\ntheorem b : True := trivial\r\n", id="crlf"),
    pytest.param("theorem a : True :=\n\ttrivial\t\t\n", id="tabs"),
    pytest.param("theorem a : True := trivial -- nul \x00 here\n", id="nul"),
    pytest.param("theorem a : True := trivial -- 𝓝 𝕜 ∀ ε > 0\n", id="astral"),
    pytest.param("theorem a : True := trivial -- lone \ud835 surrogate \udc00\n", id="lone-surrogates"),
    pytest.param('theorem a : True := trivial -- "}\\n\\n{" \u2028 \u0085 \x1b[0m\n', id="json-and-separators"),
]


@pytest.mark.parametrize("code", HOSTILE)
def test_request_is_one_line_then_one_blank_line(code: str) -> None:
    wire = encode_request(command_request(code, 3))
    assert wire.endswith(b"\n\n")
    assert b"\n" not in wire[:-2]
    assert json.loads(wire.decode("utf-8")) == {"cmd": sanitize_text(code), "env": 3}


@pytest.mark.parametrize("code", HOSTILE)
@pytest.mark.parametrize(
    "extra",
    [{}, {"env": 0}, {"env": -7, "allTactics": True}, {"allTactics": False, "z\u00e9": "\x00\u2028"}],
    ids=["bare", "env", "all-tactics", "odd-keys"],
)
def test_request_bytes_are_exactly_the_json_encoders(code: str, extra: dict[str, object]) -> None:
    request = {"cmd": code, **extra}
    expected = sanitize_text(json.dumps(request, ensure_ascii=False)) + "\n\n"
    assert encode_request(request) == expected.encode("utf-8")


@pytest.mark.parametrize("code", HOSTILE)
@pytest.mark.parametrize("env", [None, 0, 7, -2])
@pytest.mark.parametrize("all_tactics", [False, True])
def test_a_command_is_encoded_as_its_request(code: str, env: int | None, all_tactics: bool) -> None:
    # the pool writes every proof's request with `encode_command`: the bytes of the request's JSON
    request = command_request(code, env, all_tactics=all_tactics)
    assert encode_command(code, env, all_tactics=all_tactics) == encode_request(request)


@pytest.mark.parametrize(
    "request_",
    [{"tactic": "simp", "proofState": 2}, {"cmd": "x", "opts": {"a": [1, None]}}, {"n": 1.5}, {"b": None}, {}],
)
def test_requests_of_any_shape_encode_as_json(request_: dict[str, object]) -> None:
    assert encode_request(request_) == (json.dumps(request_, ensure_ascii=False) + "\n\n").encode("utf-8")


def test_lone_surrogates_become_replacement_characters_one_for_one() -> None:
    assert sanitize_text("a\ud835b") == "a\ufffdb"
    assert sanitize_text("\udc00") == "\ufffd"
    # a surrogate pair held as two code points is the astral character it encodes
    assert sanitize_text("x\ud835\udcdd") == "x𝓝"
    assert sanitize_text("plain 𝓝") == "plain 𝓝"


def _directive_after(code: str) -> str:
    return code + "\n-- standin: error after the hostile text\n"


@pytest.mark.parametrize("code", HOSTILE)
async def test_hostile_text_keeps_the_repl_in_step(code: str) -> None:
    """Lean sees the text as sent (the error is on the right line) and the next proof still works."""
    async with ReplPool(standin_command(), workers=1) as pool:
        text = _directive_after(code)
        result = await pool.check(text, ProofConfig(timeout=20))
        assert result.verdict == Verdict.REJECTED, result
        [error] = result.result.errors if result.result else []
        assert error.pos.line == text.count("\n")
        assert error.data == "after the hostile text"
        after = await pool.check("theorem c : True := trivial", ProofConfig(timeout=20))
        assert after.verdict == Verdict.PROVED
        assert pool.health()["repl_starts"] == 1


async def test_columns_count_code_points_after_astral_and_surrogates() -> None:
    async with ReplPool(standin_command(), workers=1) as pool:
        for prefix in ("𝓝𝕜", "\ud835\ud835"):
            text = f"theorem a : True := by -- {prefix}\n  sorry"
            result = await pool.check(text, ProofConfig(timeout=20))
            assert result.verdict == Verdict.SORRY
            [sorry] = result.sorries
            assert sorry.pos is not None and (sorry.pos.line, sorry.pos.column) == (2, 2)


async def test_a_megabyte_proof_round_trips() -> None:
    filler = "".join(f"-- filler line {i} with some text to make it long enough 𝓝\n" for i in range(17_000))
    text = filler + "theorem big : True := by\n  sorry\n"
    assert len(text.encode()) > 1_000_000
    async with ReplPool(standin_command(), workers=1) as pool:
        result = await pool.check(text, ProofConfig(timeout=60))
        assert result.verdict == Verdict.SORRY
        assert result.sorries[0].pos is not None and result.sorries[0].pos.line == 17_002
        again = await pool.check("theorem small : True := trivial", ProofConfig(timeout=20))
        assert again.verdict == Verdict.PROVED


PRETTY = b"""{"sorries":
 [{"proofState": 0,
   "pos": {"line": 1, "column": 23},
   "goal": "\xe2\x8a\xa2 True",
   "endPos": {"line": 1, "column": 28}}],
 "messages":
 [{"severity": "warning",
   "pos": {"line": 1, "column": 8},
   "endPos": {"line": 1, "column": 9},
   "data": "declaration uses `sorry`"}],
 "env": 0}

"""


def test_reader_assembles_multi_line_pretty_json_fed_byte_by_byte() -> None:
    reader = ResponseReader()
    responses = []
    for byte in PRETTY + b'{"env": 1}\n\n':
        reader.feed(bytes([byte]))
        response = reader.next_response()
        if response is not None:
            responses.append(response)
    assert [r["env"] for r in responses] == [0, 1]
    assert responses[0]["sorries"][0]["goal"] == "⊢ True"


def test_reader_skips_noise_lines_and_noise_blocks() -> None:
    noise: list[str] = []
    reader = ResponseReader(on_noise=noise.append)
    reader.feed(b"hello from IO.println\n\nmore noise\n" + PRETTY + b"garbage {not json\n\n" + b'oops{"env": 7}\n\n')
    first = reader.next_response()
    second = reader.next_response()
    assert first is not None and first["env"] == 0
    assert second == {"env": 7}
    assert reader.next_response() is None
    assert noise == ["hello from IO.println", "garbage {not json"]


def test_reader_waits_for_the_blank_line() -> None:
    reader = ResponseReader()
    reader.feed(b'{"env": 0}\n')
    assert reader.next_response() is None
    reader.feed(b"\n")
    assert reader.next_response() == {"env": 0}


@pytest.mark.parametrize(
    "chunks",
    [
        [PRETTY],
        [b'{"env": 3}\n\n', b'{"env": 4, "messages": []}\n\n'],
        [b'{"env": 1}\n\n{"env": 2}\n\n'],  # two answers in one read
        [b'{"env": 1}\n', b"\n"],
        [b'{"env": 1, "x": "\xff\xfe"}\n\n'],  # not UTF-8: read with replacement characters
        [b'{"x": "\\ud800"}\n\n'],  # a lone surrogate escape (read by `json`)
        [b'{"env": 1} trailing\n\n', b'{"env": 2}\n\n'],
        [b"[1, 2]\n\n", b"{not json\n\n", b'{"env": 5}\n\n'],
        [b'{"env": 1}\n\n\n\n'],
    ],
)
def test_read_gives_what_feed_then_next_response_gives(chunks: list[bytes]) -> None:
    # `read` parses a chunk that is exactly one answer without the buffer: always the same objects
    noise: list[str] = []
    general, fast = ResponseReader(on_noise=noise.append), ResponseReader(on_noise=noise.append)
    for chunk in chunks:
        general.feed(chunk)
        assert fast.read(chunk) == general.next_response()
        while (response := general.next_response()) is not None:
            assert fast.next_response() == response
        assert fast.next_response() is None
        assert bytes(fast.buffer) == bytes(general.buffer)
    assert noise[::2] == noise[1::2]  # each noise block reported by both, in turn


def test_classify_the_three_reply_shapes() -> None:
    assert isinstance(classify({"env": 2, "messages": []}), CommandResponse)
    step = classify({"proofState": 3, "goals": ["⊢ True"], "proofStatus": "Incomplete: open goals remain"})
    assert isinstance(step, ProofStepResponse) and step.goals == ["⊢ True"]
    assert classify({"message": "Unknown environment."}) == ReplMessage("Unknown environment.")
    with pytest.raises(ValueError):
        classify({"something": "else"})


def test_command_reply_becomes_lean_output() -> None:
    raw = json.loads(PRETTY)
    raw["messages"].append({"severity": "trace", "pos": {"line": 2, "column": 0}, "endPos": None, "data": "t"})
    raw["newKey"] = [1]
    output = to_lean_output(raw)
    assert output.env == 0
    assert [m.severity for m in output.messages] == [Severity.WARNING, Severity.INFO]
    assert output.sorries[0].proof_state == 0 and output.sorries[0].goal == "⊢ True"
    assert output.model_dump()["newKey"] == [1]


def _validated(raw: dict[str, Any]) -> LeanOutput:
    """What `to_lean_output` builds, by validating every part (as it did before it assembled them)."""
    fields = LeanOutput.model_fields
    env, tactics = raw.get("env"), raw.get("tactics")
    return LeanOutput(
        env=env if isinstance(env, int) else None,
        messages=[message_of(m) for m in raw.get("messages") or []],
        sorries=[to_lean_output({"sorries": [s]}).sorries[0] for s in raw.get("sorries") or []],
        tactics=tactics if isinstance(tactics, list) else None,
        infotree=raw.get("infotree"),
        **{k: v for k, v in raw.items() if k not in fields},
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"env": 4},
        json.loads(PRETTY),
        {"env": 1, "tactics": [{"tactic": "simp", "proofState": 0}], "infotree": [{"x": 1}], "newKey": {"a": 1}},
        {"env": True, "messages": "not a list"},  # a bool env is an int to validation: 1
        {"env": "3", "tactics": "no", "status": "timeout", "return_code": 3},  # fields are not extra keys
        {"message": "Unknown environment."},
    ],
    ids=["bare", "pretty", "tactics-and-extras", "bool-env", "wrong-types", "repl-message"],
)
def test_lean_output_is_what_validation_builds(raw: dict[str, Any]) -> None:
    fast, validated = to_lean_output(raw), _validated(raw)
    assert fast == validated and fast.model_fields_set == validated.model_fields_set
    assert fast.model_dump_json() == validated.model_dump_json()
    assert type(fast.env) is type(validated.env)


def _validated_message(raw: Any) -> Message:
    """What `message_of` builds, by validating every part (as it did before it assembled them)."""
    if not isinstance(raw, dict):
        return Message(severity=Severity.INFO, pos=Pos(line=1, column=0), data=str(raw))

    def pos(value: Any) -> Pos | None:
        if not isinstance(value, dict):
            return None
        return Pos(line=max(0, int(value.get("line", 1))), column=max(0, int(value.get("column", 0))))

    severities = {"information": "info", "info": "info", "warning": "warning", "error": "error"}
    return Message(
        severity=severities.get(str(raw.get("severity")), "info"),
        pos=pos(raw.get("pos")) or Pos(line=1, column=0),
        end_pos=pos(raw.get("endPos")),
        data=str(raw.get("data", "")),
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"severity": "info", "pos": {"line": 3, "column": 0}, "endPos": {"line": 3, "column": 6}, "data": "x"},
        {"severity": "error", "pos": {"line": 1, "column": 4}, "endPos": None, "data": "unknown identifier"},
        {"severity": "warning", "pos": {"line": 2, "column": 0}, "data": "declaration uses 'sorry'"},
        {"severity": "information", "pos": {"line": -4, "column": -1}, "endPos": {"line": 10**30, "column": 0}},
        {"severity": "trace", "data": "no position"},
        {"severity": "error", "pos": {"column": 7}, "endPos": {"line": 5}, "data": "partial positions"},
        {"severity": "error", "pos": [1, 2], "endPos": "3:4", "data": "positions that are not objects"},
        {"severity": "error", "pos": {"line": 2.0, "column": True}, "data": "positions that are not ints"},
        {"severity": "error", "pos": {"line": "7", "column": 1}, "data": "a line that is a string"},
        {"severity": ["error"], "pos": {"line": 1, "column": 0}, "data": "a severity that is not a string"},
        {"severity": "error", "pos": {"line": 1, "column": 0}, "data": {"not": "a string"}},
        {"pos": {"line": 1, "column": 0}},
        "not an object",
        ["not", "an", "object"],
    ],
)
def test_a_message_is_what_validation_builds(raw: Any) -> None:
    fast, validated = message_of(raw), _validated_message(raw)
    assert fast == validated and fast.model_fields_set == validated.model_fields_set
    assert fast.model_dump_json() == validated.model_dump_json()
    for got, want in ((fast.pos, validated.pos), (fast.end_pos, validated.end_pos)):
        assert got == want
        if got is not None and want is not None:
            assert got.model_fields_set == want.model_fields_set
    assert fast.__pydantic_extra__ is None and fast.__pydantic_private__ is None


def test_a_message_refuses_a_position_validation_refuses() -> None:
    with pytest.raises(ValueError):
        message_of({"severity": "error", "pos": {"line": "seven", "column": 0}, "data": "x"})


def test_messages_at_one_place_share_one_frozen_position() -> None:
    raw = {"severity": "info", "pos": {"line": 9, "column": 2}, "data": "x"}
    first, second = message_of(raw), message_of(dict(raw))
    assert first.pos is second.pos and first is not second
    with pytest.raises(pydantic.ValidationError):
        first.pos.line = 1  # type: ignore[misc]
    first.data = "changed"
    assert second.data == "x"


@pytest.mark.parametrize("tactics", [[1, 2], [{1: "not a str key"}]])
def test_lean_output_refuses_tactics_that_are_not_objects(tactics: list[object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        to_lean_output({"env": 0, "tactics": tactics})


def test_reader_reads_an_answer_with_trailing_spaces_and_one_after_noise_in_its_block() -> None:
    reader = ResponseReader(on_noise=lambda text: None)
    reader.feed(b'{"env": 2}  \t\n\n{"env": 3} trailing text\n{"env": 4}\n\n')
    assert reader.next_response() == {"env": 2}
    assert reader.next_response() == {"env": 4}  # as before: the line that is a whole object wins


@pytest.mark.parametrize(
    "text",
    [
        '{"env": 3, "messages": [{"severity": "info", "pos": {"line": 3, "column": 0}, "data": "\\u00e9 \\ud835\\udd5c"}]}',  # noqa: E501
        '{"data": "lone \\ud800 surrogate", "env": 1}',  # json reads it, pydantic-core's parser refuses it
        '{"data": "\\udc00x", "env": 1}',
        '{"env": 1, "n": 123456789012345678901234567890, "f": [1e400, -0.0, 0.1, 5e-324, NaN, -Infinity]}',
        '{"env": 1, "dup": 1, "dup": 2}',
        '{"env": 1, "deep": ' + "[" * 250 + "]" * 250 + "}",  # deeper than pydantic-core reads
        '{"env": 1}   \t ',
        '{"env": 1}\u2028',  # whitespace to str.strip, not to JSON
        '{"env": 1,}',
    ],
)
def test_an_answer_is_read_to_the_value_json_reads(text: str) -> None:
    """The reader's fast parser reads an answer to exactly `json`'s value, and refuses what `json` refuses."""
    reader = ResponseReader(on_noise=lambda text: None)
    reader.feed(text.encode("utf-8", "surrogatepass") + b"\n\n")
    got = reader.next_response()
    try:
        obj, end = json.JSONDecoder().raw_decode(text)
        want = obj if not text[end:].strip() else None
    except ValueError:
        want = None
    assert json.dumps(got) == json.dumps(want)
    assert repr(got) == repr(want)


def test_shift_positions_moves_every_position_but_line_zero() -> None:
    raw = {
        "messages": [{"pos": {"line": 1, "column": 4}, "endPos": None, "data": "x"}],
        "sorries": [{"pos": {"line": 0, "column": 0}, "goal": "g"}],
        "tactics": [{"pos": {"line": 2, "column": 1}, "endPos": {"line": 3, "column": 0}, "tactic": "rfl"}],
        "infotree": [{"node": {"stx": {"range": {"start": {"line": 5, "column": 2}}}}, "children": []}],
    }
    shifted = shift_positions(raw, 3)
    assert shifted["messages"][0]["pos"] == {"line": 4, "column": 4}
    assert shifted["sorries"][0]["pos"] == {"line": 0, "column": 0}
    assert shifted["tactics"][0]["endPos"] == {"line": 6, "column": 0}
    assert shifted["infotree"][0]["node"]["stx"]["range"]["start"] == {"line": 8, "column": 2}


TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "repl-transcripts"


@pytest.mark.skipif(not TRANSCRIPTS.is_dir(), reason=f"no REPL transcripts at {TRANSCRIPTS}")
def test_every_real_repl_response_is_read_and_typed() -> None:
    """All real REPL outputs (shared/repl-transcripts), fed in odd-sized chunks, parse with no noise."""
    outputs = sorted(TRANSCRIPTS.rglob("*.expected.out"))
    assert len(outputs) > 40
    kinds: collections.Counter[str] = collections.Counter()
    for path in outputs:
        data = path.read_bytes()
        noise: list[str] = []
        reader = ResponseReader(on_noise=noise.append)
        responses = []
        for start in range(0, len(data), 97):
            reader.feed(data[start : start + 97])
            while (response := reader.next_response()) is not None:
                responses.append(response)
        assert not noise, path.name
        assert len(responses) == data.count(b"\n\n"), path.name
        for raw in responses:
            response = classify(raw)
            kinds[type(response).__name__] += 1
            if isinstance(response, CommandResponse):
                output = to_lean_output(raw)
                assert len(output.messages) == len(raw.get("messages", []))
                assert len(output.sorries) == len(raw.get("sorries", []))
    assert set(kinds) == {"CommandResponse", "ProofStepResponse", "ReplMessage"}
