"""The `ray` backend: the REPL pool's REPLs run in Ray actors placed across a Ray cluster.

The pool itself (`lean_mcp._repl.pool.ReplPool`, header affinity, limits, crash retry, recycling)
runs with the server, unchanged: only where a REPL lives changes. `RayReplPool.start_repl` places a
`ReplActor` (one actor per REPL, asking Ray for `--ray-cpus` CPUs, so Ray puts it where capacity is
free); the actor starts a real `ReplProcess` on its node and runs each request there, so the
timeout and the memory cap are enforced next to Lean. On the server a `RayRepl` stands in for the
process: it forwards each request to its actor and turns the actor's answer back into the pool's
outcomes (a response, or ReplTimeout / ReplMemoryExceeded / ReplCrashed).

A lost actor or node is a crash to the pool: the proof is tried once more on a new REPL (a new
actor, placed wherever Ray finds room), and a proof whose two REPLs were both lost gets verdict
`error`: never a silent loss. The job store stays with the server.

No REPL outlives its actor, even one killed with SIGKILL (`ray.kill`, a lost raylet): each actor
has a guardian process, outside Ray's reach, that holds the REPL's process group and kills it when
the actor's end of its pipe closes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio

from .._errors import BackendUnavailableError, ConfigurationError
from .._lean.supervise import ProcessFailure, ProcessStillRunning
from .._repl.pool import ReplPool
from .._repl.process import ReplCrashed, ReplProcess, _Pending
from .._sandbox import Sandbox
from .._settings import Settings
from .._toolchain import discover, existing_project
from .repl import ReplBackend, repl_pool_options

logger = logging.getLogger(__name__)

INSTALL_RAY = 'Install the Ray extra: pip install "lean-proof-mcp[ray]".'
#: How long past a request's own timeout an actor may take to answer before it counts as lost.
ACTOR_GRACE_SECONDS = 60.0
#: How long a graceful actor shutdown (reap the REPL, stop the guardian) may take before ray.kill.
CLOSE_SECONDS = 10.0

# The guardian: forks away from the actor (so nothing that kills the actor's children reaches it),
# reads "+PGID" / "-PGID" lines, and at end of input (the actor exited, however) kills every group
# it still holds.
_GUARDIAN = """
import os, signal, sys
if os.fork():
    os._exit(0)
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+":
        groups.add(int(line[1:]))
    elif line[:1] == "-":
        groups.discard(int(line[1:]))
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
"""


def require_ray() -> ModuleType:
    """The `ray` module, or a ConfigurationError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigurationError(f"--backend ray needs Ray, which is not installed ({exc}).", hint=INSTALL_RAY) from exc
    return ray


# -- on the node: the actor ----------------------------------------------------------------------


class ReplActor:
    """One REPL on a Ray node. Created by `RayReplPool` as an async Ray actor, never directly."""

    def __init__(self) -> None:
        self._process: ReplProcess | None = None
        guardian = subprocess.Popen([sys.executable, "-c", _GUARDIAN], stdin=subprocess.PIPE, start_new_session=True)
        guardian.wait()  # the launcher exits at once; its child keeps the pipe and outlives us
        assert guardian.stdin is not None
        self._guardian = guardian.stdin

    def _tell_guardian(self, line: str) -> None:
        self._guardian.write(line.encode() + b"\n")
        self._guardian.flush()

    async def start(
        self, command: list[str], cwd: str | None, env: dict[str, str] | None, sandbox: Sandbox
    ) -> dict[str, Any]:
        """Start a REPL (ending the previous one); where it runs, or `error`/`hint` if it cannot start here."""
        await self.stop()
        try:
            process = await ReplProcess.start(command, cwd=cwd, env=env, sandbox=sandbox)
        except BackendUnavailableError as exc:
            return {"error": f"On Ray node {socket.gethostname()}: {exc.message}", "hint": exc.hint}
        self._process = process
        self._tell_guardian(f"+{process.pid}")
        return {"pid": process.pid, "host": socket.gethostname()}

    async def send(self, request: dict[str, Any], seconds: float, max_output_bytes: int | None) -> dict[str, Any]:
        """`ReplProcess.send` on this node: `{}`, or a failure as data (`encode_failure`)."""
        try:
            await self._started().send(request, seconds=seconds, max_output_bytes=max_output_bytes)
        except ProcessFailure as exc:
            return encode_failure(exc)
        return {}

    async def answer(self, memory_mb: float | None, patience: float | None) -> dict[str, Any]:
        """`ReplProcess.answer` on this node: the response and the REPL's memory, or a failure as data."""
        process = self._started()
        try:
            response = await process.answer(memory_mb=memory_mb, patience=patience)
        except ProcessFailure as exc:
            return encode_failure(exc)
        return {"response": response, "rss_mb": process.last_rss_mb}

    def _started(self) -> ReplProcess:
        if self._process is None:
            raise ReplCrashed(None, "", "was never started in its Ray actor")
        return self._process

    async def stop(self) -> None:
        """Kill and reap the REPL; the actor stays, ready for the next `start`."""
        process, self._process = self._process, None
        if process is not None:
            await process.aclose()
            self._tell_guardian(f"-{process.pid}")


def _failure_classes(base: type[ProcessFailure] = ProcessFailure) -> dict[str, type[ProcessFailure]]:
    found = {base.__name__: base}
    for sub in base.__subclasses__():
        found.update(_failure_classes(sub))
    return found


def encode_failure(exc: ProcessFailure) -> dict[str, Any]:
    """A ProcessFailure as plain data: its class name, args and attributes (its own __init__ takes others)."""
    return {"failure": type(exc).__name__, "args": list(exc.args), "state": dict(vars(exc))}


def decode_failure(reply: Mapping[str, Any]) -> ProcessFailure:
    """The ProcessFailure `encode_failure` described (a class unknown here becomes a ProcessFailure)."""
    cls = _failure_classes().get(reply["failure"], ProcessFailure)
    exc = cls.__new__(cls)
    exc.args = tuple(reply["args"])
    exc.__dict__.update(reply["state"])
    return exc


@functools.cache
def _actor_class() -> Any:
    return require_ray().remote(ReplActor)


# -- on the server: the stand-in for a remote REPL -----------------------------------------------


class RayRepl(ReplProcess):
    """A REPL living in a Ray actor, driven from the server like a local `ReplProcess`.

    Closing it reaps the REPL on its node and hands the actor, still placed, to `release` for the
    next REPL; killing it (a cancelled request, a lost actor, shutdown) kills the actor.
    """

    def __init__(
        self, actor: Any, info: Mapping[str, Any], command: Sequence[str], release: Callable[[Any], None]
    ) -> None:
        # no super().__init__(): there is no local process; every method that would touch one is overridden
        self.actor = actor
        self.pid: int = info["pid"]
        self.host: str = info["host"]
        self.command = list(command)
        self.requests = 0
        self.next_env = 0
        self.pending: _Pending | None = None
        self._rss_mb = 0.0
        self._release = release
        self._dead = False
        self._killed = False
        self._closed = False

    @classmethod
    async def start_in(
        cls,
        actor: Any,
        command: Sequence[str],
        *,
        cwd: str | Path | None,
        env: Mapping[str, str] | None,
        sandbox: Sandbox,
        seconds: float,
        release: Callable[[Any], None],
    ) -> RayRepl:
        """Start the REPL in `actor` (a new actor first waits for Ray to place it, up to `seconds`).

        Raises BackendUnavailableError when the actor was not placed in time or the command cannot
        start on its node, ReplCrashed when the actor died (the pool retries on a new one).
        """
        ray = require_ray()
        try:
            with anyio.fail_after(seconds):
                info = await actor.start.remote(
                    list(command), None if cwd is None else str(cwd), env and dict(env), sandbox
                )
        except TimeoutError:
            _kill_actor(actor)
            raise BackendUnavailableError(
                f"No Ray node had room for a REPL actor within {seconds:g} s.",
                hint="Add nodes, or lower --workers or --ray-cpus; `ray status` shows what is in use.",
            ) from None
        except ray.exceptions.RayError as exc:
            _kill_actor(actor)
            raise ReplCrashed(None, "", f"could not start: its Ray actor failed ({_first_line(exc)})") from None
        except BaseException:
            _kill_actor(actor)
            raise
        if "error" in info:
            release(actor)
            raise BackendUnavailableError(info["error"], hint=info["hint"])
        return cls(actor, info, command, release)

    @property
    def alive(self) -> bool:
        return not self._dead

    @property
    def returncode(self) -> int | None:
        return None

    @property
    def last_rss_mb(self) -> float:
        """Resident memory of the REPL's process tree on its node, in MB, when it last answered."""
        return self._rss_mb

    def stderr_tail(self, limit: int = 0) -> str:
        return ""  # a crash report carries the tail from the node

    async def send(
        self,
        request: dict[str, Any],
        *,
        seconds: float,
        max_output_bytes: int | None = None,
        data: bytes | None = None,
    ) -> None:
        """Send `request` to the actor's REPL; its answer is due within `seconds` (see `answer`). The
        actor encodes it on its node (`data`, its encoding here, is not sent)."""
        if self._dead:
            raise ReplCrashed(None, "", "is not running")
        if self.pending is not None:
            raise RuntimeError("a REPL request is already in flight")
        self.requests += 1
        reply = await self._call(self.actor.send.remote(request, seconds, max_output_bytes), ACTOR_GRACE_SECONDS)
        self._raise_failure(reply)
        self.pending = _Pending(seconds, time.monotonic() + seconds, None)

    async def answer(self, *, memory_mb: float | None = None, patience: float | None = None) -> dict[str, Any]:
        """The answer to the request in flight, with the same outcomes as `ReplProcess.answer`.

        The deadline and the memory cap are enforced on the node; a lost actor raises ReplCrashed.
        """
        pending = self.pending
        if pending is None:
            raise RuntimeError("no REPL request is in flight")
        remaining = max(0.0, pending.deadline - time.monotonic())
        wait = remaining if patience is None else min(patience, remaining)
        reply = await self._call(self.actor.answer.remote(memory_mb, patience), wait + ACTOR_GRACE_SECONDS)
        self._raise_failure(reply)
        self.pending = None
        self._rss_mb = reply["rss_mb"]
        return dict(reply["response"])

    def _raise_failure(self, reply: Mapping[str, Any]) -> None:
        if "failure" not in reply:
            return
        failure = decode_failure(reply)
        if not isinstance(failure, ProcessStillRunning):  # anything else: the node killed the REPL
            self.pending = None
            self._dead = True
        raise failure

    async def _call(self, ref: Any, seconds: float) -> dict[str, Any]:
        """Await an actor call; a silent or lost actor is killed and raises ReplCrashed (the pool retries)."""
        ray = require_ray()
        try:
            with anyio.fail_after(seconds):
                reply: dict[str, Any] = await ref
        except TimeoutError:
            self.kill()
            raise ReplCrashed(None, "", f"was lost: its Ray actor on {self.host} did not answer") from None
        except ray.exceptions.RayError as exc:
            self.kill()
            raise ReplCrashed(None, "", f"was lost with its Ray actor on {self.host} ({_first_line(exc)})") from None
        except BaseException:
            self.kill()  # cancelled: the REPL would be out of step
            raise
        return reply

    def kill(self) -> None:
        """Kill the actor now (its guardian kills the REPL's process group)."""
        self._dead = True
        if not self._killed:
            self._killed = True
            _kill_actor(self.actor)

    async def aclose(self) -> None:
        """Reap the REPL on its node and hand the actor back; a killed or silent actor is ended. Idempotent."""
        if self._closed:
            return
        self._closed = self._dead = True
        if self._killed:
            return
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(CLOSE_SECONDS), _ray_may_be_gone():
                await self.actor.stop.remote()
                self._release(self.actor)
                return
            self.kill()


def _kill_actor(actor: Any) -> None:
    with _ray_may_be_gone():
        require_ray().kill(actor, no_restart=True)


def _ray_may_be_gone() -> contextlib.suppress:
    """Suppress the errors of talking to an actor that is dead, or to a Ray that is shut down."""
    return contextlib.suppress(require_ray().exceptions.RayError, ValueError, RuntimeError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


class RayReplPool(ReplPool):
    """A ReplPool whose REPLs live in Ray actors (`ray_cpus` CPUs each) placed across the cluster.

    An actor outlives its REPL: when the pool retires a REPL (recycling, timeout, memory kill,
    eviction) the actor is kept idle and the next REPL starts in it, saving a Ray worker start.
    There are never more actors than `workers`.
    """

    def __init__(self, command: Sequence[str], *, ray_cpus: float = 0.5, **options: Any) -> None:
        super().__init__(command, **options)
        self.ray_cpus = ray_cpus
        self._idle: list[Any] = []
        self._placed: set[RayRepl] = set()
        self.counts["actor_starts"] = 0

    async def start_repl(self) -> ReplProcess:
        """Start a REPL in an idle actor, or in a new actor wherever Ray has `ray_cpus` free."""
        while self._idle:
            try:
                repl = await self._start_in(self._idle.pop())
                break
            except ReplCrashed:
                continue  # that actor was lost meanwhile: try the next, or a new one
        else:
            actor = _actor_class().options(num_cpus=self.ray_cpus, max_restarts=0, max_task_retries=0).remote()
            self.counts["actor_starts"] += 1
            repl = await self._start_in(actor)
        self._placed = {r for r in self._placed if r.alive} | {repl}
        return repl

    async def _start_in(self, actor: Any) -> RayRepl:
        return await RayRepl.start_in(
            actor,
            self.command,
            cwd=self.cwd,
            env=self.env,
            sandbox=self.sandbox,
            seconds=self.queue_timeout,
            release=self._keep_actor,
        )

    def _keep_actor(self, actor: Any) -> None:
        """An actor whose REPL was closed: idle for the next REPL, unless the pool is shutting down."""
        if self._closed:
            _kill_actor(actor)
        else:
            self._idle.append(actor)

    async def aclose(self) -> None:
        """Close the pool, then end the idle actors."""
        await super().aclose()
        idle, self._idle = self._idle, []
        for actor in idle:
            _kill_actor(actor)

    def health(self) -> dict[str, Any]:
        """The pool's health, plus how many live REPLs each Ray node holds."""
        hosts: dict[str, int] = {}
        for repl in self._placed:
            if repl.alive:
                hosts[repl.host] = hosts.get(repl.host, 0) + 1
        return {**super().health(), "ray_cpus": self.ray_cpus, "ray_nodes": hosts}


# -- Ray itself ------------------------------------------------------------------------------------


class RayRuntime:
    """This process's link to Ray: join the cluster at `address`, or start a local Ray instance.

    If Ray is already initialized (inside a Ray job or task) it is used as it is and left alone;
    otherwise `disconnect` undoes exactly what `connect` did (a local instance is stopped).
    """

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self.owned = False

    def connect(self) -> None:
        """Blocking (a local start takes seconds): run it in a worker thread from async code."""
        ray = require_ray()
        if ray.is_initialized():
            return
        try:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address!r}" if self.address else "a local Ray instance"
            raise BackendUnavailableError(
                f"Cannot start or join {where}: {exc}",
                hint="Check --ray-address (LEAN_MCP_RAY_ADDRESS); `ray status` on the head node shows the cluster.",
            ) from exc
        self.owned = True

    def disconnect(self) -> None:
        if self.owned:
            require_ray().shutdown()
            self.owned = False

    def describe(self) -> dict[str, Any]:
        """Where Ray runs and how many CPUs its live nodes have."""
        ray = sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            return {"address": self.address, "connected": False}
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        return {
            "address": self.address or "local",
            "connected": True,
            "nodes": len(nodes),
            "cpus": sum(node.get("Resources", {}).get("CPU", 0) for node in nodes),
        }


# -- the backend -----------------------------------------------------------------------------------


class RayBackend(ReplBackend):
    """The REPL pool with its REPLs in Ray actors across a cluster (`--backend ray`)."""

    name = "ray"
    pool_class = RayReplPool

    def __init__(self, command: list[str], *, project: Path, address: str | None = None, **options: Any) -> None:
        super().__init__(command, project=project, **options)
        self.runtime = RayRuntime(address)

    @classmethod
    def from_settings(cls, settings: Settings) -> RayBackend:
        """`--repl` (or the REPL found here, which every node must have at the same path) in Ray actors."""
        require_ray()
        command = settings.repl or discover(settings).repl
        if not command:
            raise ConfigurationError(
                "--backend ray needs a REPL command (--repl / LEAN_MCP_REPL) that works on every Ray node.",
                hint="e.g. --repl 'lake env /path/to/repl/.lake/build/bin/repl', with the same path on each node.",
            )
        return cls(
            list(command),
            project=existing_project(settings),
            address=settings.ray_address,
            ray_cpus=settings.ray_cpus,
            tactic_timeout=settings.timeout,
            **repl_pool_options(settings),
        )

    @property
    def identity(self) -> str:
        return "ray:" + super().identity

    def health(self) -> dict[str, Any]:
        return {**super().health(), "ray": self.runtime.describe()}

    async def start(self) -> None:
        await anyio.to_thread.run_sync(self.runtime.connect)
        await super().start()

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.runtime.disconnect)
