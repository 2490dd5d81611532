"""The audit's fast paths against the full ones they shortcut: same answers, or the full path decides.

- theorem discovery: the plain reading (two regex passes, for code without `«`) against the token
  reading, on adversarial texts and on random texts built from the pieces lexers trip over;
- the `skipKernelTC` refusal's pre-check (`"kernel" in code.lower()`) against the regex it guards;
- results built from valid parts without validation (`ProofResult.from_output`) against the same
  results validated by pydantic.
"""

from __future__ import annotations

import random
import re
import sys

import pytest

from lean_mcp._lean.lexer import code_only
from lean_mcp._lean.refusals import _SKIP_KERNEL
from lean_mcp._models import LeanOutput, ProofResult, Sorry, verdict_of
from lean_mcp._trust.declarations import (
    _PLAIN_KEYWORD,
    Declarations,
    _keyword_matches,
    _read_plain,
    _read_tokens,
    read_declarations,
)

#: Pieces of Lean text where a lexer shortcut could go wrong: keywords glued to names, numerals and
#: symbols, header words, escapes, comments and literals, odd spaces and control characters.
PIECES = [
    *("theorem", "lemma", "namespace", "section", "mutual", "sorry", "admit", "end", "axiom"),
    *("import", "prelude", "module", "public", "private", "meta", "all"),
    *("A", "B.c", "_root_", "x", "t'", "h!", "q?", "α", "²", "٣", "1", "0x", "_", "_x1", "x_", "λ", "Nat", "by"),
    *(" ", " ", "\n", "\n", "\t", "\u00a0", "\u2003", "\x1c", "\x01", "\r\n"),
    *(".", "..", "#", "#exit", "(", ")", ":", ":=", "'", "!", "?", "{", "}", "@[simp]"),
    *("--", "/-", "-/", "/--", '"', 'r#"', '"#', "'a'", "'\\n'", 's!"', "«", "»", "«a b»"),
    *("theorem.x", "x.end", ".theorem", "1sorry", "append", "x'end", "a.1"),
]
HEADERS = ["import Mathlib\n", "import A B.c\nimport C\n", "prelude\n", "module\nimport A\n", "import  A\t\n", ""]
ADVERSARIAL = [
    "import Mathlib\ntheorem t (n : Nat) : n + 0 = n := by\n  simp\n",
    "theorem a : True := trivial\nexample := (sorry)\ndef x := 1theorem e : True := trivial\n",
    "def x.theorem := 1\ntheorem b : True := trivial\n#theorem c\naxiom.x\n",
    "namespace N\ntheorem c : True := trivial\nend N\nlemma(d) : True := trivial\n",
    "theorem t' : True := trivial\ndef f := x.sorry + (sorry)+sorry\n",
    "import A.b all\nimport all B\npublic import C\nmeta import D\ntheorem t : True := trivial\n",
    "import A\nimport\nB theorem t : True := trivial\n",
    "prelude module\nimport A -- c\ntheorem t : True := trivial\n",
    "namespace A.B\nsection\ntheorem _root_.r : True := x'sorry\nend\nmutual\nlemma m : True := ?sorry\nend\n",
    "theorem\n\n  spaced.name : True := by\n  exact h.1sorry\n",
    "axiom\u00a0a : False\ntheorem x!theorem : True := trivial\ntheorem ²t : True := trivial\n",
    "import A \x01 B\ntheorem t : True := trivial\ntheorem \x01 x\n",
]


def _key(found: Declarations) -> tuple[object, ...]:
    return (found.theorems, found.theorem_lines, found.axioms, found.imports, found.prelude, found.sorry_lines)


def _random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(count):
        if i % 2:
            parts = [rng.choice(HEADERS)] + [rng.choice(PIECES) + rng.choice([" ", "\n", ""]) for _ in range(30)]
        else:  # character soup from a small alphabet: tokens glued every way
            parts = [rng.choice([*"ab_1.'!?# \n\t():«»\"-/²٣α", "theorem", "end", "sorry", "import", "all"])]
            parts += [rng.choice([*"ab_1.'!?# \n\t():\"-/²α", "theorem", "end", "sorry", "lemma"]) for _ in range(40)]
        texts.append("".join(parts[: rng.randint(1, len(parts))]))
    return texts


def _assert_same_reading(text: str) -> bool:
    """The plain reading, where it answers, equals the token reading; True when it answered."""
    plain = code_only(text)
    fast = _read_plain(plain) if "«" not in plain else None
    full = _read_tokens(text)
    if fast is not None:
        assert _key(fast) == _key(full), text
    assert _key(read_declarations(text)) == _key(full), text
    return fast is not None


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_the_plain_reading_equals_the_token_reading_on_adversarial_texts(text: str) -> None:
    _assert_same_reading(text)


def test_the_plain_reading_equals_the_token_reading_on_random_texts() -> None:
    texts = _random_texts(seed=9, count=20_000)
    answered = sum(_assert_same_reading(text) for text in texts)
    assert answered > len(texts) // 3  # the shortcut is really taken (and so really compared)


#: Another import right after a remembered header, in each way an import command can start.
MORE_IMPORTS = [
    f"{space}{modifier}import Extra\n"
    for space in ("", " ", "\n ")
    for modifier in ("", "public ", "private ", "meta ", "public meta ")
]


def test_a_header_read_before_is_read_again_the_same_whatever_follows_it() -> None:
    """`_plain_header` remembers the last header: a text that starts with it (then more space, another
    import, a name on the next line, `prelude`...) still reads as the token reading says."""
    rng = random.Random(13)
    continuations = _random_texts(seed=12, count=3_000)
    for i, rest in enumerate(continuations):
        header = HEADERS[i % len(HEADERS)]
        _assert_same_reading(header + "theorem primer : True := trivial\n")  # the memo now holds this header
        for glue in ("", " ", "\n", "\n\n  ", rng.choice(PIECES), rng.choice(MORE_IMPORTS)):
            _assert_same_reading(header + glue + rest)


def test_the_plain_reading_leaves_unsure_texts_to_the_token_reading() -> None:
    for text in ["x := 1theorem t : True := trivial", "import A all\ntheorem t : True := trivial", "def a := b.sorry"]:
        assert _read_plain(code_only(text)) is None
    assert _read_plain(code_only(ADVERSARIAL[0])) is not None


def test_every_character_the_refusal_takes_for_a_letter_of_kernel_lowers_to_it() -> None:
    """The refusal runs its case-blind regex only when `"kernel" in code.lower()`: that must hold whenever
    the regex can match, i.e. every character it matches for k, e, r, n or l lowers to that very letter."""
    letters = re.compile("[kernl]", re.IGNORECASE)
    odd = [c for c in map(chr, range(sys.maxunicode + 1)) if letters.fullmatch(c) and c.lower() not in "kernl"]
    assert odd == []
    assert _SKIP_KERNEL.search("set_option debug.skip\u212aernelTC")  # the Kelvin sign: still refused


def _validated(output: LeanOutput, **fields: object) -> ProofResult:
    """The result `from_output` stood for, built by pydantic's validation (as it was built before)."""
    verdict = verdict_of(output)
    fields = {"lean_time": None, **fields}
    return ProofResult(success=verdict == "proved", status="finished", result=output, verdict=verdict, **fields)


@pytest.mark.parametrize(
    "output",
    [
        LeanOutput(env=1),
        LeanOutput.model_validate(
            {"env": 2, "messages": [{"severity": "error", "pos": {"line": 1, "column": 0}, "data": "x"}]}
        ),
        LeanOutput(sorries=[Sorry(goal="⊢ False")]),
        LeanOutput.model_validate(
            {
                "messages": [
                    {"severity": "warning", "pos": {"line": 2, "column": 0}, "data": "declaration uses 'sorry'"}
                ],
                "future_key": [1, 2],
            }
        ),
    ],
)
@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"lean_time": 1},
        {"lean_time": 0.5, "checks": ["lean"], "axioms": {"t": ["propext"]}, "reusable": False},
        {"proof_id": "p", "axioms": {}},
    ],
)
def test_results_built_without_validation_equal_validated_ones(output: LeanOutput, fields: dict[str, object]) -> None:
    built = ProofResult.from_output(output, **fields)  # type: ignore[arg-type]
    validated = _validated(output, **fields)
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set
    assert built.model_dump_json() == validated.model_dump_json() and repr(built) == repr(validated)
    assert built.reusable == validated.reusable


def test_long_and_short_texts_find_the_same_keywords() -> None:
    """A long text's keyword candidates are found with `str.find`, a short one's by the regex scan."""
    for text in _random_texts(seed=11, count=2_000):
        plain = code_only(text)
        for pad in ("", " " * 200):  # the same keywords, once below and once above the `find` length
            padded = plain + pad
            assert [m.span() for m in _keyword_matches(padded, 0)] == [
                m.span() for m in _PLAIN_KEYWORD.finditer(padded, 0)
            ], text
