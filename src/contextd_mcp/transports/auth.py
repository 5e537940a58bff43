"""Bearer-token auth for Streamable HTTP and SSE, on the MCP SDK's own hooks.

The SDK's ``BearerAuthBackend`` asks our ``TokenVerifier`` about the ``Authorization``
header of every request and ``RequireAuthMiddleware`` answers 401 before any MCP
message is read, so no tool can run without a valid token. The verified token's
claims (tenant, team, project, agent, read-only) become the call's ``Caller``:
an HTTP client never names its own tenant, nor which agent it is (the token holds the
agent's id, fixed when the token was made).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from mcp.server.auth.provider import AccessToken
from pydantic import ValidationError
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.types import ASGIApp, Receive, Scope as AsgiScope, Send

from contextd_mcp.adapters.token_store import TokenEntry, TokenStore
from contextd_mcp.errors import Denied
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.models.scope import Scope
from contextd_mcp.transports.http_options import (  # noqa: F401 - re-exported, where callers look
    AuthConfigError,
    HttpAuth,
    check_http_auth,
    is_loopback,
)

READ_SCOPE = "contextd:read"
WRITE_SCOPE = "contextd:write"
# A token that pins no team / project lets its holder choose them per request (within its tenant).
TEAM_HEADER = "x-contextd-team"
PROJECT_HEADER = "x-contextd-project"
# The toolsets this client lists and may call ("memory,policy", "all"; mcp/toolsets.py).
TOOLSETS_HEADER = "x-contextd-toolsets"


class StoreTokenVerifier:
    """``mcp.server.auth.provider.TokenVerifier`` over the hashed tokens file."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    async def verify_token(self, token: str) -> AccessToken | None:
        entry = self.store.lookup(token)
        if entry is None:
            return None
        return AccessToken(
            token=token,
            # Unique per token: the SDK binds an MCP session to it, so a session opened with
            # one token cannot be driven with another.
            client_id=f"contextd-token-{entry.id}",
            scopes=[READ_SCOPE] if entry.read_only else [READ_SCOPE, WRITE_SCOPE],
            # The SDK's middleware refuses an expired token by itself too (per request).
            expires_at=None if entry.expires_at is None else int(entry.expires_at),
            claims=_claims(entry),
        )


def _claims(entry: TokenEntry) -> dict[str, Any]:
    return {
        "token_id": entry.id,
        "tenant": entry.tenant,
        "team": entry.team,
        "project": entry.project,
        "agent": entry.agent,
        "agent_id": entry.agent_id,
        "read_only": entry.read_only,
    }


def _transport(request: Any) -> str:
    return "sse" if request.url.path.startswith("/messages") else "http"


def caller_from_token(request: Any) -> Caller:
    """The caller of an authenticated request; Denied if the request carries no verified token."""
    user = request.scope.get("user")
    if not isinstance(user, AuthenticatedUser) or not user.access_token.claims:
        raise Denied("this request carries no verified token; no tool can run")
    claims = user.access_token.claims
    if claims["agent"] and not claims.get("agent_id"):
        # Made before agents were bound by id: resolving its name now would let the client's
        # project header pick which agent of that name it is. Refused until recreated.
        raise Denied(
            f"this token names agent {claims['agent']!r} by name only (made by an older contextd); "
            f"create a new one with `contextd-mcp token create --agent {claims['agent']}` and revoke this one"
        )
    headers = request.headers
    try:
        scope = Scope(
            tenant=claims["tenant"],
            team=claims["team"] or headers.get(TEAM_HEADER) or "default",
            project=claims["project"] or headers.get(PROJECT_HEADER) or "default",
        )
    except ValidationError:
        raise Denied(
            f"{TEAM_HEADER} / {PROJECT_HEADER}: must be 1-64 characters of letters, digits, '.', '_' or '-'"
        ) from None
    transport = _transport(request)
    # The MCP session: a header on Streamable HTTP, the query string on SSE's /messages/.
    session = request.query_params.get("session_id", "") if transport == "sse" else headers.get("mcp-session-id", "")
    return Caller(
        scope=scope,
        transport=transport,
        connection_id=session[:32],
        read_only=bool(claims["read_only"]),
        agent=claims["agent"],
        agent_id=claims.get("agent_id"),
        extra={"token": claims["token_id"]},
        toolsets=headers.get(TOOLSETS_HEADER),
    )


@dataclass
class HttpAccess:
    """How HTTP callers are identified: by token, or (explicit opt-in, loopback) as the operator."""

    verifier: StoreTokenVerifier | None
    local_caller: Callable[[Any], Caller | None] | None = None

    def caller(self, request: Any) -> Caller | None:
        if self.verifier is not None:
            return caller_from_token(request)
        return self.local_caller(request) if self.local_caller else None

    def identify(self, ctx: Any) -> Caller:
        """The HTTP server's one way to know who calls (mcp/server.py ``Identify``): from the
        request's token, or the operator on an open loopback; raises Denied otherwise."""
        from contextd_mcp.mcp.server import no_identity

        request = getattr(ctx, "request", None)
        caller = self.caller(request) if request is not None else None
        if caller is None:
            raise no_identity()
        return caller

    def middleware(self) -> list[Middleware]:
        """Authenticates (does not yet require) every request, as the SDK's sse_app does."""
        if self.verifier is None:
            return []
        return [
            Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(self.verifier)),
            Middleware(AuthContextMiddleware),
        ]

    def require(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind a 401 for requests without a valid token."""
        return app if self.verifier is None else RequireToken(app)


_HOW = (
    "create one with `contextd-mcp token create --tenant NAME` on the server's machine and send it as "
    "'Authorization: Bearer <token>'"
)
NO_OAUTH = f"This server takes bearer tokens, not OAuth: {_HOW}."
# JSON-RPC's range for server errors; the MCP SDK clients show an error body's message as the
# failure of the request that got it (so the user reads what to do, not "error response").
_UNAUTHORIZED = -32001


class RequireToken:
    """A 401 before any MCP message is read, saying that a bearer token is needed and how to make
    one. The ``WWW-Authenticate: Bearer`` challenge carries ``error`` and ``error_description``
    (RFC 6750) and no ``resource_metadata``: this daemon is no OAuth resource server, and a client
    sent to discover an authorization server that does not exist reports that chase instead
    ("Invalid OAuth error response", a resource mismatch) and never says a token is missing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if isinstance(user, AuthenticatedUser):
            credentials = scope.get("auth")
            if credentials is not None and READ_SCOPE in credentials.scopes:
                await self.app(scope, receive, send)
                return
        sent = any(name == b"authorization" for name, _ in scope.get("headers", ()))
        problem = "the bearer token is not valid (unknown, revoked or expired)" if sent else "no bearer token was sent"
        await _refuse(send, f"{problem}; this server needs one: {_HOW}")


async def _refuse(send: Send, description: str) -> None:
    challenge = f'Bearer realm="contextd-mcp", error="invalid_token", error_description="{description}"'
    body = json.dumps(
        {"jsonrpc": "2.0", "id": None, "error": {"code": _UNAUTHORIZED, "message": f"unauthorized: {description}"}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def access_from_options(auth: HttpAuth) -> HttpAccess:
    """Closed unless the operator opted in: tokens from ``auth.tokens_file``, or open loopback."""
    if auth.tokens_file is None:
        from contextd_mcp.transports.http import local_http_caller

        return HttpAccess(verifier=None, local_caller=local_http_caller(auth.cwd))
    return HttpAccess(verifier=StoreTokenVerifier(TokenStore(auth.tokens_file)))
