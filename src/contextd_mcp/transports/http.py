"""Streamable HTTP (``/mcp``) and legacy SSE (``/sse`` + ``/messages/``) for remote agents."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from mcp.server.sse import SseServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.scope_resolver import resolve_scope


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def local_http_caller(options: dict[str, Any]) -> Callable[[Any], Caller | None]:
    """Loopback callers act in the daemon operator's scope (its directory and CONTEXTD_* env)."""
    scope = resolve_scope(Path(options.get("cwd") or os.getcwd()), os.environ)

    def resolve(request: Request) -> Caller | None:
        transport = "sse" if request.url.path.startswith("/messages") else "http"
        return Caller(scope=scope, transport=transport, connection_id=request.headers.get("mcp-session-id", "")[:32])

    return resolve


def _security(host: str, port: int) -> TransportSecuritySettings:
    # DNS-rebinding protection: a browser page on another origin must not reach the daemon.
    hosts = [f"{host}:{port}", f"{host}:*"]
    origins = [f"http://{host}:{port}", f"http://{host}:*"]
    if is_loopback(host):
        hosts += ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        origins += ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def build_app(server: Any, host: str, port: int, max_body: int = 1 << 20) -> Starlette:
    security = _security(host, port)
    streamable = server.streamable_http_app(
        streamable_http_path="/mcp", host=host, transport_security=security, max_request_body_size=max_body
    )
    sse = SseServerTransport("/messages/", security_settings=security, max_request_body_size=max_body)

    async def sse_endpoint(request: Request) -> Response:
        async with sse.connect_sse(request.scope, request.receive, request._send) as (read, write):  # noqa: SLF001
            await server.run(read, write, server.create_initialization_options())
        return Response()

    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        *streamable.routes,
        Route("/sse", endpoint=sse_endpoint, methods=["GET"]),
        Mount("/messages/", app=sse.handle_post_message),
        Route("/healthz", endpoint=health, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=streamable.router.lifespan_context)


class _QuietServer(uvicorn.Server):
    """The daemon owns signal handling; uvicorn must not replace it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(
    server: Any, host: str, port: int, options: dict[str, Any], task_status: Any = anyio.TASK_STATUS_IGNORED
) -> None:
    app = build_app(server, host, port)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", access_log=False)
    uv = _QuietServer(config)

    async def announce() -> None:
        while not uv.started:
            await anyio.sleep(0.01)
        task_status.started(uv)

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await uv.serve()
        tg.cancel_scope.cancel()
