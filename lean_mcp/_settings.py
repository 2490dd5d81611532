"""Every configuration knob, once: its CLI flag, its `LEAN_MCP_*` variable, its default.

Precedence: a flag given on the command line, then the environment variable, then the default.
`knobs_markdown()` renders docs/configuration.md's table from the same list.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._errors import ConfigurationError
from ._sandbox import MODES as SANDBOX_MODES

BACKENDS = ("auto", "repl", "lean", "remote", "kimina", "ray")
TRANSPORTS = ("stdio", "streamable-http")

#: The defaults other modules share; each is written here only.
DEFAULT_TIMEOUT = 300.0
DEFAULT_IMPORT_TIMEOUT = 300.0
DEFAULT_MEMORY_MB = 8192
DEFAULT_MAX_PROOF_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024
#: Axioms a `proved` theorem may depend on unless a request or --permitted-axioms says more.
DEFAULT_PERMITTED_AXIOMS = ("propext", "Classical.choice", "Quot.sound")


@dataclasses.dataclass(frozen=True)
class LeanLimits:
    """What one Lean process (a REPL or `lean`) may use; built once from Settings and passed down.

    `memory_mb`: resident memory of its process tree; `max_output_bytes`: what it may write to
    stdout for one request (one proof, or one header import); `import_timeout`: seconds a REPL
    may spend importing a header.
    """

    memory_mb: int = DEFAULT_MEMORY_MB
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    import_timeout: float = DEFAULT_IMPORT_TIMEOUT


#: The limits when none are given.
DEFAULT_LIMITS = LeanLimits()


def default_workers() -> int:
    """CPU count minus one, at least one."""
    return max(1, (os.cpu_count() or 2) - 1)


def default_db_path() -> str:
    """`$XDG_DATA_HOME/lean-mcp/jobs.sqlite3` (`~/.local/share/...` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "lean-mcp" / "jobs.sqlite3")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(";") if item.strip()]


def _parse_command(text: str) -> list[str]:
    return shlex.split(text)


@dataclasses.dataclass(frozen=True)
class Knob:
    """One setting: `name` is the Settings attribute, `env` its variable, `flag` its CLI option."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def env(self) -> str:
        return "LEAN_MCP_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def default_text(self) -> str:
        if callable(self.default):
            return (self.default.__doc__ or "").strip().rstrip(".")
        if self.default in (None, [], ""):
            return "(unset)"
        if isinstance(self.default, list):
            return ";".join(self.default)
        return str(self.default)


KNOBS: tuple[Knob, ...] = (
    Knob(
        "backend",
        str,
        "auto",
        "Where proofs are checked: auto, repl (local REPL pool), lean (`lean` per proof), "
        "remote (a lean-runner URL), kimina (a Kimina URL), ray (REPLs in Ray actors across a cluster).",
        choices=BACKENDS,
    ),
    Knob(
        "repl",
        _parse_command,
        None,
        "Command that starts one Lean REPL (shell-split), e.g. `lake env /path/to/repl/.lake/build/bin/repl`.",
    ),
    Knob("project", str, None, "The Lean project directory: REPLs and `lean` run here (default: current directory)."),
    Knob("lean", str, None, "The `lean` executable for the lean backend (default: found on PATH, or via `lake`)."),
    Knob("workers", int, default_workers, "How many Lean processes run at once."),
    Knob("timeout", float, DEFAULT_TIMEOUT, "Default per-proof timeout in seconds (a request's own `timeout` wins)."),
    Knob(
        "import_timeout",
        float,
        DEFAULT_IMPORT_TIMEOUT,
        "Seconds a REPL may spend importing a proof's header; a request waits for it at most its own timeout.",
    ),
    Knob(
        "memory_mb",
        int,
        DEFAULT_MEMORY_MB,
        "Memory cap per Lean process in MB; a proof past it gets verdict memory_limit.",
    ),
    Knob("max_uses", int, 500, "Recycle a REPL after this many proofs."),
    Knob("recycle_mb", int, 0, "Recycle an idle REPL whose resident memory passes this many MB (0: 80% of memory-mb)."),
    Knob(
        "prestart",
        _parse_bool,
        False,
        "Start a REPL's successor while it does its last proofs before --max-uses, so recycling does not stall "
        "its slot; meanwhile one more REPL in memory per recycling slot (with Mathlib, several GB).",
    ),
    Knob("prewarm", _parse_list, [], "Headers to import at start, `;`-separated, e.g. `import Mathlib`."),
    Knob("queue_timeout", float, 600.0, "Seconds a proof may wait for a free REPL before a clear `busy` error."),
    Knob("max_proof_bytes", int, DEFAULT_MAX_PROOF_BYTES, "Largest proof accepted, in UTF-8 bytes."),
    Knob(
        "max_output_bytes",
        int,
        DEFAULT_MAX_OUTPUT_BYTES,
        "Most bytes Lean may print for one proof; past it the proof gets verdict error and the process is replaced.",
    ),
    Knob(
        "max_request_bytes",
        int,
        0,
        "Largest request accepted, in bytes: an HTTP body on every route, or one MCP stdio line "
        "(0: three times max-proof-bytes plus 64 KiB).",
    ),
    Knob(
        "proof_state_ttl",
        float,
        3600.0,
        "Seconds a proof_state_id (repl backend, tactic mode) stays usable after its last use.",
    ),
    Knob("max_proof_states", int, 10_000, "Most live proof_state_ids; past it the least recently used expire."),
    Knob("max_queue", int, 100_000, "Most jobs that may wait at once; past it submits are refused (HTTP 429)."),
    Knob("db", str, default_db_path, "SQLite job store path, or `:memory:`."),
    Knob("cache", _parse_bool, True, "Answer identical proofs from the store (never timeouts or errors)."),
    Knob("retention_days", float, 30.0, "Prune finished jobs older than this many days."),
    Knob("retention_jobs", int, 100_000, "Keep at most this many finished jobs."),
    Knob("remote_url", str, None, "Runner URL for the remote and kimina backends, e.g. `http://127.0.0.1:8000`."),
    Knob("remote_api_key", str, None, "Bearer token sent to the remote runner."),
    Knob(
        "ray_address",
        str,
        None,
        "Ray cluster for --backend ray: `HOST:PORT` of its head, or `auto` (default: a local Ray, stopped on exit).",
    ),
    Knob("ray_cpus", float, 0.5, "CPUs each REPL actor asks Ray for (fractional: small machines cannot deadlock)."),
    Knob("api_key", str, None, "Bearer token this server requires on HTTP (MCP streamable-http and the runner)."),
    Knob("transport", str, "stdio", "MCP transport: stdio or streamable-http.", choices=TRANSPORTS),
    Knob("host", str, "127.0.0.1", "Address the HTTP servers listen on."),
    Knob("header_timeout", float, 10.0, "Seconds an HTTP client has to send a request's headers, else 408 and close."),
    Knob("body_timeout", float, 60.0, "Seconds an HTTP client has to send a request's whole body, else 408 and close."),
    Knob(
        "max_connections",
        int,
        1000,
        "Most open HTTP connections (at most half the open-file limit); past it the longest-idle one is closed.",
    ),
    Knob("port", int, 8000, "Port the HTTP servers listen on."),
    Knob(
        "allowed_roots",
        _parse_list,
        [],
        "Directories whose `.lean` files tools may read by path, `;`-separated (default: the project).",
    ),
    Knob(
        "sandbox",
        str,
        "auto",
        "Isolate Lean processes: bwrap (bubblewrap: no network, read-only files, no secrets; refuse to start "
        "without it), auto (bwrap where it works, else unsandboxed with a warning), none.",
        choices=SANDBOX_MODES,
    ),
    Knob(
        "sandbox_paths",
        _parse_list,
        [],
        "More host paths sandboxed Lean may read, `;`-separated (e.g. Lake packages outside the project).",
    ),
    Knob(
        "permitted_axioms",
        _parse_list,
        list(DEFAULT_PERMITTED_AXIOMS),
        "Axioms a `proved` theorem may depend on, `;`-separated (a request's `permitted_axioms` adds to them).",
    ),
    Knob(
        "allow_prelude",
        _parse_bool,
        False,
        "Accept `prelude` proofs (they define Lean's basic types themselves; only for a Lean without Init).",
    ),
    Knob("log_level", str, "INFO", "Log level (logs go to stderr).", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
)


@dataclasses.dataclass
class Settings:
    """Resolved configuration. Build with `Settings.load()` or `Settings.from_namespace()`."""

    backend: str = "auto"
    repl: list[str] | None = None
    project: str | None = None
    lean: str | None = None
    workers: int = dataclasses.field(default_factory=default_workers)
    timeout: float = DEFAULT_TIMEOUT
    import_timeout: float = DEFAULT_IMPORT_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    max_uses: int = 500
    recycle_mb: int = 0
    prestart: bool = False
    prewarm: list[str] = dataclasses.field(default_factory=list)
    queue_timeout: float = 600.0
    max_proof_bytes: int = DEFAULT_MAX_PROOF_BYTES
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_request_bytes: int = 0
    proof_state_ttl: float = 3600.0
    max_proof_states: int = 10_000
    max_queue: int = 100_000
    db: str = dataclasses.field(default_factory=default_db_path)
    cache: bool = True
    retention_days: float = 30.0
    retention_jobs: int = 100_000
    remote_url: str | None = None
    remote_api_key: str | None = None
    ray_address: str | None = None
    ray_cpus: float = 0.5
    api_key: str | None = None
    transport: str = "stdio"
    host: str = "127.0.0.1"
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 1000
    port: int = 8000
    allowed_roots: list[str] = dataclasses.field(default_factory=list)
    sandbox: str = "auto"
    sandbox_paths: list[str] = dataclasses.field(default_factory=list)
    permitted_axioms: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_PERMITTED_AXIOMS))
    allow_prelude: bool = False
    log_level: str = "INFO"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then `LEAN_MCP_*` variables, then `overrides` (values already parsed)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for knob in KNOBS:
            if knob.env in environ:
                values[knob.name] = _parse_knob(knob, environ[knob.env], source=knob.env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from parsed CLI arguments (flags given win over the environment)."""
        overrides = {k.name: getattr(namespace, k.name, None) for k in KNOBS}
        return cls.load(environ, **overrides)

    @property
    def project_dir(self) -> Path:
        """The Lean project directory (the current directory when unset)."""
        return Path(self.project or ".").resolve()

    @property
    def recycle_threshold_mb(self) -> int:
        """Resident memory past which an idle REPL is recycled."""
        return self.recycle_mb or int(self.memory_mb * 0.8)

    @property
    def lean_limits(self) -> LeanLimits:
        """The limits every Lean process of this server runs under."""
        return LeanLimits(
            memory_mb=self.memory_mb, max_output_bytes=self.max_output_bytes, import_timeout=self.import_timeout
        )

    @property
    def request_limit_bytes(self) -> int:
        """The largest request body (HTTP) or message line (stdio) accepted, in bytes."""
        return self.max_request_bytes or self.max_proof_bytes * 3 + 64 * 1024

    def validate(self) -> None:
        """Raise ConfigurationError naming the first knob with an impossible value."""
        for knob in KNOBS:
            value = getattr(self, knob.name)
            if knob.choices and value not in knob.choices:
                raise ConfigurationError(f"{knob.flag} must be one of {', '.join(knob.choices)}, got {value!r}.")
        positive = (
            *("workers", "timeout", "import_timeout", "memory_mb", "max_uses", "queue_timeout"),
            *("max_proof_bytes", "max_output_bytes", "max_queue", "header_timeout", "body_timeout", "max_connections"),
            *("proof_state_ttl", "max_proof_states"),
        )
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                knob = _KNOB_BY_NAME[name]
                raise ConfigurationError(f"{knob.flag} ({knob.env}) must be a finite positive number, got {value!r}.")
        if not (math.isfinite(self.ray_cpus) and self.ray_cpus > 0):
            raise ConfigurationError(f"--ray-cpus (LEAN_MCP_RAY_CPUS) must be positive, got {self.ray_cpus!r}.")
        if self.max_request_bytes < 0:
            knob = _KNOB_BY_NAME["max_request_bytes"]
            raise ConfigurationError(f"{knob.flag} ({knob.env}) must be 0 (automatic) or a positive number of bytes.")
        if self.backend in ("remote", "kimina") and not self.remote_url:
            raise ConfigurationError(
                f"--backend {self.backend} needs --remote-url (LEAN_MCP_REMOTE_URL), e.g. http://127.0.0.1:8000."
            )


_KNOB_BY_NAME = {k.name: k for k in KNOBS}


def _parse_knob(knob: Knob, text: str, *, source: str) -> Any:
    try:
        return knob.parse(text)
    except ValueError as exc:
        raise ConfigurationError(f"{source}={text!r} is not valid: {exc}.") from None


def add_knob_arguments(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """Add the flags of `names` (default: every knob) to `parser`; unset flags stay None."""
    group = parser.add_argument_group("configuration (each flag also reads its LEAN_MCP_* variable)")
    for knob in KNOBS:
        if names is not None and knob.name not in names:
            continue
        group.add_argument(
            knob.flag,
            dest=knob.name,
            default=None,
            type=_argparse_type(knob),
            choices=knob.choices,
            metavar=knob.name.upper(),
            # argparse %-formats help texts: a literal % (as in "80% of memory-mb") must be doubled.
            help=f"{knob.help} [{knob.env}; default: {knob.default_text()}]".replace("%", "%%"),
        )


def _argparse_type(knob: Knob) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return knob.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = knob.name
    return convert


def knobs_markdown() -> str:
    """The configuration table, as Markdown, for docs/configuration.md."""
    rows = ["| flag | environment variable | default | meaning |", "| --- | --- | --- | --- |"]
    for knob in KNOBS:
        rows.append(f"| `{knob.flag}` | `{knob.env}` | {knob.default_text()} | {knob.help} |")
    return "\n".join(rows)
