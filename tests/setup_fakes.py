"""Fake `elan`, `lake`, `lean`, `git` and elan installer for the `lean-mcp setup` tests.

Each fake is a small Python script that appends `[tool, argv, cwd]` as one JSON line to `$LEAN_FAKE_LOG`
and creates what the real tool would: elan's toolchain directories, a cloned REPL checkout whose
`lean-toolchain` follows the tag checked out, a built `repl` (the REPL stand-in, or with
`LEAN_FAKE_REAL_LEAN` nothing is needed), Mathlib's .olean. `LEAN_FAKE_FAIL="lake build"` makes that command
fail with `simulated failure`; `LEAN_FAKE_SLEEP="lake build"` makes it hang for a minute first.
`lake env CMD...` runs CMD; `lean` is the stand-in's version printer, or `LEAN_FAKE_REAL_LEAN` itself.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.standin import STANDIN_PATH

REPO = Path(__file__).resolve().parents[1]

_COMMON = """#!{python}
import json, os, shutil, sys, time
from pathlib import Path
TOOL = {tool!r}
args = sys.argv[1:]
with open(os.environ["LEAN_FAKE_LOG"], "a") as log:
    log.write(json.dumps([TOOL, args, os.getcwd()]) + "\\n")
said = " ".join([TOOL, *args])
if any(said.startswith(f) for f in os.environ.get("LEAN_FAKE_SLEEP", "").split(";") if f):
    time.sleep(60)
if any(said.startswith(f) for f in os.environ.get("LEAN_FAKE_FAIL", "").split(";") if f):
    print("error: simulated failure of " + said, file=sys.stderr)
    sys.exit(1)
elan_home = Path(os.environ.get("ELAN_HOME") or Path.home() / ".elan")
"""

_ELAN = """
if args[:2] == ["toolchain", "list"]:
    names = sorted((d / "name").read_text() for d in (elan_home / "toolchains").glob("*") if (d / "name").is_file())
    print("\\n".join(names) if names else "no installed toolchains")
elif args[:2] == ["toolchain", "install"]:
    target = elan_home / "toolchains" / args[2].replace("/", "--").replace(":", "---")
    for i in range(1, 4):
        print(f"downloading {{i}}/3", file=sys.stderr)
    target.mkdir(parents=True, exist_ok=True)
    (target / "name").write_text(args[2])
else:
    sys.exit("fake elan: unexpected " + said)
"""

_LAKE = """
here = Path.cwd()
if args == ["build"]:
    assert (here / "lean-toolchain").is_file(), "lake build outside a package"
    for i in range(1, 4):
        print(f"[{{i}}/3] Building REPL.Part{{i}}")
    binary = here / ".lake" / "build" / "bin" / "repl"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/bin/sh\\nexec {python} {standin} \\"$@\\"\\n")
    binary.chmod(0o755)
elif args == ["update"]:
    assert "mathlib" in (here / "lakefile.lean").read_text(), "no mathlib in the lakefile"
    (here / ".lake/packages/mathlib").mkdir(parents=True, exist_ok=True)
    (here / "lake-manifest.json").write_text('{{"packages": [{{"name": "mathlib"}}]}}')
elif args == ["exe", "cache", "get"]:
    assert (here / "lake-manifest.json").is_file(), "no lake-manifest.json: dependencies not resolved"
    olean = here / ".lake/packages/mathlib/.lake/build/lib/lean/Mathlib.olean"
    olean.parent.mkdir(parents=True, exist_ok=True)
    print("Decompressing 2/2 file(s)")
    olean.write_text("olean")
elif args[:1] == ["env"]:
    os.execvp(args[1], args[1:])
else:
    sys.exit("fake lake: unexpected " + said)
"""

_LEAN = """
real = os.environ.get("LEAN_FAKE_REAL_LEAN")
if real:
    os.execv(real, [real, *args])
if args == ["--version"]:
    print("Lean (version " + os.environ.get("LEAN_FAKE_LEAN_VERSION", "4.32.0") + ", x86_64-unknown-linux-gnu, fake)")
else:
    sys.exit("fake lean: unexpected " + said)
"""

_GIT = """
if args[:1] == ["clone"]:
    target = Path(args[-1])
    (target / ".git").mkdir(parents=True)
    print("Receiving objects: 50% (1/2)", file=sys.stderr)
    print("Receiving objects: 100% (2/2), done.", file=sys.stderr)
elif args[:1] == ["checkout"]:
    rev = args[-1]
    pinned = os.environ.get("LEAN_FAKE_REPL_TOOLCHAIN") or "leanprover/lean4:" + rev
    Path("lean-toolchain").write_text(pinned + "\\n")
else:
    sys.exit("fake git: unexpected " + said)
"""

_INSTALLER = """#!/bin/sh
"{python}" -c 'import json, os, sys
open(os.environ["LEAN_FAKE_LOG"], "a").write(json.dumps(["elan-init.sh", sys.argv[1:], os.getcwd()]) + "\\n")' "$@"
case "$LEAN_FAKE_FAIL" in *elan-init*) echo "error: simulated failure of elan-init" >&2; exit 1;; esac
home="${{ELAN_HOME:-$HOME/.elan}}"
mkdir -p "$home/bin"
for tool in elan lake lean; do cp "{tools}/$tool" "$home/bin/$tool"; done
echo "elan installed to $home"
"""


def _script(tool: str, body: str) -> str:
    return _COMMON.format(python=sys.executable, tool=tool) + body.format(python=sys.executable, standin=STANDIN_PATH)


class Fakes:
    """A sandbox: HOME, XDG dirs and ELAN_HOME under `root`, fake tools, a log of what ran."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.tools = root / "tools"  # what the installer copies into elan's home
        self.bin = root / "bin"  # on PATH: git
        self.log = root / "tools.log"
        for directory in (self.home, self.tools, self.bin):
            directory.mkdir(parents=True, exist_ok=True)
        for tool, body, where in (
            ("elan", _ELAN, self.tools),
            ("lake", _LAKE, self.tools),
            ("lean", _LEAN, self.tools),
            ("git", _GIT, self.bin),
        ):
            (where / tool).write_text(_script(tool, body))
            (where / tool).chmod(0o755)
        self.installer = root / "elan-init.sh"
        self.installer.write_text(_INSTALLER.format(tools=self.tools, python=sys.executable))
        self.log.touch()

    @property
    def elan_home(self) -> Path:
        return self.home / ".elan"

    @property
    def cache(self) -> Path:
        return self.home / ".cache" / "lean-mcp"

    @property
    def project(self) -> Path:
        return self.home / ".local" / "share" / "lean-mcp" / "project"

    @property
    def record(self) -> Path:
        return self.home / ".config" / "lean-mcp" / "setup.json"

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: no LEAN_MCP_*, HOME in the sandbox, PATH = fake git + /usr/bin:/bin."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEAN_MCP_", "XDG_")) and k != "ELAN_HOME"}
        env.update(
            HOME=str(self.home),
            PATH=os.pathsep.join([str(self.bin), "/usr/bin", "/bin"]),
            PYTHONPATH=str(REPO),
            # LEAN_*: the fakes run as Lean children too, which get only LEAN_*, LAKE_*, ELAN_*, ... variables.
            LEAN_FAKE_LOG=str(self.log),
            LEAN_MCP_DB=str(self.root / "jobs.sqlite3"),
            LEAN_MCP_WORKERS="1",
            # The fakes log to LEAN_FAKE_LOG on the host and run this Python: unsandboxed by design
            # (the sandbox has its own tests, with real Lean in tests/real_lean/test_sandbox.py).
            LEAN_MCP_SANDBOX="none",
        )
        env.update(extra)
        return env

    def ran(self) -> list[tuple[str, list[str], str]]:
        """Every command the fakes saw, in order: (tool, argv, cwd)."""
        lines = self.log.read_text().splitlines()
        return [tuple(json.loads(line)) for line in lines if line.strip()]  # type: ignore[misc]

    def changes(self) -> list[str]:
        """The commands that change something (`elan toolchain list` and `lean --version` only look)."""
        looks = (["toolchain", "list"], ["--version"])
        ran = [(tool, args) for tool, args, _ in self.ran() if args[:2] not in looks and args[:1] != ["env"]]
        return [" ".join([tool, *args[:3]]) for tool, args in ran]


@contextmanager
def serving(path: Path, *, status: int = 200) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers every GET with `path`'s bytes (or `status`); yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = path.read_bytes() if status == 200 else b"not here"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/elan-init.sh"
    finally:
        server.shutdown()
        server.server_close()
