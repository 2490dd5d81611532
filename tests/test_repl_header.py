"""Splitting the import header from the body, and positions reported in the user's own text."""

from __future__ import annotations

import pytest

from lean_mcp._lean.source import split_header
from lean_mcp._models import ProofConfig, Verdict
from lean_mcp._repl.pool import ReplPool
from tests.standin import standin_command

pytestmark = pytest.mark.timeout(60)


def test_leading_imports_are_the_header() -> None:
    split = split_header("import Mathlib\nimport Aesop\n\ntheorem t : True := trivial\n")
    assert split.header == "import Mathlib\nimport Aesop\n"
    assert split.body == "\ntheorem t : True := trivial\n"
    assert split.line_offset == 2
    assert split.key == "import Mathlib\nimport Aesop"


def test_comments_and_blank_lines_before_and_between_imports() -> None:
    text = (
        "-- a proof\n/- a block\n  /- nested -/ still comment\n-/\n\nimport A B  -- two\n\n/- x -/ import C\ntheorem t"
    )
    split = split_header(text)
    assert split.line_offset == 8
    assert split.body == "theorem t"
    assert split.key == "import A B\nimport C"


def test_key_ignores_spacing_and_comments() -> None:
    a = split_header("import  Mathlib   -- everything\ntheorem a : True := trivial")
    b = split_header("-- header\nimport Mathlib\n\ntheorem b : True := trivial")
    assert a.key == b.key == "import Mathlib"


def test_crlf_lines_keep_their_carriage_return_and_count_once() -> None:
    split = split_header("import A\r\nimport B\r\ntheorem t : True := trivial\r\n")
    assert split.line_offset == 2
    assert split.header == "import A\r\nimport B\r\n"
    assert split.body == "theorem t : True := trivial\r\n"
    assert split.key == "import A\nimport B"


def test_no_imports_means_an_empty_header() -> None:
    split = split_header("-- standin: info hi\ntheorem t : True := trivial")
    assert (split.header, split.line_offset, split.key) == ("", 0, "")
    assert split.body == "-- standin: info hi\ntheorem t : True := trivial"


def test_comment_after_the_last_import_belongs_to_the_body() -> None:
    split = split_header("import A\n/- about t\n-/\ntheorem t")
    assert split.line_offset == 1
    assert split.body == "/- about t\n-/\ntheorem t"


def test_module_system_header_forms() -> None:
    split = split_header("module\n\npublic import A.B\nmeta import C\nimport all D\ntheorem t")
    assert split.line_offset == 5
    assert split.key == "module\npublic import A.B\nmeta import C\nimport all D"


@pytest.mark.parametrize(
    "text",
    [
        "import A theorem t : True := trivial",  # code on the import line: the body would start mid-line
        "import A /- a comment that\n goes on -/ theorem t : True := trivial",
        "import 5bad\ntheorem t",
        "prelude import A\ntheorem t : True := trivial",  # a header Lean reads, on one line
        "module import A\ntheorem t : True := trivial",
    ],
)
def test_unclear_headers_are_checked_whole(text: str) -> None:
    split = split_header(text)
    assert split.whole
    assert (split.body, split.line_offset) == (text, 0)


def test_imports_after_code_are_body() -> None:
    split = split_header("import A\ntheorem t : True := trivial\nimport B\n")
    assert split.line_offset == 1
    assert split.body.endswith("import B\n")


@pytest.mark.anyio
async def test_message_line_is_the_line_in_the_users_text() -> None:
    """A message on line 5 of a proof with 3 import lines reports line 5, not line 2."""
    text = "import A\nimport B\nimport C\ntheorem t : True := by\n  -- standin: error on line five\n  sorry\n"
    async with ReplPool(standin_command(), workers=1) as pool:
        result = await pool.check(text, ProofConfig(timeout=20))
    assert result.verdict == Verdict.REJECTED
    [error] = result.result.errors if result.result else []
    assert (error.pos.line, error.pos.column, error.data) == (5, 2, "on line five")
    assert error.end_pos is not None and error.end_pos.line == 5
    [sorry] = result.sorries
    assert sorry.pos is not None and (sorry.pos.line, sorry.pos.column) == (6, 2)
    assert sorry.end_pos is not None and sorry.end_pos.line == 6


@pytest.mark.anyio
async def test_tactic_positions_map_back_too() -> None:
    text = "import A\n\ntheorem t : 1 = 1 := by\n  rfl\n"
    async with ReplPool(standin_command(), workers=1) as pool:
        result = await pool.check(text, ProofConfig(timeout=20, all_tactics=True))
    assert result.verdict == Verdict.PROVED
    assert result.result is not None and result.result.tactics
    assert result.result.tactics[0]["pos"]["line"] == 4


@pytest.mark.anyio
async def test_a_header_error_points_into_the_users_header() -> None:
    text = "-- my proof\n\nimport Nonexistent.Thing\ntheorem t : True := trivial\n"
    async with ReplPool(standin_command(), workers=1) as pool:
        result = await pool.check(text, ProofConfig(timeout=20))
    assert result.verdict == Verdict.REJECTED
    [error] = result.result.errors if result.result else []
    assert "unknown module prefix 'Nonexistent'" in error.data


@pytest.mark.anyio
async def test_whole_text_fallback_is_still_checked() -> None:
    async with ReplPool(standin_command(), workers=1) as pool:
        await pool.check("import A\ntheorem warm : True := trivial", ProofConfig(timeout=20))
        result = await pool.check("import A theorem t : True := by\n  sorry", ProofConfig(timeout=20))
        assert result.verdict == Verdict.SORRY
        assert result.sorries[0].pos is not None and result.sorries[0].pos.line == 2
        health = pool.health()
    # a fresh REPL, discarded after the proof: its imports live outside any shared environment
    assert (health["repl_starts"], health["live"]) == (2, 0)


@pytest.mark.parametrize("opener", ["/-- doc -/", "/-! module doc -/", "/--\nmultiline doc\n-/"])
def test_a_doc_comment_ends_the_header_as_it_does_for_lean(opener: str) -> None:
    """`/--` and `/-!` open commands, not comments: imports after one are not Lean's header."""
    split = split_header(f"{opener}\nimport A\ntheorem t : True := trivial\n")
    assert (split.header, split.line_offset, split.key) == ("", 0, "")
    after = split_header(f"import A\n{opener}\ntheorem t : True := trivial\n")
    assert (after.line_offset, after.key) == (1, "import A")


@pytest.mark.anyio
async def test_imports_after_a_doc_comment_are_rejected_even_when_a_repl_holds_them() -> None:
    async with ReplPool(standin_command(), workers=1) as pool:
        warm = await pool.check("import A\ntheorem warm : True := trivial\n", ProofConfig(timeout=20))
        assert warm.verdict == Verdict.PROVED
        result = await pool.check("/-! doc -/\nimport A\ntheorem t : True := trivial\n", ProofConfig(timeout=20))
    assert result.verdict == Verdict.REJECTED
    [error] = result.result.errors if result.result else []
    assert "import" in error.data and error.pos.line == 2


@pytest.mark.parametrize("space", ["\t", "\u00a0", "\x0c"])
def test_a_header_lean_refuses_for_its_spacing_is_checked_whole(space: str) -> None:
    """Lean rejects a tab (or other odd whitespace) in header code; it must not reuse a REPL of `import A`."""
    assert split_header(f"import{space}A\ntheorem t : True := trivial\n").whole
    assert split_header(f"import A\n{space}\nimport B\ntheorem t : True := trivial\n").whole
    assert not split_header(f"import A -- a{space}comment\ntheorem t : True := {space}trivial\n").whole
    assert not split_header("import A\r\nimport  B\r\ntheorem t : True := trivial\r\n").whole


def test_an_isolated_carriage_return_in_header_code_is_checked_whole() -> None:
    """Lean refuses a CR that does not end a line ("isolated carriage returns are not allowed")."""
    assert split_header("import A\r \ntheorem t : True := trivial\n").whole
    assert split_header("import A\r-- c\ntheorem t : True := trivial\n").whole
    assert not split_header("import A\r\n/- a\r b -/\r\ntheorem t : True := trivial\r\n").whole


def test_the_character_after_a_comment_opener_is_skipped_as_lean_skips_it() -> None:
    """Lean's `/-` swallows the next character, so `/-/-` opens one comment, not two."""
    split = split_header("/-/- note -/\nimport A\ntheorem t : True := trivial\n")
    assert (split.line_offset, split.key) == (2, "import A")
