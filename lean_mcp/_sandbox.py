"""Running untrusted Lean in a bubblewrap (`bwrap`) sandbox: `--sandbox auto|bwrap|none`.

A proof can run arbitrary code (`#eval` with IO, `run_cmd`, `initialize`). Under `bwrap` every Lean
and REPL process gets new namespaces (user, pid, network, ipc, uts, cgroup) and sees:

- read-only: the system (`SYSTEM_PATHS`, a few files of `/etc`), the Lean project (its working
  directory), and every path named in its command, an executable with its toolchain root
  (`.../bin/x` → `...`, following symlinks) and the directories of the shared libraries it loads,
  the directories LEAN_PATH, LEAN_SRC_PATH, LEAN_SYSROOT and ELAN_HOME name, and `--sandbox-paths`;
- writable: a private, empty `/tmp` (also its `HOME`), gone when it exits;
- nothing else: no job store (masked even inside a readable path), no home, no host `/tmp`, no
  network (its own loopback only); only the `SANDBOX_ENV_ALLOWED` variables; it dies with the server.

`bwrap_argv` is the pure wrapping; `Sandbox.wrap` adds what it must look up on disk (cached).
`resolve` turns the setting into a Sandbox once: `auto` probes `bwrap` (once per process).
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from ._settings import Settings

logger = logging.getLogger(__name__)

MODES = ("auto", "bwrap", "none")

#: The system, visible read-only (missing ones are skipped).
SYSTEM_PATHS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/nix/store",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
)

#: The only variables a sandboxed process inherits (if set); HOME and TMPDIR are always `/tmp`. A
#: narrower list than `lean.supervise.ENV_ALLOWED`, which every Lean child gets first.
SANDBOX_ENV_ALLOWED = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "LEAN_PATH",
    "LEAN_SRC_PATH",
    "LEAN_SYSROOT",
    "LEAN_NUM_THREADS",
    "LEAN_ABORT_ON_PANIC",
    "ELAN_HOME",
    "ELAN_TOOLCHAIN",
    "LAKE",
    "LAKE_HOME",
)

#: How to install bubblewrap, for messages.
INSTALL_HINT = (
    "Install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`). "
    "In a container, bwrap also needs user namespaces (e.g. Docker's default seccomp profile blocks them: "
    "run with `--security-opt seccomp=unconfined` or use a host sandbox)."
)

_PRIVATE_TMP = "/tmp"
_TOOLCHAIN_VARIABLES = ("LEAN_PATH", "LEAN_SRC_PATH", "LEAN_SYSROOT", "ELAN_HOME")
#: Size of the private /tmp, in MB (where bwrap can cap it).
PRIVATE_TMP_MB = 256
_MAX_SIGNAL = 64
_LIBRARY = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def bwrap_argv(
    bwrap: str,
    argv: Sequence[str],
    *,
    cwd: str,
    readable: Iterable[str],
    env: Mapping[str, str],
    hidden: Iterable[str] = (),
    hardened: bool = True,
) -> list[str]:
    """`argv` run by `bwrap` in new namespaces, seeing `readable` read-only, `hidden` masked.

    Always without capabilities (bwrap run as root keeps them otherwise). `hardened` adds what
    bubblewrap 0.8 offers: a user namespace in which no further one may be made, and a size cap
    on the private /tmp (memory the watchdog cannot see).

    Pure: nothing is looked up on disk (paths that turn out missing are skipped by bwrap's
    `-try` binds). A `hidden` file inside a readable path is covered by `/dev/null`, which the
    sandbox may not open (devices are off on its mounts); it must exist, or bwrap refuses to
    start. Deliberately no `--new-session`: the process stays in the caller's process group, so
    killing the group kills everything inside the sandbox too (and the caller's own new session
    already leaves it without a controlling terminal).
    """
    visible = _outermost_first([*SYSTEM_PATHS, *readable, cwd])
    args = [bwrap, "--unshare-all", "--cap-drop", "ALL", "--die-with-parent", "--dev", "/dev", "--proc", "/proc"]
    if hardened:
        args += ["--unshare-user", "--disable-userns", "--size", str(PRIVATE_TMP_MB * 1024 * 1024)]
    args += ["--tmpfs", _PRIVATE_TMP]
    for path in visible:
        args += ["--ro-bind-try", path, path]
    for path in hidden:
        if _under_any(path, visible):
            args += ["--ro-bind", "/dev/null", path]
    args += ["--chdir", cwd, "--clearenv"]
    for name, value in sandbox_env(env, readable).items():
        args += ["--setenv", name, value]
    return [*args, "--", *argv]


def sandbox_env(env: Mapping[str, str], readable: Iterable[str]) -> dict[str, str]:
    """The allowed variables of `env`; PATH keeps only the directories visible in the sandbox.

    HOME becomes the private /tmp, so elan's default home (`~/.elan`), when visible, is passed
    on as ELAN_HOME.
    """
    visible = [*SYSTEM_PATHS, *readable]
    kept = {name: env[name] for name in SANDBOX_ENV_ALLOWED if name in env}
    if "PATH" in kept:
        kept["PATH"] = os.pathsep.join(d for d in kept["PATH"].split(os.pathsep) if _under_any(d, visible))
    elan = os.path.join(env.get("HOME", "~"), ".elan")
    if "ELAN_HOME" not in kept and os.path.isabs(elan) and _under_any(elan, visible):
        kept["ELAN_HOME"] = elan
    kept["HOME"] = kept["TMPDIR"] = _PRIVATE_TMP
    return kept


def toolchain_env_paths(env: Mapping[str, str]) -> list[str]:
    """The directories Lean's own variables name (LEAN_PATH, LEAN_SRC_PATH, LEAN_SYSROOT, ELAN_HOME)."""
    found: list[str] = []
    for name in _TOOLCHAIN_VARIABLES:
        found += [p for p in env.get(name, "").split(os.pathsep) if os.path.isabs(p)]
    return found


def _under_any(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _outermost_first(paths: Iterable[str]) -> list[str]:
    """Each path once, parents before their children (a later bind must not hide an earlier one).

    `/` and the private /tmp itself are never bound from the host (either would undo the sandbox);
    a path inside /tmp is (it is bound over the private /tmp).
    """
    unique = dict.fromkeys(os.path.normpath(p) for p in paths if p)
    kept = [p for p in unique if not _under_any(_PRIVATE_TMP, [p])]
    return sorted(kept, key=lambda p: (p.count("/"), p))


# ---------------------------------------------------------------------------------------------
# What a command needs to see: looked up on disk, once per command.


@functools.lru_cache(maxsize=64)
def command_paths(argv: tuple[str, ...], path_env: str | None, cwd: str = "/") -> tuple[str, ...]:
    """The host paths `argv` (run in `cwd`) names, for binding read-only: files and directories as
    they are, each executable (a bare word found on `path_env` too) with its toolchain root (before
    and after following symlinks) and the directories of the shared libraries it loads (`ldd`)."""
    found: list[str] = []
    for arg in argv:
        path = _named_path(arg, path_env, cwd)
        if path is None:
            continue
        if path.is_file() and os.access(path, os.X_OK):
            found += [_toolchain_root(Path(p)) for p in _bindable(path)] + _library_dirs(path)
        else:
            found += _bindable(path)
    return tuple(dict.fromkeys(found))


def _bindable(path: Path) -> list[str]:
    """Where `path` can be bound: its own name, unless a directory on the way is a symlink (bwrap
    cannot make a mount point under a symlink; the link, seen through an enclosing bind, then leads
    to the real place), and its real place."""
    named, real = str(path.absolute()), str(path.resolve())
    through_link = os.path.realpath(path.parent) != str(path.parent.absolute())
    return [real] if through_link else list(dict.fromkeys([named, real]))


def _named_path(arg: str, path_env: str | None, cwd: str) -> Path | None:
    if arg.startswith("-"):
        return None
    if "/" not in arg:
        located = shutil.which(arg, path=path_env) if path_env is not None else None
        return Path(located).absolute() if located else None
    path = Path(os.path.normpath(Path(cwd, Path(arg).expanduser())))
    return path if path.exists() else None


def _toolchain_root(executable: Path) -> str:
    """`.../bin/lean` → `...` (the toolchain: its lib/ and share/ too); else the executable's directory."""
    parent = executable.parent
    return str(parent.parent if parent.name == "bin" else parent)


def _library_dirs(executable: Path) -> list[str]:
    """The directories of the shared libraries `executable` loads, outside the system paths."""
    try:
        done = subprocess.run(
            ["ldd", str(executable)], check=False, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return []
    dirs = {str(Path(m.group(1)).resolve().parent) for m in _LIBRARY.finditer(done.stdout)}
    return sorted(d for d in dirs if not _under_any(d, SYSTEM_PATHS))


# ---------------------------------------------------------------------------------------------
# The resolved choice.


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """How Lean processes are started: under `bwrap` (its path), or as they are (`bwrap` None).

    `readable` paths are visible (read-only) to every command besides what it names itself;
    `hidden` paths (the job store) are masked even when they lie inside a readable path;
    `reason` says why proofs are not sandboxed when they are not.
    """

    bwrap: str | None = None
    hidden: tuple[str, ...] = ()
    readable: tuple[str, ...] = ()
    hardened: bool = True
    reason: str = "disabled (--sandbox none)"

    @property
    def active(self) -> bool:
        return self.bwrap is not None

    @property
    def name(self) -> str:
        """`bwrap` or `none`; part of a backend's identity (code run by a proof may see a different world)."""
        return "bwrap" if self.active else "none"

    def returncode(self, code: int | None) -> int | None:
        """The wrapped command's exit status as if it ran unwrapped: bwrap exits with 128+N when
        its child dies of signal N, which reads here as -N (killed by signal N)."""
        if self.active and code is not None and 128 < code <= 128 + _MAX_SIGNAL:
            return -(code - 128)
        return code

    def describe(self) -> str:
        """One line for logs and `doctor`."""
        if self.active:
            older = "" if self.hardened else " (an older bubblewrap: nested user namespaces allowed, /tmp not capped)"
            return f"sandboxed with bubblewrap ({self.bwrap}): no network, read-only files, private /tmp{older}"
        return f"NOT sandboxed: {self.reason}"

    def wrap(self, argv: Sequence[str], *, cwd: str | Path | None, env: Mapping[str, str] | None = None) -> list[str]:
        """`argv` as it must be spawned: inside bwrap when active, else unchanged.

        Raises FileNotFoundError, as spawning it would, when `argv[0]` is not an executable.
        """
        if self.bwrap is None:
            return list(argv)
        environ = os.environ if env is None else env
        workdir = str(Path(cwd or ".").absolute())
        program = os.path.join(workdir, argv[0]) if argv and "/" in argv[0] else (argv[0] if argv else "")
        if shutil.which(program, path=environ.get("PATH")) is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        paths = command_paths(tuple(argv), environ.get("PATH"), workdir)
        return bwrap_argv(
            self.bwrap,
            argv,
            cwd=workdir,
            readable=[*paths, *toolchain_env_paths(environ), *self.readable],
            env=environ,
            hidden=[p for p in self.hidden if os.path.lexists(p)],
            hardened=self.hardened,
        )


NO_SANDBOX = Sandbox()


@functools.cache
def probe(bwrap: str, *, hardened: bool = False) -> str | None:
    """None when `bwrap` can start a sandboxed process here (tried once per process); else why not."""
    true = shutil.which("true") or "/bin/true"
    argv = bwrap_argv(bwrap, [true], cwd="/", readable=[], env={}, hardened=hardened)
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`{bwrap}` did not run: {exc}"
    if done.returncode != 0:
        return f"`{bwrap}` cannot create a sandbox here: {done.stderr.strip() or f'exit status {done.returncode}'}"
    return None


def why_unavailable(bwrap: str | None) -> str | None:
    """Why `bwrap` (a path, or None when not found) cannot sandbox here; None when it can."""
    return probe(bwrap) if bwrap else "bubblewrap (`bwrap`) is not installed"


def store_files(db: str) -> tuple[str, ...]:
    """The job store's files (the database and its SQLite companions); none for `:memory:`."""
    if not db or db == ":memory:":
        return ()
    path = str(Path(db).expanduser().absolute())
    return tuple(path + suffix for suffix in ("", "-wal", "-shm", "-journal"))


def resolve(mode: str, *, hidden: Sequence[str] = (), readable: Sequence[str] = ()) -> Sandbox:
    """The Sandbox for `--sandbox mode`: `bwrap` must work (ConfigurationError if not), `auto`
    uses it where it works and logs a warning where not, `none` never sandboxes."""
    paths = tuple(str(Path(p).expanduser().absolute()) for p in readable)
    return _resolve(mode, shutil.which("bwrap") if mode != "none" else None, tuple(hidden), paths)


@functools.cache
def _resolve(mode: str, bwrap: str | None, hidden: tuple[str, ...], readable: tuple[str, ...]) -> Sandbox:
    """`resolve`, once per process for each choice (so the log says it once)."""
    if mode == "none":
        return NO_SANDBOX
    problem = why_unavailable(bwrap)
    if problem is None and bwrap is not None:
        hardened = probe(bwrap, hardened=True) is None
        sandbox = Sandbox(bwrap=bwrap, hidden=hidden, readable=readable, hardened=hardened, reason="")
        logger.info("Proofs run %s.", sandbox.describe())
        return sandbox
    if mode == "bwrap":
        raise ConfigurationError(f"--sandbox bwrap: {problem}.", hint=INSTALL_HINT)
    sandbox = Sandbox(reason=f"{problem} (--sandbox auto). {INSTALL_HINT}")
    logger.warning("Proofs run %s", sandbox.describe())
    return sandbox


def for_settings(settings: Settings) -> Sandbox:
    """The Sandbox `--sandbox` asks for, hiding the job store `--db` names, showing `--sandbox-paths`."""
    return resolve(settings.sandbox, hidden=store_files(settings.db), readable=settings.sandbox_paths)


def unsandboxed_warning(settings: Settings) -> str | None:
    """The loud warning for a server others can reach whose Lean processes run unsandboxed (else None)."""
    if settings.backend in ("remote", "kimina"):
        return None  # no Lean runs here
    try:
        sandbox = for_settings(settings)
    except ConfigurationError:
        return None  # --sandbox bwrap that cannot work: the backend refuses to start, saying why
    if sandbox.active:
        return None
    return (
        f"PROOFS ARE NOT SANDBOXED ({sandbox.reason.split('. ')[0]}): any client that can submit a proof can run "
        "code as this server (`#eval` with IO): read its files and environment, write where it can, use its "
        "network. Install bubblewrap, and set --sandbox bwrap to refuse to start without it."
    )
