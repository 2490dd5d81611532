"""The MCP stdio transport, hardened: no line the client sends can stop the server or go unanswered.

The SDK's own stdio reader drops a line it cannot read (its caller then waits forever) and its
writer dies on an answer it cannot encode. Here every line is read off the pipe by us, bounded in
length, and screened before the SDK sees it:

- a line longer than the request limit is skipped without being kept in memory, and answered;
- a line that is not JSON gets a parse error (id null, as JSON-RPC says);
- a request the SDK cannot read (too deeply nested, `params` not an object, text that is not
  Unicode, a batch array, an id that is neither a string nor an integer) gets an error naming why,
  under its own id when that id can be answered and under id null when it cannot;
- every outgoing message is encoded once, before it is written, so an answer that cannot be
  written becomes an error answer instead of ending the server.

Both pipes are read and written here, without the SDK's worker threads: a line read goes to the
SDK's session at once, an answer is written to the pipe in the call that sends it.

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
from typing import Any, cast

import anyio
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic import TypeAdapter, ValidationError

logger = logging.getLogger(__name__)

#: How much of an over-long line is kept to find its id.
_SNIFF_BYTES = 64 * 1024
_READ_CHUNK = 1 << 16
#: Bytes of answers queued behind a full pipe before a sender waits for the client to read.
_BACKLOG = 1 << 20
#: How long answers still queued at shutdown may wait for the client to read them.
_FINAL_FLUSH_SECONDS = 2.0
_BOM = "\ufeff"
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_COLON = re.compile(r"\s*:\s*")

RequestId = int | str
_REQUEST = TypeAdapter(JSONRPCRequest)


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
        """Read what has arrived; wait for the pipe only when nothing has (under load, it often has)."""
        if not self._pollable:  # a regular file or /dev/null: always readable, and epoll refuses it
            await anyio.lowlevel.checkpoint()
        try:
            chunk = os.read(self._fd, _READ_CHUNK)
        except BlockingIOError:
            await anyio.wait_readable(self._fd)
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
        with _null(os.O_RDONLY) as nothing:
            yield PipeLines(nothing, limit)
        return
    with _claimed(0, os.open(os.devnull, os.O_RDONLY)) as private:
        yield PipeLines(private, limit)


@contextlib.contextmanager
def _claimed(fd: int, diversion: int) -> Iterator[int]:
    """A private, non-blocking copy of `fd` while `fd` itself points where `diversion` does; then undone."""
    private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.dup2(diversion, fd)
    os.close(diversion)
    blocking = os.get_blocking(private)
    os.set_blocking(private, False)
    try:
        yield private
    finally:
        os.set_blocking(private, blocking)
        os.dup2(private, fd)
        os.close(private)


@contextlib.contextmanager
def _null(flags: int) -> Iterator[int]:
    nothing = os.open(os.devnull, flags | os.O_CLOEXEC)
    try:
        yield nothing
    finally:
        os.close(nothing)


# --------------------------------------------------------------------------- screening a line


def screen_line(line: str) -> SessionMessage | list[JSONRPCError]:
    """The message a line carries, or the error answers it is due (none for a blank line)."""
    text = line.lstrip(_BOM)
    if not text.strip():
        return []
    try:
        message = _message(text)
    except ValidationError as exc:
        return _refusals(text, exc)
    if isinstance(message, JSONRPCNotification) and '"id"' in text:
        # The SDK reads a request whose id is 1.5, true or null as a notification: nobody would answer it.
        raw = _loads(text)
        if isinstance(raw, dict) and "id" in raw:
            return [_error(None, INVALID_REQUEST, f"the id must be a string or an integer, got {_shown(raw['id'])}")]
    return SessionMessage(message)


def _message(text: str) -> JSONRPCMessage:
    """The JSON-RPC message `text` holds. A request (nearly every line) is read as one directly,
    which costs half what trying each kind of message in turn does; anything else as the union."""
    if '"method"' in text and '"id"' in text:
        with contextlib.suppress(ValidationError):
            return _REQUEST.validate_json(text, by_name=False)
    return jsonrpc_message_adapter.validate_json(text, by_name=False)


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


# --------------------------------------------------------------------------- writing the pipe


class PipeWriter:
    """The server's write stream: each message encoded once, and written without a worker thread.

    An answer that cannot be encoded becomes an error answer under its id. `send` queues the
    encoded line; `run` (a task of the transport) writes what is queued in the next pass of the
    event loop, so answers that are ready together leave in one write and the handler that sent
    one has finished by the time it is written (its loop then sleeps, rather than being preempted
    mid-work by the client it woke). A sender waits only when more than `_BACKLOG` bytes are
    queued behind a full pipe. When the client has closed the pipe, messages are dropped and
    `closed` is set, so the server stops.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pollable = _is_pollable(fd)
        self._pending = bytearray()
        self._queued = anyio.Event()
        self._empty = anyio.Event()
        self._empty.set()
        self._draining = anyio.Lock(fast_acquire=True)
        self.closed = anyio.Event()

    async def send(self, item: SessionMessage, /) -> None:
        """Queue `item` as one JSON line; wait only while too much is queued behind a full pipe."""
        data = _encoded(item.message)
        if data is None or self.closed.is_set():
            return
        if not self._pending:
            self._empty = anyio.Event()
            self._queued.set()
        self._pending += data
        if len(self._pending) > _BACKLOG:
            await self._empty.wait()

    async def run(self) -> None:
        """Write what is queued, as the pipe takes it; runs until cancelled."""
        while True:
            await self._queued.wait()
            self._queued = anyio.Event()
            await self._drain()

    async def flush(self) -> None:
        """Write everything queued (or until the pipe is closed)."""
        await self._drain()

    async def _drain(self) -> None:
        async with self._draining:  # one task at a time may wait on the pipe
            while self._pending and not self.closed.is_set():
                del self._pending[: self._write(self._pending)]
                if self._pending:
                    await anyio.wait_writable(self._fd)
            self._empty.set()

    def _write(self, data: bytes | bytearray) -> int:
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            if not self._pollable:  # epoll cannot wait for a regular file (which never fills up)
                raise
            return 0
        except OSError as exc:  # EPIPE: the client closed its end (Python ignores SIGPIPE)
            if not self.closed.is_set():
                logger.info("The client closed the protocol pipe (%s); stopping.", exc.strerror or exc)
            self._pending.clear()
            self.closed.set()
            self._empty.set()
            return len(data)

    async def aclose(self) -> None:
        """Nothing to release here: the pipe belongs to `claimed_stdout`."""

    async def __aenter__(self) -> PipeWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _encoded(message: Any) -> bytes | None:
    """The message as one UTF-8 JSON line, an error answer when it cannot be encoded, None to drop it."""
    try:
        return message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"  # type: ignore[no-any-return]
    except Exception as exc:
        replacement = _unwritable(message, exc)
        if replacement is None:
            return None
        return replacement.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"


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


@contextlib.contextmanager
def claimed_stdout() -> Iterator[int]:
    """Take the protocol pipe off fd 1 (fd 1 then points at stderr: a stray print cannot corrupt it)."""
    if sys.stdout is None:  # started with fd 1 closed: there is no wire to write to
        with _null(os.O_WRONLY) as nothing:
            yield nothing
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    try:
        diversion = os.dup(2)
    except OSError:  # fd 2 closed too
        diversion = os.open(os.devnull, os.O_WRONLY)
    with _claimed(1, diversion) as private:
        yield private


# --------------------------------------------------------------------------- the transport


class ScreenedMessages:
    """The server's read stream: the messages of the pipe's lines, screened as they are read.

    The SDK pulls each message straight off the pipe (no task and memory stream in between); a
    line it could not read is answered here (`screen_line`, `answer_for_oversized`) and skipped.
    """

    def __init__(self, lines: PipeLines, replies: PipeWriter) -> None:
        self._lines = lines
        self._replies = replies
        self._closed = False

    def __aiter__(self) -> ScreenedMessages:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        while not self._closed:
            line = await anext(self._lines)
            screened = answer_for_oversized(line) if isinstance(line, Oversized) else screen_line(line)
            if isinstance(screened, SessionMessage):
                return screened
            for answer in screened:
                await self._replies.send(SessionMessage(answer))
            await anyio.lowlevel.checkpoint()  # a flood of bad lines must not starve the proofs
        raise StopAsyncIteration

    async def receive(self) -> SessionMessage | Exception:
        """The next message; `anyio.EndOfStream` at the end of the input."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise anyio.EndOfStream from None

    async def aclose(self) -> None:
        """Read no further (the pipe itself belongs to `claimed_stdin`)."""
        self._closed = True

    async def __aenter__(self) -> ScreenedMessages:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def _stop_when_closed(replies: PipeWriter, serving: anyio.CancelScope) -> None:
    await replies.closed.wait()
    serving.cancel()  # nobody reads the answers any more


@contextlib.asynccontextmanager
async def stdio_streams(
    max_line_bytes: int,
) -> AsyncIterator[tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]]]:
    """The server's read and write streams over this process's stdin and stdout.

    Both pipes are taken off fds 0 and 1 while serving (fd 0 reads /dev/null, fd 1 writes to
    stderr), read and written here without threads; a line read is at most `max_line_bytes` long.
    """
    with claimed_stdin(max_line_bytes) as lines, claimed_stdout() as out:
        replies = PipeWriter(out)
        try:
            async with anyio.create_task_group() as writing:
                writing.start_soon(replies.run)
                writing.start_soon(_stop_when_closed, replies, writing.cancel_scope)
                yield ScreenedMessages(lines, replies), replies
                writing.cancel_scope.cancel()
        finally:
            with anyio.move_on_after(_FINAL_FLUSH_SECONDS, shield=True):
                await replies.flush()
