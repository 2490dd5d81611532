"""`lean-mcp runner --host 127.0.0.1 --port 8000`: the lean-runner / Kimina compatible HTTP runner.

Serves `lean_mcp._http_runner` through `server.listen` (the one listen / shutdown path). Logs go
to stderr; SIGINT/SIGTERM stop it cleanly (requests in flight get a few seconds, then the job
service and its Lean processes are closed; jobs still queued stay in the store and resume on
the next start); the exit status after a signal is 0. `--port 0` picks a free port and logs it.
"""

from __future__ import annotations

import argparse
import logging
import socket

from .._http_runner import create_app
from .._sandbox import unsandboxed_warning
from .._server import listen
from .._server.runtime import open_service, settle_heap
from .._settings import Settings

logger = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Serve until stopped; 0 on a clean stop, 1 if the server never started.

    The job service (and its backend) is opened before the server accepts anything, so a
    configuration problem ends the command with its message (exit 2) instead of a startup traceback.
    """
    sock = listen.listen_socket(settings.host, settings.port)
    try:
        return listen.run(lambda shutdown: _serve(settings, sock, shutdown))
    finally:
        sock.close()


async def _serve(settings: Settings, sock: socket.socket, shutdown: listen.Shutdown) -> int:
    warning = unsandboxed_warning(settings)
    if warning:
        logger.warning("%s", warning)
    async with open_service(settings) as service:
        host, port = sock.getsockname()[:2]
        auth = "bearer token required" if settings.api_key else "no authentication"
        logger.info("lean-mcp runner listening on http://%s:%d (%s)", host, port, auth)
        app = create_app(service, settings)
        settle_heap()
        access_log = settings.log_level == "DEBUG"
        served = await listen.serve_http(app, settings, sock, shutdown, access_log=access_log, lifespan="off")
    return 0 if served else 1
