"""The HTTP limits against the real servers on 127.0.0.1: idle and slow clients cannot lock out real ones,
every malformed body is a 4xx with a JSON `detail`, and one body limit holds on every route."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.fuzz import http_server

from .mcp_support import SERVE, server_env
from .runner_support import RUNNER, RunnerProcess, runner_env

TOKEN = "limits-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROVED = "theorem t : True := trivial\n"
POST_ROUTES = ("/prove/check", "/prove/submit", "/api/check", "/verify")
#: A body every POST route would accept, but for its timeouts: NaN (JSON's literal), which no route may take.
NAN_BODY = (
    b'{"proof": "x", "config": {"timeout": NaN}, "snippets": [{"id": "a", "code": "x"}],'
    b' "codes": [{"custom_id": 1, "proof": "x"}], "timeout": NaN}'
)


#: `lean-mcp runner` started with the usual 1,024 open files (soft and hard), as on many machines.
LIMITED_RUNNER = [
    sys.executable,
    "-c",
    "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)); "
    "sys.argv[0] = 'lean-mcp'; runpy.run_module('lean_mcp.cli', run_name='__main__')",
    *RUNNER[3:],
]


@contextmanager
def limited_runner(tmp_path: Path, **extra: str) -> Iterator[RunnerProcess]:
    runner = RunnerProcess(tmp_path, runner_env(tmp_path, LEAN_MCP_API_KEY=TOKEN, **extra), command=LIMITED_RUNNER)
    try:
        runner.wait_ready()
        yield runner
    finally:
        runner.stop()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # no TIME_WAIT pile-up
    return sock


def _read_all(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection (or `seconds` pass)."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


@pytest.mark.timeout(180)
def test_idle_and_slow_clients_cannot_lock_out_real_ones(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2048:
        pytest.skip("the test needs 2,048 open files of its own")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        with limited_runner(tmp_path, LEAN_MCP_HEADER_TIMEOUT="3", LEAN_MCP_BODY_TIMEOUT="4") as runner:
            with ExitStack() as held:
                idle = [held.enter_context(_connect(runner.port)) for _ in range(1100)]
                slow_headers = [held.enter_context(_connect(runner.port)) for _ in range(20)]
                slow_bodies = [held.enter_context(_connect(runner.port)) for _ in range(20)]
                for sock in slow_headers:
                    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                body_head = b"POST /prove/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                for sock in slow_bodies:
                    sock.sendall(body_head + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
                # With 1,160 connections held open against 1,024 open files, real clients are still served.
                started = time.monotonic()
                with httpx.Client(timeout=15) as client:
                    health = client.get(f"{runner.url}/health")
                    check = client.post(f"{runner.url}/prove/check", json={"proof": PROVED}, headers=AUTH)
                served_in = time.monotonic() - started
                for sock in slow_headers[:5]:
                    sock.sendall(b"X-Slow: 1\r\n")  # trickling headers does not extend the deadline
                late_header = _read_all(slow_headers[0], 10)
                late_body = _read_all(slow_bodies[0], 10)
                evicted = sum(1 for sock in idle[:100] if _read_all(sock, 0.01) == b"" and _closed(sock))
            with httpx.Client(timeout=15) as client:
                after = client.get(f"{runner.url}/health")
        log = runner.log()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert health.status_code == 200, health.text
    assert check.status_code == 200 and check.json()["verdict"] == "proved", check.text
    assert served_in < 15, f"real clients waited {served_in:.1f} s"
    assert late_header.startswith(b"HTTP/1.1 408"), late_header
    assert b"--header-timeout" in late_header and b'"detail"' in late_header, late_header
    assert late_body.startswith(b"HTTP/1.1 408"), late_body
    assert b"--body-timeout" in late_body and b'"detail"' in late_body, late_body
    assert evicted == 100, "the oldest idle connections are the ones closed to make room"
    assert after.status_code == 200
    assert "half the open-file limit of 1024" in log
    assert "Traceback" not in log and "Too many open files" not in log, log[-3000:]


def _closed(sock: socket.socket) -> bool:
    try:
        sock.settimeout(0.01)
        return sock.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


@pytest.mark.timeout(120)
def test_every_malformed_body_is_a_4xx_with_a_json_detail_and_one_limit_holds_everywhere(tmp_path: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    with limited_runner(tmp_path, LEAN_MCP_MAX_REQUEST_BYTES="100000") as runner, httpx.Client(timeout=30) as client:
        answers: dict[str, httpx.Response] = {}
        for route in POST_ROUTES:
            url = f"{runner.url}{route}"
            json_headers = {**AUTH, "Content-Type": "application/json"}
            answers[f"{route} deep"] = client.post(
                url, content=f'{{"proof": "x", "snippets": {deep}}}', headers=json_headers
            )
            answers[f"{route} deep config"] = client.post(url, data={"proof": "x", "config": deep}, headers=AUTH)
            answers[f"{route} too big"] = client.post(url, content=b"{" + b" " * 150_000 + b"}", headers=json_headers)
            answers[f"{route} not json"] = client.post(url, content=b"{nope", headers=json_headers)
            answers[f"{route} huge int"] = client.post(
                url, content=b'{"timeout": ' + b"9" * 5000 + b"}", headers=json_headers
            )
            answers[f"{route} NaN"] = client.post(url, content=NAN_BODY, headers=json_headers)
        bad_http = _raw_exchange(runner.port, b"POST /prove/check HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        huge_headers = _raw_exchange(runner.port, b"GET /health HTTP/1.1\r\nX: " + b"y" * 100_000 + b"\r\n\r\n")
        fine = client.post(f"{runner.url}/prove/check", json={"proof": PROVED}, headers=AUTH)
        log = runner.log()
    for name, answer in answers.items():
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text[:300])
        assert isinstance(answer.json().get("detail"), str), (name, answer.text[:300])
        if "too big" in name:
            assert answer.status_code == 413 and "100,000 bytes" in answer.json()["detail"], (name, answer.text)
    assert bad_http.startswith(b"HTTP/1.1 400") and b'"detail"' in bad_http, bad_http
    assert huge_headers.startswith(b"HTTP/1.1 400") and b"64 KiB" in huge_headers, huge_headers
    assert "nested too deeply" in answers["/prove/check deep"].json()["detail"]
    assert fine.json()["verdict"] == "proved"
    assert "Traceback" not in log, log[-3000:]


def _raw_exchange(port: int, request: bytes) -> bytes:
    with _connect(port) as sock:
        sock.sendall(request)
        return _read_all(sock, 10)


@pytest.mark.timeout(120)
def test_an_idle_keep_alive_connection_outlives_an_http_clients_own_keep_alive(tmp_path: Path) -> None:
    """httpx (our clients, and most others) reuses an idle connection for up to 5 s: the server must keep it
    longer (until --header-timeout), else a request sent as the server hangs up fails with a read error."""
    request = f"GET /health HTTP/1.1\r\nHost: runner\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
    with limited_runner(tmp_path) as runner, _connect(runner.port) as sock:
        sock.sendall(request)
        assert _read_all(sock, 2).startswith(b"HTTP/1.1 200"), "the first request is answered"
        time.sleep(6.5)  # past uvicorn's own 5 s keep-alive default, before the 10 s header timeout
        sock.sendall(request)
        assert _read_all(sock, 5).startswith(b"HTTP/1.1 200"), "the idle connection was closed after 5 s"


@pytest.mark.timeout(60)
def test_the_limits_are_knobs_with_clear_errors(tmp_path: Path) -> None:
    argv = [*RUNNER, "--header-timeout", "0"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=runner_env(tmp_path))
    assert done.returncode == 2
    assert "--header-timeout (LEAN_MCP_HEADER_TIMEOUT) must be a finite positive number" in done.stderr


@pytest.mark.timeout(120)
def test_the_mcp_http_server_times_out_slow_clients_and_keeps_serving(tmp_path: Path) -> None:
    anyio.run(_mcp_http_slow_clients, tmp_path)


async def _mcp_http_slow_clients(tmp_path: Path) -> None:
    env = server_env(tmp_path, LEAN_MCP_HEADER_TIMEOUT="2", LEAN_MCP_BODY_TIMEOUT="2")
    async with http_server([*SERVE, "--transport", "streamable-http"], env, tmp_path) as url:
        port = int(url.rsplit(":", 1)[1])
        with _connect(port) as slow_header, _connect(port) as slow_body:
            slow_header.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")
            slow_body.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{")
            late_header = await anyio.to_thread.run_sync(_read_all, slow_header, 10)
            late_body = await anyio.to_thread.run_sync(_read_all, slow_body, 10)
        async with (
            httpx2.AsyncClient(timeout=30) as client,
            streamable_http_client(f"{url}/mcp", http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            proved = await session.call_tool("verify_proof", {"proof": PROVED})
    assert late_header.startswith(b"HTTP/1.1 408") and b"--header-timeout" in late_header, late_header
    assert late_body.startswith(b"HTTP/1.1 408") and b"--body-timeout" in late_body, late_body
    assert proved.structured_content is not None and proved.structured_content["verdict"] == "proved"
    assert "Traceback" not in (tmp_path / "server.log").read_text()
