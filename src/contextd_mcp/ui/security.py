"""What protects the page: its token cookie, the Host and Origin checks, CSRF tokens, headers.

- Authentication is the HTTP transport's: a bearer token. The login form takes it once and keeps
  it in an HttpOnly, SameSite=Strict cookie scoped to ``/ui``; ``CookieBearer`` turns that cookie
  into the ``Authorization`` header for ``/ui`` requests only, so the SDK's bearer middleware
  verifies it exactly as for ``/mcp`` (revoked and expired tokens included). ``/mcp`` never
  accepts the cookie.
- DNS rebinding: every ``/ui`` request's Host must be one the daemon serves (``/mcp``'s list).
- CSRF: a state-changing request is a POST whose Origin is the page's own (scheme + Host) and
  which carries the per-session token (an HMAC of the cookie under a per-process secret).
- Headers: ``Content-Security-Policy: default-src 'self'`` (no inline script or style, no other
  host), no framing, no sniffing, no referrer to other sites, no caching of pages that hold a tenant's data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from http.cookies import CookieError, SimpleCookie

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "contextd_ui"
PREFIX = "/ui"
COOKIE_MAX_AGE_S = 12 * 3600  # the browser forgets the token after this (the token may expire sooner)
CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make Chromium send "Origin: null" on our own POSTs
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def cookie_token(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:  # a malformed cookie header authenticates nothing
                return None
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


class CookieBearer:
    """ASGI: a ``/ui`` request's token cookie becomes its Authorization header (if it sent none),
    and every ``/ui`` response gets the security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        headers = list(scope["headers"])
        token = cookie_token(headers)
        if token and not any(name == b"authorization" for name, _ in headers):
            headers.append((b"authorization", f"Bearer {token}".encode("latin-1", "replace")))
            scope = {**scope, "headers": headers}

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


class Guard:
    """Host (DNS rebinding), Origin and CSRF checks of the page's requests."""

    def __init__(self, allowed_hosts: Sequence[str]) -> None:
        self._hosts = list(allowed_hosts)
        self._secret = secrets.token_bytes(32)  # per process: a restart logs nobody out, it re-mints

    def host_ok(self, request: Request) -> bool:
        host = request.headers.get("host", "")
        for allowed in self._hosts:
            if host == allowed or (allowed.endswith(":*") and host.startswith(allowed[:-1]) and host[len(allowed) - 1 :].isdigit()):
                return True
        return False

    def same_origin(self, request: Request) -> bool:
        """The POST came from a page of this very origin (browsers send Origin on every POST)."""
        origin = request.headers.get("origin")
        return origin is not None and origin == f"{request.url.scheme}://{request.headers.get('host', '')}"

    def csrf(self, session: str) -> str:
        return hmac.new(self._secret, session.encode("utf-8", "replace"), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: str, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(self.csrf(session), sent)


def session_key(request: Request) -> str:
    """What a CSRF token is bound to: the token cookie, or the loopback opt-in's fixed operator."""
    return cookie_token(list(request.scope["headers"])) or request.headers.get("authorization", "") or "local"
