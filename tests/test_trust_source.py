"""Refused constructs and theorem discovery: the evasions a proof writer tries, and no false refusals."""

from __future__ import annotations

import contextlib

import pytest

from lean_mcp._errors import InvalidProofError
from lean_mcp._lean.lexer import Code, WordScanner, code_only
from lean_mcp._lean.source import validate_proof_text
from lean_mcp._trust.declarations import read_declarations
from lean_mcp._trust.probes import axioms_of


def refuse(code: str, *, allow_prelude: bool = False) -> str:
    with pytest.raises(InvalidProofError) as caught:
        validate_proof_text(code, 100_000, allow_prelude=allow_prelude)
    return str(caught.value)


@pytest.mark.parametrize(
    "code",
    [
        "theorem t : True := trivial\n#exit\ntheorem f : False := sorry",
        "theorem t : True := trivial #exit",
        "def «a--b» : Nat := 1 #exit",
        "def s := '\"' #exit",
        "set_option debug.skipKernelTC true in\ntheorem f : False := sorry",
        "set_option  debug.«skipKernelTC»   true",
        "-- set_option debug.skipKernelTC true (refused even in a comment: no honest proof needs it)",
        "#guard_msgs (drop error) in\ntheorem bad : False := by simp",
        "/-- warning: declaration uses 'sorry' -/\n#guard_msgs in\ntheorem t : False := sorry",
        "/- a comment -/ prelude\ninductive False : Prop",
        "prelude",
    ],
)
def test_refused_constructs_are_refused_with_the_reason(code: str) -> None:
    text = refuse(code)
    assert any(word in text for word in ("#exit", "skipKernelTC", "#guard_msgs", "prelude"))


@pytest.mark.parametrize(
    "code",
    [
        "-- we never use #exit here\ntheorem t : True := trivial",
        "/- #guard_msgs would hide errors; /- nested -/ #exit -/\ntheorem t : True := trivial",
        'def s : String := "#exit and #guard_msgs are refused"\ntheorem t : True := trivial',
        'def s : String := r#"a " #exit "#\ntheorem t : True := trivial',
        "theorem prelude_free : True := trivial",
    ],
)
def test_a_mere_mention_in_a_comment_or_string_is_not_refused(code: str) -> None:
    validate_proof_text(code, 100_000)


def test_prelude_is_accepted_when_allowed() -> None:
    validate_proof_text("prelude\ninductive False : Prop\n", 1000, allow_prelude=True)


def test_code_only_keeps_positions() -> None:
    text = 'a -- c\n/- x\n-/ "s\\"t" b\n'
    blank = code_only(text)
    assert len(blank) == len(text) and blank.count("\n") == text.count("\n")
    assert blank.split() == ["a", "b"]


def test_theorems_are_found_with_their_full_names() -> None:
    code = """import Mathlib
/-- doc -/
@[simp] theorem top : True := trivial
namespace A.B
section
private theorem p : True := trivial
protected lemma q : True := trivial
end
mutual
theorem m1 : True := trivial
end
theorem _root_.r : True := trivial
set_option maxHeartbeats 400 in
theorem «odd name» : True := trivial
end A.B
-- theorem hidden : False := sorry
example : True := trivial
"""
    found = read_declarations(code)
    assert [".".join(t) for t in found.theorems] == ["top", "A.B.p", "A.B.q", "A.B.m1", "r", "A.B.odd name"]
    assert found.theorem_lines == [3, 6, 7, 10, 12, 14]
    assert found.imports == ["Mathlib"]
    assert found.sorry_lines == []


def test_axioms_and_sorries_are_found() -> None:
    found = read_declarations("namespace N\naxiom magic (α : Sort u) : α\nend N\ntheorem t : False := sorry\n")
    assert found.axioms == ["N.magic"]
    assert found.sorry_lines == [4]


def test_axioms_answers_are_read_as_lean_prints_them() -> None:
    assert axioms_of("'t' does not depend on any axioms") == []
    assert axioms_of("'A.t' depends on axioms: [propext, Classical.choice, sorryAx]") == [
        "propext",
        "Classical.choice",
        "sorryAx",
    ]
    assert axioms_of("Prop : Type") is None


@pytest.mark.parametrize(
    "code",
    [
        'def s := "a\\"" #exit',  # an escaped quote inside a string does not end it; the one after does
        'def s := "a\\\\" #exit',  # an escaped backslash, then the closing quote
        "/- /- nested -/ still a comment -/ #exit",
        "def c := '\"' #exit",  # a char literal holding a quote opens no string
        'def s := r#"a "# #exit',
    ],
)
def test_exit_after_a_literal_or_comment_is_still_refused(code: str) -> None:
    assert "#exit" in refuse(code)


@pytest.mark.parametrize(
    "code",
    [
        'def s := "a\\" #exit"',  # the escaped quote keeps the string open over `#exit`
        "/- /- -/ #exit -/",  # still inside the outer comment
    ],
)
def test_exit_inside_a_literal_or_comment_is_not_refused(code: str) -> None:
    validate_proof_text(code + "\ntheorem t : True := trivial", 100_000)


TRICKY = [
    "theorem a : True := trivial\nexample := (sorry)\ndef x := 1theorem e : True := trivial\n",
    "def x.theorem := 1\ntheorem b : True := trivial\n#theorem c\naxiom.x\n",
    "namespace N\ntheorem c : True := trivial\nend N\nlemma(d) : True := trivial\n",
    "theorem t' : True := trivial\ndef f := x.sorry + (sorry)+sorry\n",
]


@pytest.mark.parametrize("code", TRICKY)
def test_the_keyword_scan_is_the_same_with_and_without_escaped_names(code: str) -> None:
    """Without a `«` the scan takes a shortcut (a space ends every token); with one it skips token by token.
    Both must find the same theorems, axioms and sorries."""
    plain = read_declarations(code)
    escaped = read_declarations("def «e s» := 1 " + code)  # same lines, one escaped name first
    assert (plain.theorems, plain.axioms, plain.sorry_lines) == (escaped.theorems, escaped.axioms, escaped.sorry_lines)
    assert plain.theorems  # each text has a theorem the scan must find


def test_the_keyword_scan_reads_tokens_as_lean_cuts_them() -> None:
    found = read_declarations(TRICKY[0] + TRICKY[1])
    # `1theorem` is a numeral, then the keyword (as Lean cuts it); `x.theorem` and `#theorem` are names
    assert [".".join(t) for t in found.theorems] == ["a", "e", "b"]
    assert found.sorry_lines == [2]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tail", ["«" * 300_000, "a." * 300_000, "/-" * 300_000, "(sorry)" * 100_000])
def test_scans_stay_linear_on_hostile_text(tail: str) -> None:
    """An unclosed `«` once made every later `«` search to the end of the text (hours for a 4 MB proof)."""
    code = "theorem t : True := trivial\n" + tail
    with contextlib.suppress(InvalidProofError):  # whether refused or not, it must answer
        validate_proof_text(code, 4 << 20)
    assert read_declarations(code).theorems == [["t"]]


@pytest.mark.parametrize(
    "code", [*TRICKY, "def «a theorem b» := 1 theorem c : True := trivial", "theorem «open x := sorry\n"]
)
def test_the_keyword_scan_finds_exactly_the_keyword_tokens(code: str) -> None:
    """`WordScanner` (no Python per token) against the plain tokenizer it shortcuts."""
    words = {"theorem", "lemma", "sorry", "end", "axiom", "namespace"}
    lexed = Code(code)
    expected = [token for token in lexed.tokens() if token.text in words]
    assert [token for token, _ in WordScanner(words).find(lexed)] == expected


def test_an_unclosed_escape_and_control_characters_read_as_before() -> None:
    """An unclosed `«` is a one-character name token (as the plain tokenizer cuts it); a control
    character in the text is a symbol, not mistaken for the placeholder that stands for such a `«`."""
    assert read_declarations("import A \x01 B\ntheorem t : True := trivial\n").imports == ["A"]
    found = read_declarations("import A\ntheorem t : True := trivial\ntheorem \x01 x\n«")
    assert found.theorems == [["t"]] and found.imports == ["A"]
