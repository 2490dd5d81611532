"""Limits that keep the HTTP servers answering whatever idle, slow or flooding clients do.

Both HTTP servers (`lean-mcp runner` and `lean-mcp serve --transport streamable-http`) run uvicorn
with `GuardedH11Protocol`, which adds to uvicorn's h11 protocol:

- a header timeout: a client has `--header-timeout` seconds to send a request's headers (from
  connecting, or from the end of the previous response); then 408 and the connection is closed;
- a body timeout: once the headers are in, `--body-timeout` seconds for the whole body; then 408;
- a connection limit: past `--max-connections` open connections (at most half the open-file
  limit), the connection that has waited longest for its next request is closed to make room; when
  every connection is busy with a request, the new one gets 503.

A request whose body is in does not time out here: checking a proof may take minutes.
`raise_open_file_limit` lifts the soft open-file limit to the hard one at start, so the limit
is reached by policy, never by running out of descriptors (which stops accept() for everyone).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import resource
import socket
import time
from typing import Any, ClassVar, Literal

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .._settings import Settings

logger = logging.getLogger(__name__)

Phase = Literal["headers", "body", "working"]
#: Connections the kernel may queue before the server accepts them.
LISTEN_BACKLOG = 4096
#: Seconds between two log lines about connections the limits closed.
_CLOSED_LOG_INTERVAL = 60.0


@dataclasses.dataclass(frozen=True)
class HttpLimits:
    """The limits one HTTP server enforces on its connections."""

    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings, open_files: int) -> HttpLimits:
        """The limits of `settings`, the connection limit capped at half of `open_files`."""
        connections = max(1, min(settings.max_connections, open_files // 2))
        if connections < settings.max_connections:
            logger.warning(
                "Serving at most %d HTTP connections, half the open-file limit of %d (--max-connections is %d).",
                connections,
                open_files,
                settings.max_connections,
            )
        return cls(settings.header_timeout, settings.body_timeout, connections)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (where allowed); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or target <= soft:
        return soft if soft != resource.RLIM_INFINITY else target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        logger.warning("Could not raise the open-file limit from %d to %d: %s", soft, target, exc)
        return soft
    return target


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """A uvicorn configuration for `app` with this module's protocol and limits, logging to our handlers."""
    limits = HttpLimits.from_settings(settings, raise_open_file_limit())
    protocol = type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits, "_closed": {}})
    return uvicorn.Config(
        app,
        http=protocol,
        log_config=None,
        log_level=settings.log_level.lower(),
        h11_max_incomplete_event_size=64 * 1024,
        # an idle keep-alive connection lives until the header timeout closes it, not uvicorn's 5 s: a client
        # reusing one for up to its own 5 s (httpx's default) must not send a request as the server hangs up
        timeout_keep_alive=math.ceil(limits.header_timeout),
        # asyncio accepts up to `backlog` sockets per wake-up, before any limit can act: keep bursts small.
        backlog=max(16, min(2048, limits.max_connections // 4)),
        **options,
    )


class Server(uvicorn.Server):
    """uvicorn's server for a configuration from `uvicorn_config`, with two changes at start-up.

    asyncio uses one number both as listen()'s backlog and as how many sockets it accepts per
    wake-up: uvicorn starts with the small batch (so a flood cannot outrun the connection limit),
    then the kernel queue is widened to LISTEN_BACKLOG (so real clients' connection attempts wait
    in line instead of being dropped and retried a second later). And when a flood runs the
    process out of open files, asyncio's traceback per refused socket becomes a counted warning.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(self._accept_errors)
        await super().startup(sockets=sockets)
        for sock in sockets or ():
            sock.listen(LISTEN_BACKLOG)

    def _accept_errors(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        protocol = self.config.http
        out_of_files = isinstance(context.get("exception"), OSError) and "accept" in str(context.get("message"))
        if out_of_files and isinstance(protocol, type) and issubclass(protocol, GuardedH11Protocol):
            protocol._note("not accepted, out of open files")
            return
        loop.default_exception_handler(context)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body read timeouts and a connection limit."""

    limits: ClassVar[HttpLimits] = HttpLimits(10.0, 60.0, 1000)
    _closed: ClassVar[dict[str, int]] = {}
    _closed_logged_at: ClassVar[float] = -_CLOSED_LOG_INTERVAL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: Phase | None = None
        self._phase_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self.idle_since = time.monotonic()

    # -- uvicorn's protocol hooks

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow_phase()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        self._phase_bytes += len(data)
        super().data_received(data)
        self._follow_phase()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_phase()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot parse: 400 with a JSON `detail`, then close."""
        detail = f"{msg} Send a well-formed HTTP/1.1 request (headers at most 64 KiB)."
        self._answer_and_close(400, detail)

    # -- phases and their deadlines

    @property
    def waiting_for_request(self) -> bool:
        """True while no request is in progress: the connection waits for (the rest of) new headers."""
        return self._phase == "headers" and not self.transport.is_closing()

    def _current_phase(self) -> Phase:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return "headers"
        return "body" if cycle.more_body and not cycle.disconnected else "working"

    def _follow_phase(self) -> None:
        if self.transport.is_closing():
            self._cancel_timer()
            return
        phase = self._current_phase()
        if phase == self._phase:
            return
        self._phase, self._phase_bytes = phase, 0
        self._cancel_timer()
        if phase == "headers":
            self.idle_since = time.monotonic()
            self._timer = self.loop.call_later(self.limits.header_timeout, self._headers_late)
        elif phase == "body":
            self._timer = self.loop.call_later(self.limits.body_timeout, self._body_late)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        if self._phase != "headers" or self.transport.is_closing():
            return
        if self._phase_bytes == 0:  # nothing asked: just hang up, as for an idle keep-alive connection
            self.transport.close()
            return
        self._note("with slow headers")
        detail = (
            f"The request's headers did not arrive within {self.limits.header_timeout:g} seconds "
            "(--header-timeout / LEAN_MCP_HEADER_TIMEOUT); the connection is closed."
        )
        self._answer_and_close(408, detail, raw=True)

    def _body_late(self) -> None:
        self._timer = None
        cycle = self.cycle
        if self._phase != "body" or cycle is None or self.transport.is_closing():
            return
        self._note("with slow bodies")
        if cycle.response_started:
            self.transport.close()
        else:
            detail = (
                f"The request's body did not arrive within {self.limits.body_timeout:g} seconds "
                "(--body-timeout / LEAN_MCP_BODY_TIMEOUT); the connection is closed."
            )
            self._answer_and_close(408, detail)
        cycle.response_started = True
        cycle.disconnected = True  # the app's receive() now answers http.disconnect; its sends go nowhere
        cycle.message_event.set()

    # -- the connection limit

    def _make_room(self) -> None:
        idle = [
            c for c in self.connections if isinstance(c, GuardedH11Protocol) and c is not self and c.waiting_for_request
        ]
        if not idle:
            self._note("refused, all busy")
            detail = (
                f"The server has {len(self.connections) - 1} connections open, all busy with requests "
                "(--max-connections / LEAN_MCP_MAX_CONNECTIONS). Retry in a moment."
            )
            self._answer_and_close(503, detail, raw=True)
            return
        oldest = min(idle, key=lambda c: c.idle_since)
        oldest.transport.close()
        self._note("idle, to make room")

    @classmethod
    def _note(cls, kind: str) -> None:
        """Count a connection closed by a limit; log the counts at most once a minute."""
        cls._closed[kind] = cls._closed.get(kind, 0) + 1
        now = time.monotonic()
        if now - cls._closed_logged_at >= _CLOSED_LOG_INTERVAL:
            counts = ", ".join(f"{count} {what}" for what, count in sorted(cls._closed.items()))
            logger.warning("HTTP limits closed connections: %s (limits: %s).", counts, cls.limits)
            cls._closed, cls._closed_logged_at = {}, now

    # -- answering outside an ASGI request

    def _answer_and_close(self, status: int, detail: str, *, raw: bool = False) -> None:
        """Write `status` with a JSON `detail` and close; `raw` when no request was read (h11 cannot answer)."""
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        headers.append((b"content-length", str(len(body)).encode()))
        try:
            if raw:
                raise h11.LocalProtocolError("no request to answer")
            reason = _REASONS[status].encode()
            output = self.conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
            output = (output or b"") + (self.conn.send(h11.Data(data=body)) or b"")
            output += self.conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            head = f"HTTP/1.1 {status} {_REASONS[status]}\r\n".encode()
            output = head + b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n" + body
        self.transport.write(output)
        self.transport.close()


_REASONS = {400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable"}
