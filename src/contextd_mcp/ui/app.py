"""The page's routes (mounted at ``/ui`` by transports/http.py). Each handler: check the request
(ui/security.py), find the caller, act through ui/actions.py, render with ui/pages.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.middleware import Middleware
from starlette.routing import Route

from contextd_mcp.errors import ContextdError
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.paths import DataPaths
from contextd_mcp.services.memory_curation import MemoryCuration
from contextd_mcp.services.record_browser import RecordBrowser
from contextd_mcp.transports.auth import READ_SCOPE, HttpAccess
from contextd_mcp.ui import views
from contextd_mcp.ui.actions import ActionError, Actions, ui_caller
from contextd_mcp.ui.pages import layout, login_form
from contextd_mcp.ui.security import COOKIE, COOKIE_MAX_AGE_S, Guard, session_key

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"ui.js": "text/javascript", "ui.css": "text/css", "favicon.svg": "image/svg+xml"}
FORM_BYTES_MAX = 64 * 1024  # one form post (a memory's content is at most 8000 characters)
FORM_FIELDS_MAX = 32


@dataclass
class UiParts:
    """What the page needs of the daemon (container.py has each of them)."""

    actions: Actions
    curation: MemoryCuration
    browser: RecordBrowser
    paths: DataPaths

    def routes(self, access: HttpAccess, allowed_hosts: list[str]) -> list[Route]:
        return ui_routes(self, access, allowed_hosts)

    def middleware(self) -> list[Middleware]:
        """The cookie turned into the bearer header, for /ui requests only (ui/security.py)."""
        from contextd_mcp.ui.security import CookieBearer

        return [Middleware(CookieBearer)]


@dataclass
class Ctx:
    request: Request
    caller: Caller
    csrf: str
    parts: UiParts
    form: dict[str, str]

    def page(self, title: str, body: str, active: str = "") -> HTMLResponse:
        who = f"{self.caller.scope.tenant}" + (" (read-only)" if self.caller.read_only else "")
        return HTMLResponse(layout(title, body, self.csrf, active, who))


Handler = Callable[[Ctx], Awaitable[Response]]


class UiApp:
    def __init__(self, parts: UiParts, access: HttpAccess, allowed_hosts: list[str]) -> None:
        self.parts = parts
        self.access = access
        self.guard = Guard(allowed_hosts)

    def routes(self) -> list[Route]:
        page = self._page
        return [
            Route("/ui", endpoint=lambda _: RedirectResponse("/ui/", 303)),
            Route("/ui/", endpoint=page(views.dashboard)),
            Route("/ui/login", endpoint=self.login, methods=["GET", "POST"]),
            Route("/ui/logout", endpoint=page(views.logout, write=True), methods=["POST"]),
            Route("/ui/static/{name}", endpoint=self.static),
            Route("/ui/memories", endpoint=page(views.memories)),
            Route("/ui/memories/merge", endpoint=page(views.memory_merge, write=True), methods=["POST"]),
            Route("/ui/memories/{memory_id}", endpoint=page(views.memory)),
            Route("/ui/memories/{memory_id}/edit", endpoint=page(views.memory_edit, write=True), methods=["POST"]),
            Route("/ui/memories/{memory_id}/delete", endpoint=page(views.memory_delete, write=True), methods=["POST"]),
            Route("/ui/kind/{kind}", endpoint=page(views.kind_list)),
            Route("/ui/kind/{kind}/{record_id}", endpoint=page(views.kind_view)),
            Route("/ui/kind/{kind}/{record_id}/edit", endpoint=page(views.kind_edit, write=True), methods=["POST"]),
            Route("/ui/kind/{kind}/{record_id}/delete", endpoint=page(views.kind_delete, write=True), methods=["POST"]),
            Route("/ui/sessions", endpoint=page(views.sessions)),
            Route("/ui/sessions/{session_id}", endpoint=page(views.session)),
        ]

    def _authenticated(self, request: Request) -> bool:
        if self.access.verifier is None:
            return True  # the operator's explicit loopback opt-in, as for /mcp
        user = request.scope.get("user")
        auth = request.scope.get("auth")
        return isinstance(user, AuthenticatedUser) and auth is not None and READ_SCOPE in auth.scopes

    async def _checked(self, request: Request, write: bool) -> Response | dict[str, str]:
        """The form of an acceptable request, or the response refusing it. Nothing of a POST's
        body is read before its Origin and its token are known good."""
        if not self.guard.host_ok(request):
            return Response("Invalid Host header", 421)
        if write and not self.guard.same_origin(request):
            return Response("refused: a state-changing request must come from this page (Origin)", 403)
        if not self._authenticated(request):
            body = layout("Log in", login_form("A token is needed to see this page."), None)
            return HTMLResponse(body, 401)
        if not write:
            return {}
        form = await read_form(request)
        if form is None:
            return Response(f"refused: a form is at most {FORM_BYTES_MAX} bytes of {FORM_FIELDS_MAX} fields", 413)
        if not self.guard.csrf_ok(session_key(request), form.get("csrf")):
            return Response("refused: the form's CSRF token is missing or wrong; reload the page", 403)
        return form

    def _page(self, handler: Handler, write: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            checked = await self._checked(request, write)
            if isinstance(checked, Response):
                return checked
            project = checked.get("project") or request.query_params.get("project") or None
            try:
                caller = ui_caller(self.access, request, project)
            except ContextdError as exc:
                return HTMLResponse(layout("Refused", f'<p class="error">{_e(f"{exc.kind}: {exc.message}")}</p>', None), 403)
            ctx = Ctx(request, caller, self.guard.csrf(session_key(request)), self.parts, checked)
            try:
                return await handler(ctx)
            except ActionError as exc:
                status = 404 if str(exc).startswith("not_found") else 400
                return HTMLResponse(layout("Error", f'<p class="error" id="error">{_e(str(exc))}</p>', ctx.csrf), status)

        return endpoint

    async def login(self, request: Request) -> Response:
        if not self.guard.host_ok(request):
            return Response("Invalid Host header", 421)
        if request.method == "GET" or self.access.verifier is None:
            return HTMLResponse(layout("Log in", login_form(), None))
        if not self.guard.same_origin(request):
            return Response("refused: a login must come from this page (Origin)", 403)
        form = await read_form(request)
        token = (form or {}).get("token", "").strip()
        entry = self.access.verifier.store.lookup(token) if token else None
        if entry is None:
            return HTMLResponse(layout("Log in", login_form("That token is not valid (unknown, revoked or expired)."), None), 401)
        response = RedirectResponse("/ui/", 303)
        response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, path="/ui", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        media = STATIC_FILES.get(name)
        if media is None or not self.guard.host_ok(request):
            return Response("not found", 404)
        return FileResponse(STATIC / name, media_type=media)


async def read_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form, read up to ``FORM_BYTES_MAX`` (None past it, or past ``FORM_FIELDS_MAX``
    fields): cookie-authenticated requests are not counted by the HTTP guard's body cap."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_BYTES_MAX:
            return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=FORM_FIELDS_MAX)
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)


def _e(text: str) -> str:
    from html import escape

    return escape(text)


def ui_routes(parts: UiParts, access: HttpAccess, allowed_hosts: list[str]) -> list[Route]:
    return UiApp(parts, access, allowed_hosts).routes()


def parts_from(container: Any) -> UiParts:
    """The page's parts from a built ``Container`` (its store handles come from the container's store)."""
    from contextd_mcp.ports.scoped_store import Stores
    from contextd_mcp.services.backing import Backing

    stores = Stores(container.store)
    return UiParts(
        actions=Actions(container.runner, container.audit),
        curation=MemoryCuration(Backing.of(stores, container.embedder, container.scrubber), container.embedder),
        browser=RecordBrowser(stores),
        paths=container.paths,
    )
