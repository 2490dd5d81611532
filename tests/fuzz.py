"""A seeded fuzzer for the front ends: random and hostile inputs over MCP stdio and over HTTP.

Each run starts the real server as a subprocess (the REPL stand-in behind it) and counts what must
stay zero: server deaths, requests left unanswered, 500s (and, on the runner, 4xx answers without
a JSON `detail`). `tests/e2e/test_fuzz.py` runs a bounded round in CI; `python -m tests.fuzz
--inputs 20000 --seconds 600 --seed 7` (or `python -m bench --only fuzz`) runs a bigger one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx

from tests.e2e.mcp_support import SERVE, server_env
from tests.e2e.runner_support import RUNNER, free_port, runner_env

#: The stdio server's line limit during a fuzz run (small, so that over-long lines are cheap to send).
FUZZ_REQUEST_BYTES = 256 * 1024
TOOLS = ("verify_proof", "submit_proof", "get_proof_result")
METHODS = ("ping", "tools/list", "tools/call", "initialize", "resources/list", "prompts/list", "logging/setLevel")
NOTIFICATIONS = ("notifications/initialized", "notifications/cancelled", "notifications/progress", "notifications/x")
PROOFS = ("theorem t : True := trivial\n", "theorem f : 1 = 2 := by\n  sorry\n", "", "import Mathlib\n")


@dataclasses.dataclass
class FuzzReport:
    """What one fuzz round did and what went wrong (every count but `inputs` must be zero)."""

    target: str
    seed: int
    inputs: int = 0
    deaths: int = 0
    unanswered: int = 0
    server_errors: int = 0  # HTTP 500 (or any 5xx but 503)
    without_detail: int = 0  # runner 4xx answers without a JSON `detail`
    bad_output: int = 0  # stdout lines that are not JSON-RPC
    seconds: float = 0.0
    examples: list[str] = dataclasses.field(default_factory=list)

    @property
    def failures(self) -> int:
        return self.deaths + self.unanswered + self.server_errors + self.without_detail + self.bad_output

    def note(self, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(text[:300])

    def summary(self) -> str:
        return (
            f"{self.target}: {self.inputs} inputs in {self.seconds:.1f} s (seed {self.seed}): "
            f"{self.deaths} deaths, {self.unanswered} unanswered, {self.server_errors} 5xx, "
            f"{self.without_detail} 4xx without detail, {self.bad_output} bad output lines"
            + (f"; e.g. {self.examples}" if self.examples else "")
        )


# --------------------------------------------------------------------------- hostile JSON text


def hostile_json(rng: random.Random, depth: int = 0) -> str:
    """JSON-ish text: mostly valid, often hostile (deep, huge, NaN, lone surrogates, odd types)."""
    kind = rng.randrange(14 if depth < 3 else 9)
    if kind == 0:
        return str(rng.choice([0, -1, 1, 2**31, 2**63, -(2**64), 10**30]))
    if kind == 1:
        return "9" * rng.choice([20, 400, 4400, 6000])
    if kind == 2:
        return rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "-0", "1.5", "0.1e-400"])
    if kind == 3:
        return rng.choice(["true", "false", "null"])
    if kind in (4, 5):
        return json.dumps(_text(rng), ensure_ascii=rng.random() < 0.5)
    if kind == 6:
        return rng.choice(['"\\ud800"', '"a\\udc00b"', '"\\ud800\\ud800"', '"\\u0000"', '"\\uDBFF"'])
    if kind == 7:
        levels = rng.choice([50, 250, 1200, 5000, 30000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        return opener * levels + "1" + closer * levels
    if kind == 8:
        return rng.choice(['"x', "[1,", "{", "}", "", "tru", "'single'", "[1 2]", '{"a" 1}', "\x00"])
    if kind in (9, 10):
        items = [hostile_json(rng, depth + 1) for _ in range(rng.randrange(4))]
        return "[" + ",".join(items) + "]"
    keys = ["id", "method", "params", "proof", "config", "timeout", "name", "arguments", "__proto__", "a", ""]
    pairs = [f"{json.dumps(rng.choice(keys))}:{hostile_json(rng, depth + 1)}" for _ in range(rng.randrange(5))]
    return "{" + ",".join(pairs) + "}"


def _text(rng: random.Random) -> str:
    alphabet = "ab ∀λ→ℕ\t\n\r\"\\'{}[]:,🙂\u200b\u202e\x01\x7f\ufeff"
    size = rng.choice([0, 1, 8, 64, 300, 5000])
    return "".join(rng.choice(alphabet) for _ in range(size))


# --------------------------------------------------------------------------- MCP stdio


class _IdSource:
    def __init__(self) -> None:
        self.next = 1000

    def take(self) -> int:
        self.next += 1
        return self.next


def stdio_input(rng: random.Random, ids: _IdSource) -> tuple[bytes, list[int | str]]:
    """One line for the stdio server, and the ids its answers must carry."""
    shape = rng.randrange(12)
    request_id: int | str = ids.take()
    if rng.random() < 0.2:
        request_id = f"s-{request_id}-{_text(rng)[:20]}"
    head = f'{{"jsonrpc":"2.0","id":{json.dumps(request_id)},'
    if shape <= 3:  # a request with our id first, whatever its method and params
        method = rng.choice([*METHODS, "tools/call", "tools/call", _text(rng)[:30]])
        body = head + f'"method":{json.dumps(method)},"params":{_params(rng, method)}}}'
        return _dress(rng, body.encode("utf-8", "surrogatepass")), [request_id]
    if shape == 4:  # params of the wrong shape
        body = head + f'"method":"tools/call","params":{hostile_json(rng)}}}'
        return body.encode("utf-8", "surrogatepass"), [request_id]
    if shape == 5:  # a batch
        members = [ids.take() for _ in range(rng.randrange(1, 4))]
        batch = ",".join(f'{{"jsonrpc":"2.0","id":{m},"method":"ping"}}' for m in members)
        return f"[{batch}]".encode(), list(members)
    if shape == 6:  # past the line limit, id first
        padding = "x" * rng.choice([FUZZ_REQUEST_BYTES + 1, 2 * FUZZ_REQUEST_BYTES, 3 << 20])
        body = head + f'"method":"tools/call","params":{{"name":"verify_proof","arguments":{{"proof":"{padding}"}}}}}}'
        return body.encode(), [request_id]
    if shape == 7:  # a notification: nothing is due
        method = rng.choice(NOTIFICATIONS)
        params = '{"requestId":-1,"reason":"x"}' if method.endswith("cancelled") else hostile_json(rng)
        return f'{{"jsonrpc":"2.0","method":"{method}","params":{params}}}'.encode("utf-8", "surrogatepass"), []
    if shape == 8:  # an id that cannot be answered (answered with id null), or a response from the client
        odd = rng.choice(["1.5", "true", "null", "[1]", '{"a":1}', '"\\ud800"', "1e400"])
        return f'{{"jsonrpc":"2.0","id":{odd},"method":"ping"}}'.encode(), []
    if shape == 9:  # bytes
        return bytes(rng.randrange(256) for _ in range(rng.choice([1, 10, 200]))).replace(b"\n", b" "), []
    if shape == 10:  # any hostile JSON text as a whole message
        return hostile_json(rng).replace("\n", " ").encode("utf-8", "surrogatepass"), []
    return rng.choice([b"", b"   ", b"\r", b"\xef\xbb\xbf", b'{"jsonrpc":"2.0","id":-5,"result":{}}']), []


def _params(rng: random.Random, method: str) -> str:
    if method != "tools/call" or rng.random() < 0.2:
        return hostile_json(rng) if rng.random() < 0.5 else "{}"
    arguments: dict[str, Any] = {}
    if rng.random() < 0.8:
        arguments["proof"] = rng.choice([*PROOFS, _text(rng), "../../etc/passwd", "/etc/passwd", "X.lean"])
    if rng.random() < 0.3:
        arguments["proof_id"] = rng.choice(["", "nope", _text(rng)[:40]])
    if rng.random() < 0.3:
        arguments["wait_seconds"] = rng.choice([0, 0.1, -1, 1e9, "soon"])
    text = json.dumps(arguments)
    if rng.random() < 0.3:
        text = text[:-1] + ("," if arguments else "") + f'"config":{hostile_json(rng)}}}'
    return f'{{"name":{json.dumps(rng.choice([*TOOLS, *TOOLS, "nope", ""]))},"arguments":{text}}}'


def _dress(rng: random.Random, line: bytes) -> bytes:
    """The same message with a BOM, CR or spaces around it, now and then."""
    roll = rng.random()
    if roll < 0.05:
        return b"\xef\xbb\xbf" + line
    if roll < 0.1:
        return line + b"\r"
    if roll < 0.15:
        return b"  " + line + b"  "
    return line


async def fuzz_stdio(inputs: int, seconds: float, seed: int, workdir: Path) -> FuzzReport:
    """Send up to `inputs` hostile lines (for at most `seconds`) to `lean-mcp serve` over stdio."""
    report = FuzzReport("MCP stdio", seed)
    env = server_env(workdir, LEAN_MCP_MAX_REQUEST_BYTES=str(FUZZ_REQUEST_BYTES), LEAN_MCP_LOG_LEVEL="ERROR")
    started = time.monotonic()
    with (workdir / "server.log").open("ab") as errlog:
        process = await anyio.open_process(SERVE, env=env, cwd=workdir, stderr=errlog)
        session = _StdioRound(process, report, random.Random(seed))
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.read_answers)
                await session.send_all(inputs, started + seconds)
                tg.cancel_scope.cancel()
        finally:
            report.seconds = time.monotonic() - started
            await session.finish()
    return report


class _StdioRound:
    """One fuzz round over a server's stdin and stdout."""

    def __init__(self, process: anyio.abc.Process, report: FuzzReport, rng: random.Random) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process, self.report, self.rng = process, report, rng
        self.stdin, self.stdout = process.stdin, process.stdout
        self.ids = _IdSource()
        self.expected: dict[int | str, bytes] = {}
        self.answered: set[int | str] = set()

    async def send_all(self, inputs: int, deadline: float) -> None:
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}
        try:
            await self._send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}).encode())
            await self._send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
            while self.report.inputs < inputs and time.monotonic() < deadline and self.process.returncode is None:
                line, due = stdio_input(self.rng, self.ids)
                self.expected.update((request_id, line[:200]) for request_id in due)
                await self._send(line)
                self.report.inputs += 1
                if self.report.inputs % 100 == 0:  # keep in step: a ping must come back in time
                    ping = self.ids.take()
                    self.expected[ping] = b"ping"
                    await self._send(f'{{"jsonrpc":"2.0","id":{ping},"method":"ping"}}'.encode())
                    await _wait_for(lambda p=ping: p in self.answered, 60)  # type: ignore[misc]
            await _wait_for(lambda: set(self.expected) <= self.answered, 60)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return  # the server is gone: counted in finish()

    async def _send(self, line: bytes) -> None:
        await self.stdin.send(line + b"\n")

    async def read_answers(self) -> None:
        buffer = b""
        async for chunk in self.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    message = json.loads(line)
                    assert message["jsonrpc"] == "2.0"
                except (ValueError, KeyError, AssertionError, TypeError):
                    self.report.bad_output += 1
                    self.report.note(f"stdout line that is not JSON-RPC: {line[:200]!r}")
                    continue
                if "id" in message and "method" not in message:
                    self.answered.add(message["id"])

    async def finish(self) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.5)  # let an exit that is under way show
            if self.process.returncode is not None:
                self.report.deaths += 1
                self.report.note(f"the server exited with {self.process.returncode}")
            missing = [i for i in self.expected if i not in self.answered]
            self.report.unanswered = len(missing)
            for request_id in missing[:5]:
                self.report.note(f"no answer to {self.expected[request_id]!r}")
            if self.process.returncode is None:
                self.process.kill()
            await self.process.wait()
            await self.process.aclose()


async def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    with anyio.move_on_after(seconds):
        while not condition():  # noqa: ASYNC110 - the answers arrive on another task's schedule
            await anyio.sleep(0.02)


# --------------------------------------------------------------------------- HTTP

RUNNER_ROUTES = (
    "/prove/check",
    "/prove/submit",
    "/api/check",
    "/verify",
    "/health",
    "/prove/result/x",
    "/prove/cancel/x",
)
CONTENT_TYPES = (
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "text/plain",
    "",
)


def http_input(rng: random.Random, routes: tuple[str, ...]) -> tuple[str, str, dict[str, str], bytes]:
    """One HTTP request: method, path (with query), headers, body."""
    path = rng.choice([*routes, *routes, "/", "/nope", "/prove/result/" + "a" * 3000, "/%ff%fe", "/prove/check/.."])
    if rng.random() < 0.2:
        path += "?wait=" + rng.choice(["1", "-1", "nan", "inf", "1e400", "x", "0.05"])
    method = rng.choice(["POST", "POST", "POST", "GET", "PUT", "DELETE", "OPTIONS", "HEAD"])
    content_type = rng.choice(CONTENT_TYPES)
    headers = {"Content-Type": content_type} if content_type else {}
    if "mcp" in path:
        headers["Accept"] = rng.choice(["application/json, text/event-stream", "text/html", "*/*"])
    body = _http_body(rng, content_type)
    return method, path, headers, body


def _http_body(rng: random.Random, content_type: str) -> bytes:
    roll = rng.randrange(6)
    if roll == 0:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 10, 1000])))
    if roll == 1 and content_type.startswith("multipart"):
        return b'--b\r\nContent-Disposition: form-data; name="proof"\r\n\r\n' + _text(rng).encode() + b"\r\n--b--\r\n"
    if roll == 2:
        config = hostile_json(rng)
        return f"proof={_text(rng)[:200]}&config={config}".encode("utf-8", "surrogatepass")
    if roll == 3:
        return hostile_json(rng).encode("utf-8", "surrogatepass")
    shapes = [
        f'{{"jsonrpc":"2.0","id":{rng.randrange(10**6)},"method":"tools/call","params":{_params(rng, "tools/call")}}}',
        f'{{"proof":{json.dumps(rng.choice(PROOFS))},"config":{hostile_json(rng)}}}',
        f'{{"snippets":[{{"id":{hostile_json(rng)},"code":{json.dumps(rng.choice(PROOFS))}}}],"timeout":{hostile_json(rng)}}}',
        f'{{"codes":[{{"custom_id":{hostile_json(rng)},"proof":{hostile_json(rng)}}}]}}',
        f'{{"jsonrpc":"2.0","id":{hostile_json(rng)},"method":"initialize","params":{hostile_json(rng)}}}',
    ]
    return rng.choice(shapes).encode("utf-8", "surrogatepass")


async def fuzz_http(
    target: str, url: str, inputs: int, seconds: float, *, seed: int, routes: tuple[str, ...], json_detail: bool
) -> FuzzReport:
    """Send up to `inputs` hostile requests to the server at `url`, eight at a time."""
    rng, report = random.Random(seed), FuzzReport(target, seed)
    started = time.monotonic()
    limit = anyio.Semaphore(8)

    async def one(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        try:
            answer = await client.request(method, url + path, headers=headers, content=body)
        except httpx.HTTPError as exc:
            report.unanswered += 1
            report.note(f"{method} {path}: no answer ({type(exc).__name__}: {exc})")
            return
        finally:
            limit.release()
        if answer.status_code >= 500 and answer.status_code != 503:
            report.server_errors += 1
            report.note(f"{method} {path} {body[:120]!r} -> {answer.status_code} {answer.text[:200]}")
        elif json_detail and 400 <= answer.status_code < 500 and method != "HEAD" and not _has_detail(answer):
            report.without_detail += 1
            report.note(f"{method} {path} -> {answer.status_code} without a JSON detail: {answer.text[:200]}")

    async with httpx.AsyncClient(timeout=60) as client, anyio.create_task_group() as tg:
        session = await _mcp_session(client, url) if routes == ("/mcp",) else {}
        while report.inputs < inputs and time.monotonic() - started < seconds:
            request = http_input(rng, routes)
            if session and rng.random() < 0.7:  # most inputs inside a live MCP session, past its handshake
                request[2].update(session)
            await limit.acquire()
            report.inputs += 1
            tg.start_soon(one, client, *request)
    for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 100_000 + b"\r\n\r\n", b"\x16\x03\x01"):
        report.inputs += 1
        await anyio.to_thread.run_sync(_raw_request, url, garbage)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            alive = (await client.get(url + routes[-1])).status_code < 500
    except httpx.HTTPError:
        alive = False
    if not alive:
        report.deaths += 1
        report.note("the server stopped answering")
    report.seconds = time.monotonic() - started
    return report


async def _mcp_session(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    """The headers of an initialized MCP streamable-HTTP session."""
    accept = {"Accept": "application/json, text/event-stream"}
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}
    answer = await client.post(
        url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}, headers=accept
    )
    session = {**accept, "mcp-session-id": answer.headers["mcp-session-id"]}
    notice = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    await client.post(url + "/mcp", json=notice, headers=session)
    return session


def _has_detail(answer: httpx.Response) -> bool:
    try:
        return isinstance(answer.json().get("detail"), str)
    except (ValueError, AttributeError):
        return False


def _raw_request(url: str, data: bytes) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        sock.settimeout(2)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass


# --------------------------------------------------------------------------- running a round


async def fuzz_all(inputs: int, seconds: float, seed: int, workdir: Path) -> list[FuzzReport]:
    """One round on each front end: MCP stdio, the runner and MCP streamable HTTP (inputs and time split)."""
    reports = []
    stdio_dir, runner_dir, mcp_dir = (workdir / name for name in ("stdio", "runner", "mcp-http"))
    for path in (stdio_dir, runner_dir, mcp_dir):
        path.mkdir(parents=True, exist_ok=True)
    reports.append(await fuzz_stdio(inputs * 2 // 5, seconds * 0.45, seed, stdio_dir))
    async with http_server(RUNNER, runner_env(runner_dir, LEAN_MCP_LOG_LEVEL="ERROR"), runner_dir) as url:
        share, budget = inputs * 2 // 5, seconds * 0.35
        reports.append(
            await fuzz_http("runner HTTP", url, share, budget, seed=seed, routes=RUNNER_ROUTES, json_detail=True)
        )
    serve_http = [*SERVE, "--transport", "streamable-http"]
    async with http_server(serve_http, server_env(mcp_dir, LEAN_MCP_LOG_LEVEL="ERROR"), mcp_dir) as url:
        share, budget = inputs // 5, seconds * 0.2
        reports.append(await fuzz_http("MCP HTTP", url, share, budget, seed=seed, routes=("/mcp",), json_detail=False))
    return reports


class http_server:
    """A server subprocess on a free port of 127.0.0.1; yields its base URL once it answers."""

    def __init__(self, command: list[str], env: dict[str, str], workdir: Path) -> None:
        self.command, self.env, self.workdir = command, env, workdir
        self.port = free_port()

    async def __aenter__(self) -> str:
        argv = [*self.command, "--host", "127.0.0.1", "--port", str(self.port)]
        self.log = (self.workdir / "server.log").open("ab")
        self.process = await anyio.open_process(argv, env=self.env, cwd=self.workdir, stdout=self.log, stderr=self.log)
        url = f"http://127.0.0.1:{self.port}"
        async with httpx.AsyncClient(timeout=5) as client:
            with anyio.fail_after(60):
                while True:
                    try:
                        await client.get(url + "/health")
                        return url
                    except httpx.TransportError:
                        await anyio.sleep(0.1)

    async def __aexit__(self, *exc_info: object) -> None:
        if self.process.returncode is None:
            self.process.terminate()
        with anyio.CancelScope(shield=True), anyio.move_on_after(20):
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await self.process.aclose()
        self.log.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--inputs", type=int, default=20_000, help="inputs in all (default 20000)")
    parser.add_argument("--seconds", type=float, default=600.0, help="time budget in all (default 600)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="random seed (default: the time)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lean-mcp-fuzz-") as workdir:
        reports = anyio.run(fuzz_all, args.inputs, args.seconds, args.seed, Path(workdir))
    for report in reports:
        print(report.summary())
    return 1 if any(report.failures for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
