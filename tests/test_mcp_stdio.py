"""The stdio transport's pieces: bounded line reading, screening a line, and the pipe writer."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCRequest, JSONRPCResponse

from lean_mcp._server.stdio import Oversized, PipeLines, PipeWriter, screen_line

pytestmark = pytest.mark.anyio


async def _lines_of(data: bytes, limit: int) -> list[str | Oversized]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        return [line async for line in PipeLines(read_fd, limit)]
    finally:
        writer.join()
        os.close(read_fd)


async def test_a_line_past_the_limit_comes_out_as_its_size_and_start_and_the_next_line_is_intact() -> None:
    huge = b'{"id": 7, "pad": "' + b"x" * 500_000 + b'"}'
    lines = await _lines_of(b"first\n" + huge + b"\nafter\r\nlast-without-newline", limit=1000)
    assert lines[0] == "first\n"
    assert isinstance(lines[1], Oversized)
    assert lines[1].size == len(huge) and lines[1].limit == 1000
    assert lines[1].prefix.startswith('{"id": 7') and len(lines[1].prefix) <= 64 * 1024
    assert lines[2:] == ["after\r\n", "last-without-newline"]


async def test_bytes_that_are_not_utf8_stay_visible_so_the_line_is_refused() -> None:
    lines = await _lines_of(b'{"jsonrpc":"2.0","id":3,"method":"ping","params":{"a":"\xff"}}\n', limit=1000)
    assert isinstance(lines[0], str)
    answers = screen_line(lines[0])
    assert isinstance(answers, list) and answers[0].id == 3 and "UTF-8" in answers[0].error.message


async def test_a_regular_file_on_stdin_is_read_too(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n\n')
    fd = os.open(requests, os.O_RDONLY)
    try:
        lines = [line async for line in PipeLines(fd, 1000)]
    finally:
        os.close(fd)
    assert lines == ['{"jsonrpc":"2.0","id":1,"method":"ping"}\n', "\n"]


def test_screening_passes_requests_on_and_answers_what_cannot_be_read() -> None:
    passed = screen_line('\ufeff{"jsonrpc":"2.0","id":"a","method":"ping"}\r\n')
    assert isinstance(passed, SessionMessage) and isinstance(passed.message, JSONRPCRequest)
    assert screen_line("  \n") == []
    deep = '{"jsonrpc":"2.0","id":9,"method":"ping","params":{"x":' + "[" * 3000 + "]" * 3000 + "}}"
    (nested,) = screen_line(deep)
    assert nested.id == 9 and "nested too deeply" in nested.error.message
    (float_id,) = screen_line('{"jsonrpc":"2.0","id":2.5,"method":"ping"}')
    assert float_id.id is None and "got 2.5" in float_id.error.message
    assert screen_line('{"jsonrpc":"2.0","id":4,"result":{"x":[1,"\\ud800"]}}') == []  # a client's response


async def _written_by(send: Callable[[PipeWriter], Awaitable[None]]) -> list[dict[str, Any]]:
    """The JSON lines a PipeWriter writes into a pipe while `send` runs (a thread reads the other end)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    received = bytearray()

    def read_all() -> None:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                received.extend(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    try:
        async with anyio.create_task_group() as group:
            writer = PipeWriter(write_fd)
            group.start_soon(writer.run)
            with anyio.fail_after(30):
                await send(writer)
                await writer.flush()
            group.cancel_scope.cancel()
    finally:
        os.close(write_fd)
        reader.join()
    return [json.loads(line) for line in bytes(received).splitlines()]


async def test_an_answer_that_cannot_be_encoded_becomes_an_error_under_the_same_id() -> None:
    async def send(writer: PipeWriter) -> None:
        await writer.send(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=12, result={"text": "bad \ud800"})))
        await writer.send(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=13, result={"text": "fine"})))

    first, second = await _written_by(send)
    assert first["id"] == 12 and "could not be encoded" in first["error"]["message"]
    assert second == {"jsonrpc": "2.0", "id": 13, "result": {"text": "fine"}}


async def test_answers_past_what_the_pipe_holds_arrive_whole_and_in_order() -> None:
    # A pipe holds 64 KiB: most of these wait behind a full pipe while the client reads slowly.
    big = "x" * 50_000

    async def send(writer: PipeWriter) -> None:
        async with anyio.create_task_group() as senders:
            for i in range(40):
                await writer.send(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=i, result={"text": big})))
                if i % 10 == 0:
                    senders.start_soon(anyio.sleep, 0)

    answers = await _written_by(send)
    assert [answer["id"] for answer in answers] == list(range(40))
    assert all(answer["result"]["text"] == big for answer in answers)
