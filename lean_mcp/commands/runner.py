"""`lean-mcp runner --host 127.0.0.1 --port 8000`: the lean-runner / Kimina compatible HTTP runner.

Serves `lean_mcp.http_runner` with uvicorn. Logs go to stderr; SIGINT/SIGTERM stop it cleanly
(requests in flight get a few seconds, then the job service and its Lean processes are closed;
jobs still queued stay in the store and resume on the next start); the exit status after
SIGTERM is 0. `--port 0` picks a free port and logs it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
from types import FrameType

import anyio

from ..errors import ConfigurationError
from ..http_runner import create_app
from ..sandbox import unsandboxed_warning
from ..server import http_limits
from ..server.runtime import open_service
from ..settings import Settings

__all__ = ["GRACEFUL_SHUTDOWN_SECONDS", "listen_socket", "run"]

logger = logging.getLogger(__name__)

#: Seconds requests in flight get to finish once a shutdown signal arrives.
GRACEFUL_SHUTDOWN_SECONDS = 5


def listen_socket(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound now so that a busy port is a clear error, not a traceback.

    Created with protocol IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets whose protocol
    says TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint="Choose another --port / LEAN_MCP_PORT (or --host), or stop what is using it.",
        ) from None
    sock.set_inheritable(True)
    return sock


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 on a clean shutdown.

    The job service (and its backend) is opened before uvicorn starts, so a configuration
    problem ends the command with its message (exit 2) instead of a startup traceback.
    """
    sock = listen_socket(settings.host, settings.port)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it; end with status 0 instead.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        served: bool = anyio.run(_serve, settings, sock, backend="asyncio")
    finally:
        sock.close()
    return 0 if served else 1


async def _serve(settings: Settings, sock: socket.socket) -> bool:
    warning = unsandboxed_warning(settings)
    if warning:
        logger.warning("%s", warning)
    async with open_service(settings) as service:
        config = http_limits.uvicorn_config(
            create_app(service, settings),
            settings,
            access_log=settings.log_level == "DEBUG",
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        server = http_limits.Server(config)
        host, port = sock.getsockname()[:2]
        auth = "bearer token required" if settings.api_key else "no authentication"
        logger.info("lean-mcp runner listening on http://%s:%d (%s)", host, port, auth)
        await server.serve(sockets=[sock])
        return server.started
