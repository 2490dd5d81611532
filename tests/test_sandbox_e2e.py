"""The bubblewrap sandbox (`--sandbox`): what a hostile proof can do with and without it.

Each hostile action (the stand-in's `write`/`read`/`connect`/`getenv` directives) is run through a
real REPL pool twice: with `--sandbox none` it must succeed, so the action itself works, and with
`--sandbox bwrap` it must fail. Without a working `bwrap` these tests are SKIPPED with the reason.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from lean_mcp._backends.repl import ReplBackend
from lean_mcp._errors import ConfigurationError
from lean_mcp._models import ProofConfig, ProofResult, Verdict
from lean_mcp._processes import tree_pids
from lean_mcp._sandbox import (
    NO_SANDBOX,
    SANDBOX_ENV_ALLOWED,
    Sandbox,
    bwrap_argv,
    command_paths,
    resolve,
    sandbox_env,
    toolchain_env_paths,
    unsandboxed_warning,
    why_unavailable,
)
from lean_mcp._settings import Settings
from tests.e2e.runner_support import runner_env, running_runner
from tests.procs import still_alive
from tests.real_lean.cli import REPO, clean_env, lean_mcp
from tests.standin import STANDIN_PATH, standin_command

BWRAP = shutil.which("bwrap")
WHY_NOT = why_unavailable(BWRAP)
needs_bwrap = pytest.mark.skipif(WHY_NOT is not None, reason=f"no working sandbox here: {WHY_NOT}")

SECRET = "s3cret-value-0451"


# -- the wrapping itself -------------------------------------------------------------------------


def wrapped(**overrides: object) -> list[str]:
    options: dict[str, object] = {
        "cwd": "/srv/project",
        "readable": ["/opt/lean/toolchain", "/tmp/pytest/project-copy"],
        "env": {"PATH": "/opt/lean/toolchain/bin:/home/me/bin:/usr/bin", "LANG": "C.UTF-8", "API_KEY": SECRET},
        "hidden": ["/srv/project/jobs.sqlite3", "/var/lib/elsewhere.sqlite3"],
    }
    options.update(overrides)
    return bwrap_argv("/usr/bin/bwrap", ["lean", "--json", "--stdin"], **options)  # type: ignore[arg-type]


def pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, arg in enumerate(argv) if arg == flag]


def test_the_wrapped_command_gets_new_namespaces_and_dies_with_the_server() -> None:
    argv = wrapped()
    assert argv[0] == "/usr/bin/bwrap"
    assert argv[argv.index("--") + 1 :] == ["lean", "--json", "--stdin"]
    assert {"--unshare-all", "--die-with-parent", "--clearenv"} <= set(argv)
    assert "--share-net" not in argv
    # a new session would leave the process group, and killing the group would miss the sandbox
    assert "--new-session" not in argv


def test_the_sandbox_has_no_capabilities_and_where_bwrap_can_no_nested_user_namespace_and_a_capped_tmp() -> None:
    argv = wrapped()
    assert argv[argv.index("--cap-drop") + 1] == "ALL"  # bwrap run as root would keep every capability
    assert {"--unshare-user", "--disable-userns"} <= set(argv)
    assert argv[argv.index("--size") + 1 : argv.index("--size") + 4] == [str(256 * 1024 * 1024), "--tmpfs", "/tmp"]
    older = wrapped(hardened=False)  # bubblewrap before 0.8
    assert "--cap-drop" in older and not {"--disable-userns", "--size"} & set(older)


def test_only_the_system_the_project_and_the_named_paths_are_visible_read_only() -> None:
    argv = wrapped()
    binds = pairs(argv, "--ro-bind-try")
    assert all(src == dest for src, dest in binds)
    visible = [src for src, _ in binds]
    assert {"/usr", "/srv/project", "/opt/lean/toolchain", "/tmp/pytest/project-copy"} <= set(visible)
    assert not {"/", "/tmp", "/home", "/root", "/etc", "/var"} & set(visible)
    assert "--bind" not in argv and "--bind-try" not in argv  # nothing of the host is writable
    # the private /tmp comes first, so a readable path inside the host's /tmp is bound over it
    assert argv.index("--tmpfs") < argv.index("/tmp/pytest/project-copy")
    assert argv[argv.index("--chdir") + 1] == "/srv/project"


def test_a_root_or_tmp_path_is_never_bound_from_the_host() -> None:
    visible = [src for src, _ in pairs(wrapped(cwd="/", readable=["/tmp", "/tmp/"]), "--ro-bind-try")]
    assert "/" not in visible and "/tmp" not in visible


def test_the_job_store_is_masked_where_it_would_be_visible() -> None:
    masks = pairs(wrapped(), "--ro-bind")
    assert masks == [("/dev/null", "/srv/project/jobs.sqlite3")]  # the other store is not visible anyway


def test_only_allow_listed_variables_reach_the_sandbox_and_path_keeps_only_visible_directories() -> None:
    env = dict(pairs(wrapped(), "--setenv"))
    assert SECRET not in " ".join(wrapped())
    assert set(env) <= {*SANDBOX_ENV_ALLOWED, "HOME", "TMPDIR"}
    assert env["PATH"] == "/opt/lean/toolchain/bin:/usr/bin"
    assert env["HOME"] == env["TMPDIR"] == "/tmp"
    assert env["LANG"] == "C.UTF-8"
    assert sandbox_env({"LEAN_PATH": "/x", "AWS_SECRET_ACCESS_KEY": SECRET}, [])["LEAN_PATH"] == "/x"


@needs_bwrap
def test_answers_cached_unsandboxed_are_not_reused_sandboxed(project: Path) -> None:
    # a proof's `#eval` may read what only one of them can see
    identities = {
        ReplBackend.from_settings(Settings(repl=standin_command(), project=str(project), sandbox=mode)).identity
        for mode in ("none", "bwrap")
    }
    assert len(identities) == 2


def test_elans_home_stays_reachable_when_home_moves_to_the_private_tmp() -> None:
    env = sandbox_env({"HOME": "/home/me", "PATH": "/home/me/.elan/bin:/usr/bin"}, ["/home/me/.elan"])
    assert env["ELAN_HOME"] == "/home/me/.elan" and env["HOME"] == "/tmp"
    assert env["PATH"] == "/home/me/.elan/bin:/usr/bin"
    assert "ELAN_HOME" not in sandbox_env({"HOME": "/home/me"}, [])  # not visible: not named


def test_the_directories_leans_variables_name_are_readable() -> None:
    env = {"LEAN_PATH": "/pkgs/a/.lake/build/lib:/pkgs/b/lib:relative", "LEAN_SYSROOT": "/opt/lean", "HOME": "/h"}
    assert toolchain_env_paths(env) == ["/pkgs/a/.lake/build/lib", "/pkgs/b/lib", "/opt/lean"]


def test_a_command_names_its_toolchain_and_files_relative_to_where_it_runs(tmp_path: Path) -> None:
    lean = tmp_path / "toolchains" / "v4" / "bin" / "lean"
    lean.parent.mkdir(parents=True)
    lean.write_text("#!/bin/sh\n")
    lean.chmod(0o755)
    (tmp_path / "work").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "input.lean").write_text("")
    argv = ("../toolchains/v4/bin/lean", "../data/input.lean", "--json", "sh")
    paths = command_paths(argv, "/usr/bin:/bin", str(tmp_path / "work"))
    assert str(tmp_path / "toolchains" / "v4") in paths  # `…/bin/lean` → its toolchain root
    assert str(tmp_path / "data" / "input.lean") in paths
    assert not [p for p in paths if "--json" in p]
    assert any(p in ("/usr", "/bin", "/") for p in paths)  # `sh`, found on PATH


@needs_bwrap
def test_a_file_named_through_a_symlinked_directory_is_readable_in_the_sandbox(tmp_path: Path) -> None:
    """A project may reach its files through a link (`tests -> /elsewhere/tests`): bwrap cannot make a
    mount point under a symlink, so the real place is bound and the link leads there."""
    real = tmp_path / "elsewhere" / "tests"
    real.mkdir(parents=True)
    (real / "input.lean").write_text("theorem t : True := trivial\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "tests").symlink_to(real)
    argv = resolve("bwrap").wrap(["cat", "tests/input.lean"], cwd=work, env={"PATH": "/usr/bin:/bin"})
    done = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "theorem t : True := trivial\n"


def test_no_sandbox_leaves_the_command_as_it_is() -> None:
    assert NO_SANDBOX.wrap(["lean", "--stdin"], cwd="/srv") == ["lean", "--stdin"]
    assert resolve("none") is NO_SANDBOX


def test_a_death_by_signal_inside_bwrap_reads_as_that_signal() -> None:
    boxed = Sandbox(bwrap="/usr/bin/bwrap")
    assert boxed.returncode(128 + 11) == -11  # bwrap exits 128+N when its child dies of signal N
    assert boxed.returncode(-9) == -9  # bwrap itself killed
    assert boxed.returncode(1) == 1
    assert NO_SANDBOX.returncode(139) == 139


def test_wrapping_a_command_that_does_not_exist_fails_as_spawning_it_would(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Sandbox(bwrap="/usr/bin/bwrap").wrap([str(tmp_path / "lean")], cwd=tmp_path)


def test_without_bwrap_auto_warns_and_bwrap_refuses_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    with caplog.at_level(logging.WARNING, logger="lean_mcp._sandbox"):
        sandbox = resolve("auto")
    assert not sandbox.active
    assert "NOT sandboxed: bubblewrap (`bwrap`) is not installed" in sandbox.describe()
    assert "NOT sandboxed" in caplog.text
    with pytest.raises(ConfigurationError, match=r"--sandbox bwrap: .*not installed.*apt-get install bubblewrap"):
        resolve("bwrap")


def test_servers_others_reach_are_warned_only_when_their_lean_runs_unsandboxed() -> None:
    local = {"repl": standin_command()}
    warning = unsandboxed_warning(Settings(**local, sandbox="none"))  # type: ignore[arg-type]
    assert warning is not None and warning.startswith("PROOFS ARE NOT SANDBOXED (disabled (--sandbox none))")
    assert unsandboxed_warning(Settings(backend="remote", remote_url="http://127.0.0.1:9", sandbox="none")) is None
    if WHY_NOT is None:
        assert unsandboxed_warning(Settings(**local, sandbox="auto")) is None  # type: ignore[arg-type]


def test_an_unknown_sandbox_mode_is_refused_naming_the_knob() -> None:
    with pytest.raises(ConfigurationError, match="--sandbox must be one of auto, bwrap, none"):
        Settings.load({"LEAN_MCP_SANDBOX": "docker"})


# -- hostile proofs through a real REPL pool -------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections (the server's own services, say)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def check_with(mode: str, project: Path, code: str, *, db: str = ":memory:", **config: object) -> ProofResult:
    """One proof through a one-REPL pool of stand-ins under `--sandbox mode`."""
    settings = Settings(repl=standin_command(), project=str(project), workers=1, sandbox=mode, db=db)

    async def main() -> ProofResult:
        async with ReplBackend.from_settings(settings) as backend:
            assert backend.health()["sandboxed"] is (mode == "bwrap")
            return await backend.check(code, ProofConfig.model_validate(config))

    return anyio.run(main)


def hostile(mode: str, project: Path, action: str, **options: str) -> str:
    """Run `-- standin: ACTION` in a proof; the stand-in's report of it."""
    result = check_with(mode, project, f"theorem t : True := trivial\n-- standin: {action}\n", **options)
    assert result.verdict == Verdict.PROVED, result
    (report,) = [m.data for m in result.messages if m.data.startswith(action.split(maxsplit=1)[0] + " ")]
    return report


MODES = [pytest.param("none", id="none"), pytest.param("bwrap", id="bwrap", marks=needs_bwrap)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_writing_into_the_project_works_only_unsandboxed(mode: str, project: Path) -> None:
    target = project / "planted.lean"
    report = hostile(mode, project, f"write {target}")
    if mode == "none":
        assert report.endswith(": ok") and target.is_file()
    else:
        assert "failed: OSError: [Errno 30] Read-only file system" in report
        assert not target.exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_a_write_into_tmp_reaches_the_hosts_tmp_only_unsandboxed(mode: str, project: Path, tmp_path: Path) -> None:
    target = tmp_path / "dropped.sh"  # pytest's tmp_path is inside the host's /tmp
    report = hostile(mode, project, f"write {target}")
    assert report.endswith(": ok")  # the sandbox's /tmp is writable, and private
    assert target.exists() is (mode == "none")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_reading_the_job_store_works_only_unsandboxed(mode: str, project: Path, tmp_path: Path) -> None:
    store = tmp_path / "data" / "jobs.sqlite3"  # where the store lives by default: outside the project
    store.parent.mkdir()
    store.write_text(SECRET)
    report = hostile(mode, project, f"read {store}", db=str(store))
    if mode == "none":
        assert report.endswith(f": ok {SECRET}")
    else:
        assert "failed: FileNotFoundError" in report and SECRET not in report


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_a_job_store_inside_the_project_is_masked(mode: str, project: Path) -> None:
    store = project / "jobs.sqlite3"
    store.write_text(SECRET)
    report = hostile(mode, project, f"read {store}", db=str(store))
    if mode == "none":
        assert report.endswith(f": ok {SECRET}")
    else:
        assert "failed: PermissionError" in report and SECRET not in report  # masked by a device it may not open


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_connecting_to_a_local_port_works_only_unsandboxed(mode: str, project: Path, listener: int) -> None:
    report = hostile(mode, project, f"connect 127.0.0.1:{listener}")
    assert report.endswith(": ok") if mode == "none" else "failed: ConnectionRefusedError" in report


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_reading_the_servers_environment_works_only_unsandboxed(
    mode: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A LEAN_* variable passes the children's general allow-list (lean.supervise), not the sandbox's.
    monkeypatch.setenv("LEAN_SECRET_TOKEN", SECRET)
    report = hostile(mode, project, "getenv LEAN_SECRET_TOKEN")
    if mode == "none":
        assert report.endswith(f": ok {SECRET}")
    else:
        assert report.endswith("failed: KeyError: 'unset'")


# -- same verdicts, positions and limits inside the sandbox ---------------------------------------


@needs_bwrap
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "code",
    [
        "theorem t : True := trivial\n",
        "theorem t : True := by\n  sorry\n",
        "theorem t : True := trivial\n  -- standin: error boom\n",
    ],
    ids=["proved", "sorry", "rejected"],
)
def test_the_sandbox_gives_the_same_answer(project: Path, code: str) -> None:
    plain, boxed = (check_with(mode, project, code) for mode in ("none", "bwrap"))
    assert boxed.verdict == plain.verdict
    assert boxed.messages == plain.messages  # same text, same positions
    # the same sorries; each run's proof_state_ids are its own
    assert [s.model_copy(update={"proof_state_id": None}) for s in boxed.sorries] == [
        s.model_copy(update={"proof_state_id": None}) for s in plain.sorries
    ]


@needs_bwrap
@pytest.mark.timeout(60)
def test_past_the_memory_cap_inside_the_sandbox_the_repl_is_killed(project: Path) -> None:
    settings = Settings(repl=standin_command(), project=str(project), workers=1, sandbox="bwrap", memory_mb=150)
    code = "theorem big : True := trivial\n-- standin: memory 400\n-- standin: hang\n"

    async def main() -> ProofResult:
        async with ReplBackend.from_settings(settings) as backend:
            return await backend.check(code, ProofConfig(timeout=30))

    result = anyio.run(main)
    assert result.verdict == Verdict.MEMORY_LIMIT, result


def commands_of(pids: list[int]) -> dict[int, bytes]:
    return {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids}


@needs_bwrap
@pytest.mark.timeout(60)
def test_at_the_timeout_every_process_inside_the_sandbox_is_killed(project: Path) -> None:
    settings = Settings(repl=standin_command(), project=str(project), workers=1, sandbox="bwrap")

    seen: dict[int, bytes] = {}  # the REPL's process tree (as the memory watchdog walks it) and commands

    async def main() -> ProofResult:
        async with ReplBackend.from_settings(settings) as backend:

            async def watch() -> None:
                while not (pids := backend.health()["pids"]):  # noqa: ASYNC110 - polling the pool's state
                    await anyio.sleep(0.01)
                await anyio.sleep(0.3)
                seen.update(commands_of(tree_pids(pids[0])))

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                result = await backend.check("theorem t : True := trivial\n-- standin: hang\n", ProofConfig(timeout=2))
            return result

    result = anyio.run(main)
    assert result.verdict == Verdict.TIMEOUT
    # bwrap, bwrap's init in the new pid namespace, and the stand-in inside it
    assert [cmd.split(b"\0")[0] for cmd in seen.values()].count(BWRAP.encode()) == 2, seen  # type: ignore[union-attr]
    assert any(b"repl_standin.py" in cmd for cmd in seen.values()), seen
    assert not still_alive(seen)


# -- what users are told ----------------------------------------------------------------------------


@needs_bwrap
@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("mode", "says"), [("bwrap", "sandbox    sandboxed with bubblewrap"), ("none", "sandbox    NOT sandboxed")]
)
def test_doctor_says_whether_proofs_are_sandboxed(tmp_path: Path, mode: str, says: str) -> None:
    env = clean_env(tmp_path, LEAN_MCP_REPL=" ".join(standin_command()), LEAN_MCP_WORKERS="1", LEAN_MCP_SANDBOX=mode)
    done = lean_mcp("doctor", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert says in done.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MODES)
def test_a_proof_sent_to_the_runner_never_reads_its_api_key(mode: str, tmp_path: Path) -> None:
    env = runner_env(tmp_path, LEAN_MCP_SANDBOX=mode, LEAN_MCP_API_KEY=SECRET)
    proof = "theorem t : True := trivial\n-- standin: getenv LEAN_MCP_API_KEY\n"
    with running_runner(tmp_path, env) as runner:
        headers = {"Authorization": f"Bearer {SECRET}"}
        body = httpx.post(f"{runner.url}/prove/check", json={"proof": proof}, headers=headers, timeout=60).json()
        health = httpx.get(f"{runner.url}/health", headers=headers).json()
        log = runner.log()
    said = " ".join(m["data"] for m in body["result"]["messages"])
    assert "getenv LEAN_MCP_API_KEY: failed" in said, body  # no LEAN_MCP_* reaches a child, sandboxed or not
    assert SECRET not in said, body
    assert ("PROOFS ARE NOT SANDBOXED" in log) is (mode == "none"), log  # the runner warns loudly
    assert '"sandboxed": true' in json.dumps(health) if mode == "bwrap" else '"sandboxed": false' in json.dumps(health)


@needs_bwrap
@pytest.mark.timeout(60)
def test_what_a_wrapper_script_runs_is_visible_only_through_sandbox_paths(project: Path, tmp_path: Path) -> None:
    wrapper = tmp_path / "bin" / "repl"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.join(standin_command())} "$@"\n')
    wrapper.chmod(0o755)
    python_and_standin = [sys.prefix, sys.base_prefix, str(STANDIN_PATH.parent)]

    def check(paths: list[str]) -> ProofResult:
        settings = Settings(repl=[str(wrapper)], project=str(project), workers=1, sandbox="bwrap", sandbox_paths=paths)

        async def main() -> ProofResult:
            async with ReplBackend.from_settings(settings) as backend:
                return await backend.check("theorem t : True := trivial\n", ProofConfig(timeout=20))

        return anyio.run(main)

    unseen = check([])  # the command names only the wrapper: the Python it runs is not there
    assert unseen.verdict == Verdict.ERROR and "status 127" in (unseen.error_message or ""), unseen
    assert check(python_and_standin).verdict == Verdict.PROVED


SERVER = """
import sys, anyio
from lean_mcp._backends.repl import ReplBackend
from lean_mcp._models import ProofConfig
from lean_mcp._processes import tree_pids
from lean_mcp._settings import Settings
from tests.standin import standin_command

async def main():
    settings = Settings(repl=standin_command(), project=sys.argv[1], workers=1, sandbox=sys.argv[2], db=":memory:")
    async with ReplBackend.from_settings(settings) as backend, anyio.create_task_group() as tg:
        tg.start_soon(backend.check, "theorem t : True := trivial\\n-- standin: hang\\n", ProofConfig(timeout=300))
        while not backend.health()["pids"]:
            await anyio.sleep(0.01)
        await anyio.sleep(0.3)
        print(*tree_pids(backend.health()["pids"][0]), flush=True)
        await anyio.sleep(300)

anyio.run(main)
"""


@needs_bwrap
@pytest.mark.timeout(60)
def test_when_the_server_is_killed_outright_the_sandboxed_repl_dies_with_it(project: Path) -> None:
    # (unsandboxed, whether an orphaned REPL survives depends on the machine's init, so no contrast here)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(project), "bwrap"], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert server.stdout is not None
    pids = [int(pid) for pid in server.stdout.readline().split()]
    server.kill()  # SIGKILL: no atexit, no signal handler runs
    server.wait()
    survivors = still_alive(pids, seconds=5)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert len(pids) >= 3, pids  # bwrap, its init, the stand-in
    assert not survivors  # bwrap's --die-with-parent
