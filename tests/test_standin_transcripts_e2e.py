"""The REPL stand-in against the real REPL transcripts in shared/repl-transcripts/.

Two kinds of checks:

* the pretty printer re-renders every real response byte for byte (framing, key order, escaping and
  Wadler-style line breaking of Lean's `Json.pretty`);
* every transcript replayed through the stand-in gives the same number of responses, each framed and
  ordered like Lean's, of the same kind, with the same keys and ids where the stand-in can know them,
  and the exact REPL-level `{"message"}` texts. Message and goal texts come from real Lean and are not
  compared.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.standin import standin_command
from tests.standin.repl_standin import pretty

# The shared folder sits next to the checkout (or next to the folder of worktrees).
TRANSCRIPTS = next(
    (p / "shared" / "repl-transcripts" for p in Path(__file__).resolve().parents[2:4] if (p / "shared").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "repl-transcripts",
)
pytestmark = pytest.mark.skipif(not TRANSCRIPTS.is_dir(), reason=f"no REPL transcripts at {TRANSCRIPTS}")


def transcript_names() -> list[str]:
    """Every `.in` with an `.expected.out`, as a path relative to the transcripts folder, minus `.in`."""
    if not TRANSCRIPTS.is_dir():
        return []
    found = TRANSCRIPTS.glob("**/*.in")
    return sorted(str(p.relative_to(TRANSCRIPTS))[:-3] for p in found if p.with_suffix(".expected.out").exists())


def split_responses(text: str) -> list[str]:
    """Responses on the wire: each is non-empty text followed by one blank line."""
    assert text == "" or text.endswith("\n\n"), f"output does not end with a blank line: {text[-40:]!r}"
    return [chunk for chunk in text[:-2].split("\n\n")] if text else []


def expected_responses(name: str) -> list[str]:
    return split_responses((TRANSCRIPTS / f"{name}.expected.out").read_text(encoding="utf-8").rstrip("\n") + "\n\n")


# --- the pretty printer, byte for byte ------------------------------------------------------------------


@pytest.mark.parametrize("name", transcript_names())
def test_printer_reproduces_every_real_response(name: str) -> None:
    for text in expected_responses(name):
        assert pretty(json.loads(text)) == text


# --- replaying transcripts ------------------------------------------------------------------------------

# Transcripts whose REPL state comes from an earlier transcript of the same folder (pickle files).
PREREQUISITES = {
    "pickle_open_2": "pickle_open",
    "pickle_open_scoped_2": "pickle_open_scoped",
    "pickle_proof_state_2": "pickle_proof_state_1",
    "mathlib/pickle_2": "mathlib/pickle",
    "mathlib/H20231215_2": "mathlib/H20231215",
}

# Responses where only real Lean can know the kind or the keys: (transcript, response index) -> reason.
# Past such a response, proof-state ids are no longer determined, so they are not compared further.
LEAN_ONLY = {
    ("app_type_mismatch2", 6): "`apply ?succ` fails inside Lean: a thrown `Lean error`, not a proof step",
    ("self_proof_check", 2): "`exact?` fails inside Lean: a thrown `Lean error`",
    ("self_proof_check", 4): "`exact?` fails inside Lean: a thrown `Lean error`",
    ("self_proof_check", 6): "`exact?` fails inside Lean: a thrown `Lean error`",
    ("self_proof_check", 8): "`exact?` fails inside Lean: a thrown `Lean error`",
    ("mathlib/exact", 4): "`exact?` fails inside Lean: a thrown `Lean error`",
    ("no_goal_sorry", 0): "the `sorry` has no goal after an elaboration error, so Lean reports none",
    ("no_goal_sorry_2", 0): "the second `sorry` has no goal left, so Lean reports only the first",
    ("mathlib/H20231115_2", 1): "`all_goals sorry` after `induction'`: one sorry per goal, Lean knows how many",
}

# Tactic-mode steps whose proofStatus / goals only real Lean can know (the stand-in does not typecheck).
LEAN_ONLY_STATUS = {
    ("app_type_mismatch", 4): "`apply ?succ` leaves a metavariable",
    ("app_type_mismatch2", 4): "the kernel rejects the term",
    ("invalid_tactic", 1): "`my_fake_premise` is unknown: a logged error, the goal closed by error recovery",
    ("mathlib/20240209", 1): "`done` fails inside `show ... by`: error recovery leaves a sorry",
    ("mathlib/pickle_2", 1): "`norm_num at h` does not close the goal",
    ("mathlib/placeholder_synthesis", 4): "an unassigned placeholder leaves a metavariable",
    **{("name_generator", i): "the steps leave metavariables" for i in range(2, 9)},
    ("self_proof_apply_check", 2): "the kernel rejects a self-referential term",
    ("self_proof_exact_check", 2): "the kernel rejects a self-referential term",
    ("self_proof_rw", 2): "the kernel rejects a self-referential term",
}

# Keys whose presence only real Lean can know: messages (Lean's own errors, infos, linters), the
# `infotree` payload (not simulated), and trace output.
LEAN_ONLY_KEYS = {"messages", "infotree", "traces"}


def replay(name: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run one transcript's requests through a fresh stand-in process (its own ids start at 0)."""
    request = (TRANSCRIPTS / f"{name}.in").read_bytes()
    return subprocess.run(standin_command(), input=request, capture_output=True, cwd=cwd, timeout=60)


def kind_of(response: dict[str, Any]) -> str:
    if "env" in response:
        return "command"
    if "proofStatus" in response or "proofState" in response:
        return "proof-step"
    assert set(response) == {"message"}, response
    return "message"


def keys_in_descending_order(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert keys == sorted(keys, reverse=True), f"keys not in descending order: {keys}"
    return dict(pairs)


def proof_state_ids(response: dict[str, Any]) -> list[int | None]:
    """Proof-state ids in allocation order: sorries first, then the response's own state."""
    ids = [s.get("proofState") for s in response.get("sorries", [])]
    return [*ids, response["proofState"]] if "proofState" in response else ids


@pytest.fixture
def transcript_cwd(tmp_path: Path) -> Path:
    """A working directory whose `test/` holds copies of the transcript files (as upstream's harness)."""
    return tmp_path


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", transcript_names())
def test_standin_replays_transcript(name: str, transcript_cwd: Path) -> None:
    shutil.copytree(TRANSCRIPTS / Path(name).parent, transcript_cwd / "test")
    if name in PREREQUISITES:
        assert replay(PREREQUISITES[name], transcript_cwd).returncode == 0
    run = replay(name, transcript_cwd)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stderr == b""
    got_texts = split_responses(run.stdout.decode("utf-8"))
    expected = [json.loads(text) for text in expected_responses(name)]
    assert len(got_texts) == len(expected)
    ids_determined = True
    for index, (text, want) in enumerate(zip(got_texts, expected, strict=True)):
        got = json.loads(text, object_pairs_hook=keys_in_descending_order)
        assert pretty(got) == text, "not Lean's Json.pretty rendering"
        if (name, index) in LEAN_ONLY:
            ids_determined = False
            continue
        where = f"{name} response {index}"
        assert kind_of(got) == kind_of(want), where
        if kind_of(want) == "message":
            assert got == want, where
            continue
        assert set(got) - LEAN_ONLY_KEYS == set(want) - LEAN_ONLY_KEYS, where
        assert got.get("env") == want.get("env"), where
        if len(got.get("tactics", [])) != len(want.get("tactics", [])):
            ids_determined = False  # the stand-in splits `by` blocks into top-level tactics only
        if "proofStatus" in want and (name, index) not in LEAN_ONLY_STATUS:
            assert (got["proofStatus"], len(got["goals"])) == (want["proofStatus"], len(want["goals"])), where
        if ids_determined:
            assert proof_state_ids(got) == proof_state_ids(want), where
        else:
            assert len(proof_state_ids(got)) == len(proof_state_ids(want)), where
