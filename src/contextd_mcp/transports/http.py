"""Streamable HTTP (``/mcp``) and legacy SSE (``/sse`` + ``/messages/``) for remote agents."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from mcp.server.sse import SseServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from contextd_mcp.env import scope_env
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.scope_resolver import resolve_scope
from contextd_mcp.transports.auth import NO_OAUTH, TOOLSETS_HEADER, HttpAccess, is_loopback
from contextd_mcp.transports.http_guard import (
    HEADER_BYTES_MAX,
    ConnectionBudget,
    HttpLimits,
    Identify,
    PerClientLimit,
    guarded_protocol,
)

__all__ = ["HttpServing", "build_app", "is_loopback", "local_http_caller", "serve_http"]


def local_http_caller(cwd: Path) -> Callable[[Any], Caller | None]:
    """Loopback callers act in the daemon operator's scope (its directory and CONTEXTD_* env)."""
    scope = resolve_scope(cwd, scope_env())

    def resolve(request: Request) -> Caller | None:
        transport = "sse" if request.url.path.startswith("/messages") else "http"
        return Caller(
            scope=scope,
            transport=transport,
            connection_id=request.headers.get("mcp-session-id", "")[:32],
            toolsets=request.headers.get(TOOLSETS_HEADER),
        )

    return resolve


def _security(host: str, port: int, extra_hosts: Sequence[str] = ()) -> TransportSecuritySettings:
    # DNS-rebinding protection: a browser page on another origin must not reach the daemon.
    # On a non-loopback bind the operator names the Host values clients use (--allowed-host).
    hosts = [f"{host}:{port}", f"{host}:*"]
    for name in extra_hosts:
        hosts += [name] if ":" in name.rsplit("]", 1)[-1] else [name, f"{name}:*"]
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    if is_loopback(host):
        hosts += ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        origins += ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


class _SseEndpoint:
    """An ASGI app (not a request handler), so it can sit behind the SDK's auth middleware."""

    def __init__(self, sse: SseServerTransport, server: Any) -> None:
        self._sse = sse
        self._server = server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async with self._sse.connect_sse(scope, receive, send) as (read, write):
            await self._server.run(read, write, self._server.create_initialization_options())


def build_app(
    server: Any,
    host: str,
    port: int,
    max_body: int = 1 << 20,
    access: HttpAccess | None = None,
    allowed_hosts: Sequence[str] = (),
    ui: Any = None,
) -> Starlette:
    """``ui``: the web page's parts (ui/app.py ``UiParts``), served under /ui/ when given."""
    security = _security(host, port, allowed_hosts)
    access = access or HttpAccess(verifier=None)
    # No SDK auth settings: they publish OAuth metadata naming an authorization server this
    # daemon is not. Our middleware authenticates every request, and RequireToken guards each route.
    streamable = server.streamable_http_app(
        streamable_http_path="/mcp", host=host, transport_security=security, max_request_body_size=max_body,
    )
    sse = SseServerTransport("/messages/", security_settings=security, max_request_body_size=max_body)

    sse_endpoint = _SseEndpoint(sse, server)

    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True})

    (mcp_route,) = streamable.routes  # /mcp, and nothing else without SDK auth settings
    routes = [
        Route("/mcp", endpoint=access.require(mcp_route.endpoint)),
        Route("/sse", endpoint=access.require(sse_endpoint), methods=["GET"]),
        Mount("/messages/", app=access.require(sse.handle_post_message)),
        Route("/healthz", endpoint=health, methods=["GET"]),
    ]
    middleware = access.middleware()
    if ui is not None:
        # The page (ui/app.py UiParts) brings its routes and its cookie middleware; this layer
        # serves them without importing the page.
        routes += ui.routes(access, security.allowed_hosts)
        middleware = [*ui.middleware(), *middleware]  # outermost: the cookie is read before auth
    # Authenticates (from the Authorization header) every route; RequireToken refuses on the guarded ones.
    # A client refused with a 401 may still guess OAuth endpoints (Claude Code registers a client
    # at /register): their 404 says what this server wants instead of a bare "Not Found".
    handlers = {404: _not_found} if access.verifier is not None else {}
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=streamable.router.lifespan_context,
        exception_handlers=handlers,
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(f"{request.url.path} not found. {NO_OAUTH}", status_code=404)


def _identify(access: HttpAccess | None) -> Identify:
    """Which client a request's Authorization header authenticates: a token id, or None."""
    if access is None or access.verifier is None:
        return lambda _: "local"  # open loopback: every caller is the operator
    store = access.verifier.store

    def identify(authorization: bytes | None) -> str | None:
        if not authorization or authorization[:7].lower() != b"bearer ":
            return None
        entry = store.lookup(authorization[7:].strip().decode("latin-1"))
        return None if entry is None else entry.id

    return identify


class _QuietServer(uvicorn.Server):
    """The daemon owns signal handling; uvicorn must not replace it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class HttpServing:
    """How ``serve_http`` serves: what the daemon settled from its settings and ``serve``'s flags."""

    limits: HttpLimits
    max_body: int = 1 << 20
    allowed_hosts: tuple[str, ...] = ()
    # Bound before the store and model load (daemon.py), so a taken port fails fast.
    listener: socket.socket | None = None
    # The web page's parts (ui/app.py), served at /ui/ beside /mcp; None serves no page.
    ui: Any = None


async def serve_http(
    server: Any,
    host: str,
    port: int,
    serving: HttpServing,
    task_status: Any = anyio.TASK_STATUS_IGNORED,
    access: HttpAccess | None = None,
) -> None:
    max_body = serving.max_body
    app = build_app(server, host, port, max_body, access, serving.allowed_hosts, serving.ui)
    limits = serving.limits
    budget = ConnectionBudget(limits, _identify(access))
    # No global limit_concurrency: it counted idle, unauthenticated connections against everyone.
    config = uvicorn.Config(
        PerClientLimit(app, budget, max_body),
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        http=guarded_protocol(budget),
        timeout_keep_alive=limits.idle_timeout_s,  # type: ignore[arg-type]  # a float works
        h11_max_incomplete_event_size=HEADER_BYTES_MAX,
    )
    uv = _QuietServer(config)

    async def announce() -> None:
        while not uv.started:
            await anyio.sleep(0.01)
        task_status.started(uv)

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await uv.serve(sockets=[serving.listener] if serving.listener is not None else None)
        tg.cancel_scope.cancel()
