"""One bearer-token check for every HTTP front end (the runner and the MCP streamable-http server).

With an API key set, a request needs `Authorization: Bearer <key>`; otherwise it gets a 401 with
`WWW-Authenticate`. Each front end keeps the 401 body its clients read: the runner answers
`{"detail": ...}` as lean-runner clients expect, the MCP server answers OAuth-style
`{"error", "error_description"}` and a 404 on `/.well-known/oauth-*`, so MCP clients stop looking
for OAuth and show the 401's own words.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send


def bearer_ok(headers: Headers, api_key: str | None) -> bool:
    """True when no API key is configured, or the request carries `Authorization: Bearer <api_key>`."""
    if not api_key:
        return True
    sent = next((value for name, value in headers.raw if name == b"authorization"), b"")
    return hmac.compare_digest(sent, f"Bearer {api_key}".encode())


def runner_refusal() -> Response:
    """The runner's 401: `detail`, as every lean-runner client reads errors."""
    return JSONResponse(
        {"detail": "Missing or wrong API key: send `Authorization: Bearer <key>`."},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def mcp_refusal() -> Response:
    """The MCP server's 401, in the OAuth error shape MCP clients show."""
    return JSONResponse(
        {
            "error": "unauthorized",
            "error_description": "Send the server's API key as `Authorization: Bearer <key>`.",
        },
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="lean-mcp"'},
    )


def _no_oauth() -> Response:
    return JSONResponse(
        {"error": "not_found", "error_description": "This server takes an API key, not OAuth."},
        status_code=404,
    )


class BearerAuth:
    """ASGI middleware: HTTP requests outside `public_paths` need `Authorization: Bearer <api_key>`.

    `refusal` builds the 401; with `no_oauth`, `/.well-known/oauth*` answers 404 before any check.
    """

    def __init__(
        self,
        app: ASGIApp,
        api_key: str,
        *,
        refusal: Callable[[], Response] = runner_refusal,
        public_paths: Collection[str] = (),
        no_oauth: bool = False,
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.refusal = refusal
        self.public_paths = frozenset(public_paths)
        self.no_oauth = no_oauth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            response = self._answer_instead(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _answer_instead(self, scope: Scope) -> Response | None:
        path: str = scope["path"]
        if self.no_oauth and path.startswith("/.well-known/oauth"):
            return _no_oauth()
        if path in self.public_paths or bearer_ok(Headers(scope=scope), self.api_key):
            return None
        return self.refusal()
