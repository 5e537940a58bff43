"""HTTP connections that cannot starve the daemon: deadlines, and budgets counted per client.

uvicorn alone counts every open connection against one limit (``limit_concurrency``) before
anyone is authenticated, and gives a request's headers no deadline: 70 idle connections, or
200 slowloris ones, got every token holder a 503 for as long as they stayed open (issue 14).
Here instead:

- a connection must complete each request's headers within ``header_timeout_s`` (from
  connecting, or from the request's first byte) and its body within ``body_timeout_s``;
  between requests uvicorn's keep-alive closes it after ``idle_timeout_s``;
- connections that have made no authenticated request yet share their own budget
  (``max_unauthenticated``); past it the oldest of them are closed, never an authenticated one;
- concurrent requests are counted per token (``max_per_client``), so one client's load
  never refuses another's; unauthenticated requests share a small budget of their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from contextd_mcp.limits import ID_SCAN_BYTES
from contextd_mcp.transports.framing import OversizeMessage, id_in_prefix, parse_line

log = logging.getLogger("contextd_mcp")

# The Authorization header's value -> the client it authenticates (a token id), or None.
Identify = Callable[[bytes | None], str | None]
# A burst of connections is trimmed this long after it arrived, so a client that sends its
# request at once is promoted out of the unauthenticated budget before the oldest are closed.
TRIM_DELAY_S = 0.2
HEADER_BYTES_MAX = 16 * 1024  # h11's bound on one request's headers (a larger one gets 400)


@dataclass(frozen=True)
class HttpLimits:
    header_timeout_s: float = 5.0
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 5.0
    max_unauthenticated: int = 512
    max_unauthenticated_requests: int = 32
    max_per_client: int = 64


class ConnectionBudget:
    """The daemon-wide view: connections not yet authenticated, oldest first."""

    def __init__(self, limits: HttpLimits, identify: Identify) -> None:
        self.limits = limits
        self.identify = identify
        self._pending: OrderedDict[GuardedH11, None] = OrderedDict()
        self._trim_scheduled = False
        self.closed = Counter[str]()  # why connections were closed: header/body timeout, evicted

    def admit(self, conn: GuardedH11) -> None:
        self._pending[conn] = None
        excess = len(self._pending) - self.limits.max_unauthenticated
        if excess > 3 * self.limits.max_unauthenticated:
            self._trim()  # a flood: do not wait for the delay
        elif excess > 0 and not self._trim_scheduled:
            self._trim_scheduled = True
            asyncio.get_running_loop().call_later(TRIM_DELAY_S, self._trim)

    def promote(self, conn: GuardedH11) -> None:
        self._pending.pop(conn, None)

    def forget(self, conn: GuardedH11) -> None:
        self._pending.pop(conn, None)

    def _trim(self) -> None:
        self._trim_scheduled = False
        while len(self._pending) > self.limits.max_unauthenticated:
            oldest, _ = self._pending.popitem(last=False)
            oldest.close("evicted")


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with request deadlines and the unauthenticated budget."""

    budget: ConnectionBudget  # set by ``guarded_protocol``

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._guard: asyncio.TimerHandle | None = None
        self._guard_phase = ""
        self._authenticated = False
        self._seen_request: Any = None
        self._arm("header", self.budget.limits.header_timeout_s)
        self.budget.admit(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.budget.forget(self)
        super().connection_lost(exc)

    def close(self, why: str) -> None:
        self._disarm()
        self.budget.forget(self)
        if not self.transport.is_closing():
            self.budget.closed[why] += 1
            self.transport.close()

    def _track(self) -> None:
        """Follow the request's progress: which deadline runs, and whether it authenticated."""
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            # Bytes of a next request have arrived (uvicorn's keep-alive timer covers silence).
            if self._guard_phase != "header" and self.conn.trailing_data[0]:
                self._arm("header", self.budget.limits.header_timeout_s)
        elif state is h11.SEND_BODY:
            if self._guard_phase != "body":
                self._arm("body", self.budget.limits.body_timeout_s)
        else:
            self._disarm()
        if not self._authenticated and self.scope is not None and self.scope is not self._seen_request:
            self._seen_request = self.scope
            authorization = dict(self.scope["headers"]).get(b"authorization")
            if self.budget.identify(authorization) is not None:
                self._authenticated = True
                self.budget.promote(self)

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._guard_phase = phase
        self._guard = self.loop.call_later(seconds, self.close, f"{phase} timeout")

    def _disarm(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
        self._guard, self._guard_phase = None, ""


def guarded_protocol(budget: ConnectionBudget) -> type[GuardedH11]:
    """The protocol class to hand uvicorn (``Config(http=...)``), bound to ``budget``."""
    return type("GuardedH11", (GuardedH11,), {"budget": budget})


class PerClientLimit:
    """ASGI: at most ``max_per_client`` concurrent requests per token; others are not counted.

    An authenticated request's body is read whole here, up to ``max_body``: a client that
    disconnects mid-body is dropped quietly, one over the cap gets the JSON-RPC error with its
    own id (413), and a malformed message gets the socket's parse error with its id (400),
    before the MCP layer sees any of them.
    """

    def __init__(self, app: ASGIApp, budget: ConnectionBudget, max_body: int) -> None:
        self._app = app
        self._budget = budget
        self._max_body = max_body
        self.in_flight = Counter[str | None]()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limits = self._budget.limits
        client = self._budget.identify(dict(scope["headers"]).get(b"authorization"))
        cap = limits.max_per_client if client is not None else limits.max_unauthenticated_requests
        if self.in_flight[client] >= cap:
            await _busy(send, client is not None, cap)
            return
        self.in_flight[client] += 1
        try:
            if client is not None and scope["method"] in ("POST", "PUT", "PATCH"):
                body = await self._read_body(receive, send)
                if body is None:
                    return
                if scope["path"] == "/mcp" or scope["path"].startswith("/messages"):
                    rejected = parse_line(body)  # the socket's rules, so a bad request's id comes back
                    if isinstance(rejected, bytes):
                        await _respond(send, 400, json.loads(rejected))
                        return
                receive = _replay(body, receive)
            await self._app(scope, receive, send)
        finally:
            self.in_flight[client] -= 1

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None  # gone mid-body: there is nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > self._max_body:
                await _too_large(send, self._max_body, id_in_prefix(b"".join(chunks)[:ID_SCAN_BYTES]))
                return None
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then only http.disconnect, when it comes

    return replay


async def _respond(send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] = []) -> None:  # noqa: B006
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *extra]})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


async def _too_large(send: Send, max_body: int, request_id: int | str | None) -> None:
    message = str(OversizeMessage(max_body, request_id))
    await _respond(send, 413, {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32600, "message": message}})


async def _busy(send: Send, authenticated: bool, cap: int) -> None:
    what = (
        f"this token already has {cap} requests open (CONTEXTD_MAX_CONNECTIONS, per token)"
        if authenticated
        else f"{cap} unauthenticated requests are already open (CONTEXTD_HTTP_MAX_UNAUTHENTICATED_REQUESTS)"
    )
    await _respond(send, 503, {"error": f"too busy: {what}; retry shortly"}, [(b"retry-after", b"1")])
