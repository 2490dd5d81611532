"""The MCP stdio transport, hardened: no line the client sends can stop the server or go unanswered.

The SDK's own stdio reader drops a line it cannot read (its caller then waits forever) and its
writer dies on an answer it cannot encode. Here every line is read off the pipe by us, bounded in
length, and screened before the SDK sees it:

- a line longer than the request limit is skipped without being kept in memory, and answered;
- a line that is not JSON gets a parse error (id null, as JSON-RPC says);
- a request the SDK cannot read (too deeply nested, `params` not an object, text that is not
  Unicode, a batch array, an id that is neither a string nor an integer) gets an error naming why,
  under its own id when that id can be answered and under id null when it cannot;
- every outgoing message is encoded before it is written, so an answer that cannot be written
  becomes an error answer instead of ending the server.

Empty lines, a UTF-8 byte order mark and CRLF line ends are accepted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import re
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn, cast

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

__all__ = ["Oversized", "PipeLines", "answer_for_oversized", "screen_line", "stdio_streams"]

logger = logging.getLogger(__name__)

#: How much of an over-long line is kept to find its id.
_SNIFF_BYTES = 64 * 1024
_READ_CHUNK = 1 << 16
_BOM = "\ufeff"
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_COLON = re.compile(r"\s*:\s*")

RequestId = int | str


@dataclasses.dataclass(frozen=True)
class Oversized:
    """A line past the limit: its first bytes (to find its id) and its full size in bytes."""

    prefix: str
    size: int
    limit: int


# --------------------------------------------------------------------------- reading the pipe


class PipeLines:
    """The lines of fd `fd`, each at most `limit` bytes, read without a worker thread.

    A longer line is skipped as it arrives (only its first 64 KiB are kept) and comes out as an
    `Oversized`. Bytes that are not UTF-8 stay visible as lone surrogates, so the line is
    refused rather than silently altered.
    """

    def __init__(self, fd: int, limit: int) -> None:
        self._fd = fd
        self._limit = limit
        self._pollable = _is_pollable(fd)
        self._buffer = bytearray()
        self._scanned = 0
        self._eof = False
        self._skipped = 0  # bytes of an over-long line already thrown away
        self._prefix = b""

    def __aiter__(self) -> PipeLines:
        return self

    async def __anext__(self) -> str | Oversized:
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline >= 0:
                return self._line(newline + 1)
            self._scanned = len(self._buffer)
            if len(self._buffer) > self._limit or self._skipped:
                self._skip(len(self._buffer))
            if self._eof:
                if self._skipped or self._buffer:
                    return self._line(len(self._buffer))
                raise StopAsyncIteration
            await self._fill()

    async def _fill(self) -> None:
        if self._pollable:
            await anyio.wait_readable(self._fd)
        else:  # a regular file or /dev/null: always readable, and epoll refuses it
            await anyio.lowlevel.checkpoint()
        try:
            chunk = os.read(self._fd, _READ_CHUNK)
        except BlockingIOError:
            return
        self._eof = not chunk
        self._buffer += chunk

    def _skip(self, count: int) -> None:
        if not self._skipped:
            self._prefix = bytes(self._buffer[:_SNIFF_BYTES])
        self._skipped += count
        del self._buffer[:count]
        self._scanned = 0

    def _line(self, end: int) -> str | Oversized:
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        self._scanned = 0
        size = self._skipped + len(line.rstrip(b"\r\n"))
        if self._skipped or size > self._limit:
            prefix = (self._prefix or line)[:_SNIFF_BYTES]
            self._skipped, self._prefix = 0, b""
            return Oversized(prefix.decode("utf-8", errors="replace"), size, self._limit)
        return line.decode("utf-8", errors="surrogateescape")


def _is_pollable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


@contextlib.contextmanager
def claimed_stdin(limit: int) -> Iterator[PipeLines]:
    """Take the protocol pipe off fd 0 (children see /dev/null) and read its lines ourselves."""
    if sys.stdin is None:  # started with fd 0 closed (`<&-`): nothing to read, and fd 0 is not ours to move
        nothing = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            yield PipeLines(nothing, limit)
        finally:
            os.close(nothing)
        return
    private = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    blocking = os.get_blocking(private)
    os.set_blocking(private, False)
    try:
        yield PipeLines(private, limit)
    finally:
        os.set_blocking(private, blocking)
        os.dup2(private, 0)
        os.close(private)


# --------------------------------------------------------------------------- screening a line


def screen_line(line: str) -> SessionMessage | list[JSONRPCError]:
    """The message a line carries, or the error answers it is due (none for a blank line)."""
    text = line.lstrip(_BOM)
    if not text.strip():
        return []
    try:
        message = jsonrpc_message_adapter.validate_json(text, by_name=False)
    except ValidationError as exc:
        return _refusals(text, exc)
    if isinstance(message, JSONRPCNotification) and '"id"' in text:
        # The SDK reads a request whose id is 1.5, true or null as a notification: nobody would answer it.
        raw = _loads(text)
        if isinstance(raw, dict) and "id" in raw:
            return [_error(None, INVALID_REQUEST, f"the id must be a string or an integer, got {_shown(raw['id'])}")]
    return SessionMessage(message)


def answer_for_oversized(line: Oversized) -> list[JSONRPCError]:
    """The error answer to a line past the limit, under its id when the line's start names one."""
    request_id = _sniff_id(line.prefix)
    logger.warning("Refused a %d-byte message (the limit is %d bytes), id %r", line.size, line.limit, request_id)
    reason = (
        f"the message is {line.size:,} bytes, over the limit of {line.limit:,} bytes; it was not read. "
        "Send a smaller proof, or raise --max-request-bytes (LEAN_MCP_MAX_REQUEST_BYTES)"
    )
    return [_error(request_id, INVALID_REQUEST, reason)]


def _refusals(text: str, error: ValidationError) -> list[JSONRPCError]:
    try:
        raw = _loads(text)
    except RecursionError:
        reason = "it is nested too deeply to read"
        return [_error(_sniff_id(text[:_SNIFF_BYTES]), INVALID_REQUEST, reason, log=text)]
    except ValueError as exc:
        reason = f"the line is not JSON ({exc}). Send one JSON-RPC message per line"
        return [_error(_sniff_id(text[:_SNIFF_BYTES]), PARSE_ERROR, reason, log=text)]
    if isinstance(raw, list):
        return _batch_refusals(raw)
    if not isinstance(raw, dict):
        return [_error(None, INVALID_REQUEST, f"a message must be a JSON object, got {_shown(raw)}", log=text)]
    if "method" not in raw and ("result" in raw or "error" in raw):
        logger.warning("Ignored an unreadable response from the client: %.200r", text)
        return []
    request_id = raw.get("id")
    if "id" not in raw:
        logger.warning("Ignored an unreadable notification: %.200r", text)
        return []
    code, reason = _reason(raw, error)
    return [_error(request_id if _answerable(request_id) else None, code, reason, log=text)]


def _batch_refusals(batch: list[Any]) -> list[JSONRPCError]:
    reason = "batches (JSON arrays) are not supported. Send one JSON-RPC message per line"
    ids = [item.get("id") for item in batch if isinstance(item, dict) and "method" in item and "id" in item]
    answerable = [i for i in ids if _answerable(i)]
    if not answerable:
        return [_error(None, INVALID_REQUEST, reason)]
    return [_error(request_id, INVALID_REQUEST, reason) for request_id in answerable]


def _reason(raw: dict[str, Any], error: ValidationError) -> tuple[int, str]:
    """Why a JSON object is not a request the server can read, and the JSON-RPC code for it."""
    if raw.get("jsonrpc") != "2.0":
        return INVALID_REQUEST, f'"jsonrpc" must be "2.0", got {_shown(raw.get("jsonrpc"))}'
    if not isinstance(raw.get("method"), str):
        return INVALID_REQUEST, f'"method" must be a string, got {_shown(raw.get("method"))}'
    if not _encodable(raw):
        return INVALID_REQUEST, (
            "it is not valid Unicode text (bytes that are not UTF-8, or a lone surrogate escape like \\ud800). "
            "Send valid JSON-RPC with valid Unicode (UTF-8) text"
        )
    if not isinstance(raw.get("id"), int | str) or isinstance(raw.get("id"), bool):
        return INVALID_REQUEST, f"the id must be a string or an integer, got {_shown(raw.get('id'))}"
    if "params" in raw and not isinstance(raw["params"], dict):
        return INVALID_PARAMS, f'"params" must be a JSON object, got {_shown(raw["params"])}'
    details = "; ".join(sorted({detail["msg"] for detail in error.errors()})[:3])
    return INVALID_REQUEST, f"it is not a JSON-RPC request this server can read ({details})"


def _error(request_id: RequestId | None, code: int, reason: str, *, log: str | None = None) -> JSONRPCError:
    if log is not None:
        logger.warning("Refused a message (id %r): %s: %.200r", request_id, reason, log)
    kind = "Parse error" if code == PARSE_ERROR else "Invalid request"
    message = f"{kind}: {reason}."
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))


def _loads(text: str) -> Any:
    """Python's JSON reader: it accepts what the SDK refuses (lone surrogates, depth past ~200)."""
    return json.loads(text)


def _answerable(request_id: Any) -> bool:
    """True for an id the answer can carry: an integer, or a string of valid Unicode."""
    if isinstance(request_id, bool):
        return False
    return isinstance(request_id, int) or (isinstance(request_id, str) and _encodable(request_id))


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        return False
    return True


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    try:
        text = json.dumps(value)
    except ValueError:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _sniff_id(text: str) -> RequestId | None:
    """The top-level `"id"` of a JSON object that cannot be read whole, found without recursion."""
    depth = 0
    for token in _TOKEN.finditer(text):
        piece = token.group()
        if piece in "{[":
            depth += 1
        elif piece in "}]":
            depth -= 1
        elif depth == 1 and piece == '"id"' and (colon := _COLON.match(text, token.end())):
            try:
                value, _ = json.JSONDecoder().raw_decode(text, colon.end())
            except (ValueError, RecursionError):
                return None
            return cast(RequestId, value) if _answerable(value) else None
    return None


# --------------------------------------------------------------------------- the transport


class _NoInput:
    """Stands in for the SDK's stdin: we read the pipe, so its reader waits here until we are done."""

    def __init__(self) -> None:
        self.done = anyio.Event()

    def __aiter__(self) -> _NoInput:
        return self

    async def __anext__(self) -> NoReturn:
        await self.done.wait()
        raise StopAsyncIteration


class CheckedWriter:
    """The SDK's write stream, but an answer that cannot be encoded becomes an error answer."""

    def __init__(self, inner: WriteStream[SessionMessage]) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage, /) -> None:
        try:
            item.message.model_dump_json(by_alias=True, exclude_unset=True)
        except Exception as exc:
            replacement = _unwritable(item.message, exc)
            if replacement is None:
                return
            item = SessionMessage(replacement)
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> CheckedWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _unwritable(message: Any, error: Exception) -> JSONRPCError | None:
    if isinstance(message, JSONRPCRequest | JSONRPCNotification):
        logger.error("Dropped an outgoing %s that cannot be encoded: %s", message.method, error)
        return None
    request_id = message.id if isinstance(message, JSONRPCResponse | JSONRPCError) else None
    logger.error("The answer to request %r cannot be encoded: %s", request_id, error)
    text = (
        "Internal error: the answer could not be encoded as JSON text (it holds text that is not Unicode). "
        "Retry; if it persists, report it with the server log."
    )
    safe_id = request_id if _answerable(request_id) else None
    return JSONRPCError(jsonrpc="2.0", id=safe_id, error=ErrorData(code=INTERNAL_ERROR, message=text))


async def _pump(
    lines: PipeLines, sink: MemoryObjectSendStream[SessionMessage | Exception], replies: CheckedWriter
) -> None:
    """Hand readable messages on to the server; answer the rest ourselves; close the sink at EOF."""
    async with sink:
        async for line in lines:
            screened = answer_for_oversized(line) if isinstance(line, Oversized) else screen_line(line)
            try:
                if isinstance(screened, SessionMessage):
                    await sink.send(screened)
                    continue
                for answer in screened:
                    await replies.send(SessionMessage(answer))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the server stopped reading: it is shutting down


@contextlib.asynccontextmanager
async def stdio_streams(
    max_line_bytes: int,
) -> AsyncIterator[tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]]]:
    """The server's read and write streams over this process's stdin and stdout.

    Stdout is the SDK's (it points fd 1 at stderr while serving, so a stray print cannot corrupt
    the stream); stdin is read here, a line at most `max_line_bytes` long.
    """
    no_input = _NoInput()
    with claimed_stdin(max_line_bytes) as lines:
        async with stdio_server(stdin=cast(Any, no_input)) as (_, write_stream):
            replies = CheckedWriter(write_stream)
            sink, messages = anyio.create_memory_object_stream[SessionMessage | Exception](0)
            try:
                async with anyio.create_task_group() as pump:
                    pump.start_soon(_pump, lines, sink, replies)
                    yield messages, replies
                    pump.cancel_scope.cancel()
            finally:
                no_input.done.set()
