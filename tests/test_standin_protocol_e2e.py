"""The REPL stand-in speaks the REPL protocol: framing, fatal inputs, ids, scripted behaviours, directives.

Every test talks to a real stand-in process over pipes, as the pool will.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.standin import STANDIN_PATH, standin_command
from tests.standin.repl_standin import pretty

pytestmark = pytest.mark.timeout(60)


def descending(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert keys == sorted(keys, reverse=True), f"keys not in descending order: {keys}"
    return dict(pairs)


def parse_response(text: str) -> dict[str, Any]:
    """Parse one response and check it is exactly Lean's `Json.pretty` rendering."""
    value = json.loads(text, object_pairs_hook=descending)
    assert pretty(value) == text
    assert isinstance(value, dict)
    return value


class Standin:
    """One stand-in process driven over its pipes."""

    def __init__(self, cwd: Path, **costs: float) -> None:
        self.proc = subprocess.Popen(
            standin_command(**costs), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd
        )

    def send(self, data: bytes | str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data.encode() if isinstance(data, str) else data)
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        """Read one response: lines up to the blank line that ends it."""
        assert self.proc.stdout is not None
        lines = []
        while (line := self.proc.stdout.readline()) not in (b"\n", b""):
            lines.append(line)
        assert line == b"\n", f"EOF before the end of a response; stderr: {self.stderr()}"
        return parse_response(b"".join(lines).decode("utf-8").removesuffix("\n"))

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        self.send(json.dumps(req, ensure_ascii=False) + "\n\n")
        return self.read()

    def cmd(self, text: str, env: int | None = None, **options: Any) -> dict[str, Any]:
        return self.request({"cmd": text, **({} if env is None else {"env": env}), **options})

    def responds_within(self, seconds: float) -> bool:
        assert self.proc.stdout is not None
        return bool(select.select([self.proc.stdout], [], [], seconds)[0])

    def finish(self) -> tuple[bytes, bytes, int]:
        """Close stdin; return (rest of stdout, stderr, exit status)."""
        out, err = self.proc.communicate(timeout=30)
        return out, err, self.proc.returncode

    def stderr(self) -> str:
        self.proc.kill()
        return self.proc.communicate()[1].decode(errors="replace")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """Start stand-ins in `tmp_path`; every one is killed at the end."""
    procs: list[Standin] = []

    def _start(**costs: float) -> Standin:
        procs.append(Standin(tmp_path, **costs))
        return procs[-1]

    yield _start
    for standin in procs:
        if standin.proc.poll() is None:
            standin.proc.kill()
        standin.proc.communicate()


def run_raw(data: bytes, cwd: Path | None = None, **costs: float) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(standin_command(**costs), input=data, capture_output=True, timeout=30, cwd=cwd)


def responses_of(stdout: bytes) -> list[dict[str, Any]]:
    text = stdout.decode("utf-8")
    assert text.endswith("\n\n")
    return [parse_response(chunk) for chunk in text[:-2].split("\n\n")]


def error_texts(response: dict[str, Any]) -> list[str]:
    return [m["data"] for m in response.get("messages", []) if m["severity"] == "error"]


# --- launching ------------------------------------------------------------------------------------------


def test_standin_command_is_this_python_and_the_script() -> None:
    argv = standin_command(import_seconds=0.5, work_seconds=0.25)
    assert argv[:2] == [sys.executable, str(STANDIN_PATH)]
    assert STANDIN_PATH.is_absolute() and STANDIN_PATH.exists()
    assert argv[2:] == ["--import-seconds", "0.5", "--work-seconds", "0.25"]
    assert shlex.split(shlex.join(argv)) == argv
    assert standin_command() == [sys.executable, str(STANDIN_PATH)]


def test_the_script_runs_as_an_executable_with_env_python(tmp_path: Path) -> None:
    assert os.access(STANDIN_PATH, os.X_OK)
    assert STANDIN_PATH.read_text().startswith("#!/usr/bin/env python3\n")


# --- framing --------------------------------------------------------------------------------------------


def test_clean_command_is_env_zero_then_one() -> None:
    run = run_raw(b'{"cmd": "def f := 37"}\n\n{"cmd": "#check f", "env": 0}\n\n')
    assert run.returncode == 0 and run.stderr == b""
    assert run.stdout == b'{"env": 0}\n\n{"env": 1}\n\n'


def test_multi_line_request_is_joined_without_separator_and_right_trimmed() -> None:
    run = run_raw(b'{"cmd":   \n  "theorem foo : 1 = 1 := by\\n\t \n  sorry"}\n\n')
    (response,) = responses_of(run.stdout)
    assert response["sorries"][0]["pos"] == {"line": 2, "column": 2}


def test_split_json_string_loses_the_line_break() -> None:
    # `by` + `sorry` on two physical lines becomes `bysorry`: one identifier, no sorry at all.
    (response,) = responses_of(run_raw(b'{"cmd": "theorem foo : 1 = 1 := by\nsorry"}\n\n').stdout)
    assert "sorries" not in response


def test_comment_requests_get_no_response() -> None:
    run = run_raw(b'# a comment\n\n-- another\n\n{"cmd": "def a := 1"}\n\n')
    assert responses_of(run.stdout) == [{"env": 0}]


def test_pending_request_at_eof_is_answered_then_exit_0() -> None:
    run = run_raw(b'{"cmd": "def a := 1"}')
    assert (run.returncode, run.stdout) == (0, b'{"env": 0}\n\n')


def test_empty_input_exits_0_silently() -> None:
    run = run_raw(b"")
    assert (run.returncode, run.stdout, run.stderr) == (0, b"", b"")


def test_crlf_lines_and_whitespace_blank_lines_end_requests() -> None:
    run = run_raw(b'{"cmd": "def a := 1"}\r\n\r\n{"cmd": "def b := 1",\r\n "env": 0}   \r\n \t \r\n')
    assert run.returncode == 0
    assert responses_of(run.stdout) == [{"env": 0}, {"env": 1}]


def test_a_response_is_multi_line_pretty_json_with_descending_keys(start: Any) -> None:
    repl = start()
    response = repl.cmd("theorem foo : 1 = 1 := by sorry")
    assert list(response) == ["sorries", "messages", "env"]
    assert list(response["sorries"][0]) == ["proofState", "pos", "goal", "endPos"]
    assert list(response["messages"][0]) == ["severity", "pos", "endPos", "data"]


# --- fatal inputs: stderr message, nothing on stdout, exit 1 --------------------------------------------


@pytest.mark.parametrize("request_text", ["nope", '{"cmd": "x"', '{"cmd": "x"} {"cmd": "y"}', "NaN"])
def test_malformed_json_kills_the_process(request_text: str) -> None:
    run = run_raw(request_text.encode() + b"\n\n")
    assert run.returncode == 1 and run.stdout == b""
    assert run.stderr.startswith(b'uncaught exception: {"message": "Could not parse JSON:\\n')


@pytest.mark.parametrize(
    "request_obj",
    [
        {},
        {"foo": 1},
        [1, 2],
        "cmd",
        {"cmd": 5},
        {"cmd": "x", "env": -1},
        {"cmd": "x", "env": "0"},
        {"cmd": "x", "env": 1.5},
        {"cmd": "x", "allTactics": "true"},
        {"cmd": "x", "infotree": True},
        {"tactic": "rfl", "proofState": True},
    ],
)
def test_request_matching_no_shape_kills_the_process(request_obj: Any) -> None:
    run = run_raw(json.dumps(request_obj).encode() + b"\n\n")
    assert run.returncode == 1 and run.stdout == b""
    assert run.stderr.startswith(b"uncaught exception: {")
    assert b"Could not parse as a valid JSON command:\\n" in run.stderr


def test_double_blank_line_kills_the_process_after_the_first_response() -> None:
    run = run_raw(b'{"cmd": "def a := 1"}\n\n\n{"cmd": "def b := 1"}\n\n')
    assert run.returncode == 1
    assert run.stdout == b'{"env": 0}\n\n'
    assert b"Could not parse JSON" in run.stderr


def test_missing_blank_line_glues_requests_and_kills() -> None:
    run = run_raw(b'{"cmd": "def a := 1"}\n{"cmd": "def b := 1"}\n\n')
    assert (run.returncode, run.stdout) == (1, b"")


# --- request kinds, precedence, nulls, unknown keys ------------------------------------------------------


def test_null_means_absent_and_unknown_keys_are_ignored(start: Any) -> None:
    repl = start()
    assert repl.request({"cmd": "def a := 1", "env": None, "gc": True, "timeout": 5}) == {"env": 0}
    assert repl.request({"cmd": "def b := 1", "env": 0, "allTactics": None, "infotree": "bogus"}) == {"env": 1}


def test_precedence_pickle_env_wins_over_command(start: Any, tmp_path: Path) -> None:
    repl = start()
    repl.cmd("def a := 1")
    assert repl.request({"cmd": "def zzz := 1", "env": 0, "pickleTo": "e.olean"}) == {"env": 0}
    assert (tmp_path / "e.olean").exists()
    assert repl.request({"cmd": "def b := 1", "path": "missing.lean"}) == {"env": 1}


# --- ids and REPL-level errors ---------------------------------------------------------------------------


def test_env_ids_count_every_command_even_with_errors_but_not_error_replies(start: Any) -> None:
    repl = start()
    assert repl.cmd("def a := 1")["env"] == 0
    assert repl.cmd("-- standin: error boom")["env"] == 1
    assert repl.cmd("def x := 1", env=7) == {"message": "Unknown environment."}
    assert repl.cmd("def b := 1", env=1)["env"] == 2


def test_proof_state_ids_sorries_first_then_root_goals_then_tactics(start: Any) -> None:
    repl = start()
    text = "theorem t : 1 = 1 := by\n  skip\n  sorry\ntheorem u : 2 = 2 := by rfl"
    response = repl.cmd(text, rootGoals=True, allTactics=True)
    sorries = response["sorries"]
    assert [s["proofState"] for s in sorries] == [0, 1, 2]
    assert sorries[0]["pos"] == {"line": 3, "column": 2}
    assert sorries[1]["pos"] == sorries[1]["endPos"] == {"line": 2, "column": 2}  # root goal of t
    assert sorries[2]["pos"] == sorries[2]["endPos"] == {"line": 4, "column": 24}  # root goal of u
    assert [t["proofState"] for t in response["tactics"]] == [3, 4, 5]
    assert [t["tactic"] for t in response["tactics"]] == ["skip", "sorry", "rfl"]
    # the counter is global across commands
    assert repl.cmd("example : True := sorry")["sorries"][0]["proofState"] == 6


def test_unknown_proof_state_errors(start: Any) -> None:
    repl = start()
    assert repl.request({"tactic": "rfl", "proofState": 0}) == {"message": "Unknown proof state."}
    assert repl.request({"pickleTo": "p.olean", "proofState": 0}) == {"message": "Unknown proof State."}
    assert repl.request({"pickleTo": "p.olean", "env": 0}) == {"message": "Unknown environment."}
    assert repl.request({"unpickleProofStateFrom": "p.olean", "env": 3}) == {"message": "Unknown environment."}
    assert repl.cmd("def a := 1") == {"env": 0}  # still alive, nothing was allocated


# --- sorry, imports, declarations -------------------------------------------------------------------------


def test_sorry_is_reported_with_position_goal_proof_state_and_warning(start: Any) -> None:
    repl = start()
    text = "-- sorry in a comment\n/- and sorry\n in a block -/\ntheorem foo (n : Nat) : n = n := by sorry"
    response = repl.cmd(text)
    assert response["sorries"] == [
        {
            "proofState": 0,
            "pos": {"line": 4, "column": 36},
            "goal": "n : Nat\n⊢ n = n",
            "endPos": {"line": 4, "column": 41},
        }
    ]
    assert response["messages"] == [
        {
            "severity": "warning",
            "pos": {"line": 4, "column": 8},
            "endPos": {"line": 4, "column": 11},
            "data": "declaration uses `sorry`",
        }
    ]


def test_sorry_inside_strings_and_identifiers_does_not_count(start: Any) -> None:
    repl = start()
    assert repl.cmd('def s := "sorry"\ndef sorryish := 1\n#eval s') == {"env": 0}


def test_unknown_import_is_an_error_message_with_null_end(start: Any) -> None:
    repl = start()
    response = repl.cmd("import Nonexistent.Module\ntheorem t : True := trivial")
    assert response["env"] == 0
    (error,) = response["messages"]
    assert error["severity"] == "error" and error["data"] == "unknown module prefix 'Nonexistent'"
    assert (error["pos"], error["endPos"]) == ({"line": 1, "column": 0}, None)


def test_header_forms_pay_the_import_and_check_every_module(start: Any) -> None:
    repl = start()
    clean = "import Foo\n-- a comment\n/- a block -/\n\nimport Bar.Baz Qux\ntheorem t : True := trivial"
    assert repl.cmd(clean) == {"env": 0}
    response = repl.cmd("module\npublic import Foo.Bar Nonexistent.X\nimport all Baz\ndef a := 1")
    assert error_texts(response) == ["unknown module prefix 'Nonexistent'"]


def test_import_with_env_or_after_the_header_is_an_error(start: Any) -> None:
    repl = start()
    assert repl.cmd("import Mathlib\nopen Nat") == {"env": 0}
    misplaced = "invalid 'import' command, it must be used in the beginning of the file"
    assert error_texts(repl.cmd("import Mathlib", env=0)) == [misplaced]
    assert error_texts(repl.cmd("def a := 1\nimport Mathlib")) == [misplaced]


def test_declarations_are_tracked_per_env_so_leaks_are_visible(start: Any) -> None:
    repl = start()
    assert repl.cmd("import Mathlib") == {"env": 0}
    assert repl.cmd("theorem foo : True := trivial", env=0) == {"env": 1}
    assert repl.cmd("theorem foo : True := trivial", env=0) == {"env": 2}  # env 0 never saw foo
    leaked = repl.cmd("lemma foo : True := trivial", env=1)
    assert error_texts(leaked) == ["'foo' has already been declared"]
    assert leaked["messages"][0]["pos"] == {"line": 1, "column": 6}
    assert error_texts(repl.cmd("def g := 1\ndef g := 2")) == ["'g' has already been declared"]
    assert repl.cmd("instance : Inhabited Nat := ⟨0⟩\ninstance : Inhabited Nat := ⟨1⟩") == {"env": 5}


def test_columns_count_code_points(start: Any) -> None:
    repl = start()
    response = repl.cmd("theorem 𝓝𝕜 : True := sorry")
    assert response["sorries"][0]["pos"] == {"line": 1, "column": 21}
    assert response["messages"][0]["endPos"] == {"line": 1, "column": 10}


# --- file mode and pickling ------------------------------------------------------------------------------


def test_file_mode_reads_relative_to_cwd_and_survives_a_missing_file(start: Any, tmp_path: Path) -> None:
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "p.lean").write_text("theorem p : True := sorry\n", encoding="utf-8")
    repl = start()
    assert repl.request({"path": "test/p.lean"})["sorries"][0]["proofState"] == 0
    missing = repl.request({"path": "test/nope.lean"})
    assert list(missing) == ["message"] and "no such file or directory" in missing["message"]
    again = repl.request({"path": "test/p.lean", "env": 0})
    assert again["env"] == 1 and again["sorries"][0]["proofState"] == 1
    assert error_texts(again) == ["'p' has already been declared"]


def test_pickling_envs_and_proof_states_round_trips(start: Any, tmp_path: Path) -> None:
    repl = start()
    repl.cmd("theorem a : 1 = 1 := by sorry")
    assert repl.request({"pickleTo": "env.olean", "env": 0}) == {"env": 0}
    state = repl.request({"pickleTo": "ps.olean", "proofState": 0})
    assert state == {"proofStatus": "Incomplete: open goals remain", "proofState": 1, "goals": ["⊢ 1 = 1"]}
    other = start()
    assert other.request({"unpickleEnvFrom": "env.olean"}) == {"env": 0}
    assert error_texts(other.cmd("theorem a : 2 = 2 := rfl", env=0)) == ["'a' has already been declared"]
    restored = other.request({"unpickleProofStateFrom": "ps.olean"})
    assert restored["proofState"] == 0 and restored["goals"] == ["⊢ 1 = 1"]
    assert other.request({"tactic": "rfl", "proofState": 0})["proofStatus"] == "Completed"


@pytest.mark.parametrize(
    "request_text",
    [
        b'{"unpickleEnvFrom": "nope.olean"}',
        b'{"unpickleProofStateFrom": "nope.olean"}',
        b'{"cmd": "def a := 1"}\n\n{"pickleTo": "no/such/dir/a.olean", "env": 0}',
    ],
)
def test_unpickling_a_missing_file_or_pickling_nowhere_kills_the_process(tmp_path: Path, request_text: bytes) -> None:
    run = run_raw(request_text + b"\n\n", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stdout in (b"", b'{"env": 0}\n\n')
    assert run.stderr.startswith(b"uncaught exception: no such file or directory (error code: 2)\n  file: ")


# --- tactic mode ------------------------------------------------------------------------------------------


def test_tactic_mode_sorry_completed_branching_and_unknown(start: Any) -> None:
    repl = start()
    repl.cmd("theorem t (x : Int) : x = x := by sorry")
    assert repl.request({"tactic": "exat 42", "proofState": 0}) == {
        "message": "Lean error:\n<input>:1:1: unknown tactic"
    }
    assert repl.request({"tactic": "sorry", "proofState": 0}) == {
        "sorries": [{"proofState": 1, "goal": "x : Int\n⊢ x = x"}],
        "proofStatus": "Incomplete: contains sorry",
        "proofState": 2,
        "goals": [],
    }
    split = repl.request({"tactic": "by_cases h : x < 0", "proofState": 0})
    assert (split["proofState"], len(split["goals"])) == (3, 2)
    assert split["proofStatus"] == "Incomplete: open goals remain"
    one_left = repl.request({"tactic": "case pos => rfl", "proofState": 3})
    assert len(one_left["goals"]) == 1
    assert repl.request({"tactic": "exact rfl", "proofState": 4}) == {
        "proofStatus": "Completed",
        "proofState": 5,
        "goals": [],
    }
    both = repl.request({"tactic": "all_goals sorry", "proofState": 3})
    assert [s["proofState"] for s in both["sorries"]] == [6, 7] and both["proofState"] == 8


def test_tactic_mode_error_directive_is_logged_at_zero(start: Any) -> None:
    repl = start()
    repl.cmd("def f : Nat := by sorry")
    response = repl.request({"tactic": "exact foo\n-- standin: error Unknown identifier `foo`", "proofState": 0})
    assert response["messages"] == [
        {
            "severity": "error",
            "pos": {"line": 0, "column": 0},
            "endPos": {"line": 0, "column": 0},
            "data": "Unknown identifier `foo`",
        }
    ]
    assert response["proofStatus"] == "Incomplete: contains sorry"


# --- directives -------------------------------------------------------------------------------------------


def test_error_and_info_directives_are_messages_at_their_line(start: Any) -> None:
    repl = start()
    response = repl.cmd("theorem t : True := trivial\n  -- standin: error type mismatch\n-- standin: info hello world")
    assert response["messages"] == [
        {
            "severity": "error",
            "pos": {"line": 2, "column": 2},
            "endPos": {"line": 2, "column": 33},
            "data": "type mismatch",
        },
        {
            "severity": "info",
            "pos": {"line": 3, "column": 0},
            "endPos": {"line": 3, "column": 28},
            "data": "hello world",
        },
    ]


def test_directive_must_be_on_its_own_line(start: Any) -> None:
    repl = start()
    assert repl.cmd("def a := 1 -- standin: error nope") == {"env": 0}
    assert repl.cmd("/-\n-- standin: error nope\n-/") == {"env": 1}


def test_malformed_directive_is_reported(start: Any) -> None:
    repl = start()
    assert error_texts(repl.cmd("-- standin: work soon\n-- standin: dance")) == [
        "bad stand-in directive: work soon",
        "bad stand-in directive: dance",
    ]


def test_work_directive_and_costs_take_at_least_that_long(start: Any) -> None:
    repl = start(import_seconds=0.3, work_seconds=0.1)
    began = time.monotonic()
    assert repl.cmd("import Mathlib") == {"env": 0}
    assert time.monotonic() - began >= 0.4
    began = time.monotonic()
    assert repl.cmd("-- standin: work 0.3\ndef a := 1", env=0) == {"env": 1}
    assert time.monotonic() - began >= 0.4


def test_hang_never_answers(start: Any) -> None:
    repl = start()
    repl.send('{"cmd": "-- standin: hang"}\n\n')
    assert not repl.responds_within(1.0)
    assert repl.proc.poll() is None


def test_crash_exits_134_with_a_panic_and_nothing_on_stdout(start: Any) -> None:
    repl = start()
    assert repl.cmd("def a := 1") == {"env": 0}
    repl.send('{"cmd": "theorem t : True := trivial\\n-- standin: crash", "env": 0}\n\n')
    out, err, status = repl.finish()
    assert (out, status) == (b"", 134)
    assert err.startswith(b"INTERNAL PANIC: ")


def test_crash_once_crashes_the_first_time_only(start: Any, tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    request = {"cmd": f"-- standin: crash-once {marker}\ntheorem t : True := trivial"}
    first = start()
    first.send(json.dumps(request) + "\n\n")
    assert first.finish()[2] == 134
    assert marker.exists()
    assert start().request(request) == {"env": 0}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read RSS")
def test_memory_directive_really_grows_rss(start: Any) -> None:
    repl = start()
    assert repl.cmd("def a := 1") == {"env": 0}
    before = rss_kb(repl.proc.pid)
    assert repl.cmd("-- standin: memory 64\ndef b := 1") == {"env": 1}
    assert rss_kb(repl.proc.pid) - before >= 60 * 1024
    assert repl.cmd("def c := 1") == {"env": 2}
    assert rss_kb(repl.proc.pid) - before >= 60 * 1024  # kept, not freed


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS semantics")
def test_memory_beyond_the_address_space_limit_dies_like_lean() -> None:
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (512 * 2**20, 512 * 2**20))

    request = b'{"cmd": "def a := 1"}\n\n{"cmd": "-- standin: memory 1024"}\n\n'
    run = subprocess.run(standin_command(), input=request, capture_output=True, timeout=30, preexec_fn=limit)
    assert run.returncode == 1
    assert run.stdout == b'{"env": 0}\n\n'
    assert run.stderr == b"INTERNAL PANIC: out of memory\n"


def test_stderr_directive_writes_that_many_bytes_before_answering() -> None:
    run = run_raw(b'{"cmd": "def a := 1\\n-- standin: stderr 300000"}\n\n{"cmd": "def b := 1"}\n\n')
    assert run.returncode == 0
    assert len(run.stderr) == 300000
    assert responses_of(run.stdout) == [{"env": 0}, {"env": 1}]


# --- odd text never desynchronises the stream -------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "echoed"),
    [
        ("\\ud800 lone", "\ufffd lone"),
        ("nul \\u0000 byte", "nul \x00 byte"),
        ("astral 𝓝 \\ud835\\udd5c", "astral 𝓝 𝕜"),
        ("tab\\there", "tab\there"),
        ('quote \\" back \\\\ bell \\u0007', 'quote " back \\ bell \x07'),
    ],
)
def test_odd_characters_survive_and_are_escaped_like_lean(start: Any, payload: str, echoed: str) -> None:
    repl = start()
    repl.send('{"cmd": "-- standin: info ' + payload + '\\r\\ndef a := 1"}\n\n')
    response = repl.read()
    assert response["messages"][0]["data"] == echoed
    assert repl.cmd("def b := 1") == {"env": 1}


def test_control_characters_are_escaped_lowercase_and_unicode_written_raw() -> None:
    run = run_raw('{"cmd": "-- standin: info \\u001b[1m 𝓝 é"}\n\n'.encode())
    assert '"data": "\\u001b[1m 𝓝 é"'.encode() in run.stdout


def test_invalid_utf8_bytes_do_not_break_the_stream() -> None:
    run = run_raw(b'{"cmd": "def \xff\xfe := 1"}\n\n{"cmd": "def b := 1"}\n\n')
    assert run.returncode == 0
    assert [r["env"] for r in responses_of(run.stdout)] == [0, 1]


def test_one_megabyte_command_then_more_requests(start: Any) -> None:
    repl = start()
    filler = "-- filler line with text ∀ x, x = x\r\n\t" * 25_000
    big = "theorem big : True := trivial\n" + filler + "example : 1 = 1 := sorry"
    assert len(big.encode()) > 1_000_000
    response = repl.cmd(big)
    assert response["sorries"][0]["pos"]["line"] == 25_002
    assert repl.cmd("def after := 1", env=0) == {"env": 1}


# --- the printer ------------------------------------------------------------------------------------------


def test_printer_breaks_groups_that_do_not_fit_in_80_columns() -> None:
    assert pretty({"goals": ["a" * 30, "b" * 30]}) == '{"goals": ["' + "a" * 30 + '", "' + "b" * 30 + '"]}'
    assert pretty({"goals": ["a" * 40, "b" * 40]}) == ('{"goals":\n ["' + "a" * 40 + '",\n  "' + "b" * 40 + '"]}')
    assert pretty({"k": [], "e": {}, "n": None, "t": True, "f": False}) == (
        '{"t": true, "n": null, "k": [], "f": false, "e": {}}'
    )
