"""The daemon's unix socket: each connection is one MCP session (or a control request)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import SocketAttribute, SocketStream

from contextd_mcp import __version__, limits
from contextd_mcp.errors import ERROR_META, AdminError
from contextd_mcp.mcp import toolsets
from contextd_mcp.mcp.caller import CURRENT_CALLER, local_caller
from contextd_mcp.transports import handoff
from contextd_mcp.transports import handoff_wire as wire
from contextd_mcp.transports.framing import jsonrpc_streams
from contextd_mcp.transports.hello import MAX_HELLO_BYTES, PROTOCOL
from contextd_mcp.transports.peer import PeerRefused, check_peer, peer_of

log = logging.getLogger("contextd_mcp")


async def _read_hello(stream: SocketStream) -> tuple[dict[str, Any], bytes]:
    buffer = b""
    with anyio.fail_after(10):
        while b"\n" not in buffer:
            chunk = await stream.receive(4096)
            buffer += chunk
            if len(buffer) > MAX_HELLO_BYTES:
                raise ValueError("hello too large")
    line, rest = buffer.split(b"\n", 1)
    message = json.loads(line)
    if not isinstance(message, dict) or message.get("contextd") != PROTOCOL:
        raise ValueError("not a contextd hello (protocol mismatch: restart the daemon with `contextd-mcp stop`)")
    if not isinstance(message.get("cwd", ""), str) or not isinstance(message.get("env") or {}, dict):
        raise ValueError("hello: cwd must be a string and env an object")
    return message, rest


def _toolsets(env: dict[str, str]) -> str | None:
    """The connection's own toolsets (its bridge's --toolsets / CONTEXTD_TOOLSETS), checked now
    so a bad name fails the bridge at connect time, with the names it could have used."""
    raw = env.get("CONTEXTD_TOOLSETS")
    if raw is not None:
        toolsets.parse(raw)
    return raw


async def _reply(stream: SocketStream, body: dict[str, Any]) -> None:
    await stream.send((json.dumps(body, default=str) + "\n").encode())


def _cwd(hello: dict[str, Any]) -> Path:
    return Path(str(hello.get("cwd") or "/"))


def _connection_id(resume: object) -> str:
    """A bridge sends a secret drawn once per bridge: reconnected after a restart, it gets the
    same connection id, so the session it started is found again (sessions.py). Derived, so
    the id (in the audit log, the session record) never gives the secret away; without one,
    a fresh random id."""
    if isinstance(resume, str) and len(resume) == 32 and all(c in "0123456789abcdef" for c in resume):
        return hashlib.sha256(b"contextd-resume:" + resume.encode()).hexdigest()[:12]
    return uuid.uuid4().hex[:12]


def _scope_error(exc: Exception) -> str:
    """One line naming the part and the rule (a pydantic error would span four)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'scope'} {e.get('input')!r}: {str(e['msg']).removeprefix('Value error, ')}"
        for e in errors()
    )


_PEER_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, ConnectionError)


def _peer_gone(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_peer_gone(e) for e in exc.exceptions)
    return isinstance(exc, _PEER_GONE)


def _quiet_cancelled_reads(loop: asyncio.AbstractEventLoop) -> None:
    """anyio's unix-socket read waits on a future that a cancelled ``receive`` may have settled
    just as data arrived; the event loop then logs a harmless InvalidStateError traceback for
    every such peer. Those are logged at debug level; everything else as before."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        callback = getattr(context.get("handle"), "_callback", None)
        if (
            isinstance(context.get("exception"), asyncio.InvalidStateError)
            and isinstance(getattr(callback, "__self__", None), asyncio.Future)
            and getattr(callback, "__name__", "") == "set_result"
        ):
            log.debug("a cancelled socket read settled late (harmless)")
            return
        loop.default_exception_handler(context)

    if loop.get_exception_handler() is None:
        loop.set_exception_handler(handler)


def _handoff_asked(hello: dict[str, Any], rest: bytes) -> bool:
    """A bridge that can hand its stdio over asks in its hello, and sends nothing more until
    the reply (a relaying peer that writes MCP lines at once gets the relay)."""
    return hello.get(wire.FIELD) == wire.VERSION and not rest and hasattr(socket, "MSG_CMSG_CLOEXEC")


async def _end_with_bridge(stream: SocketStream, scope: anyio.CancelScope) -> None:
    """The bridge is the process the client manages: when it exits (even killed), the session
    ends and the client's pipes are closed here too. It sends nothing after the hand-off."""
    try:
        await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    scope.cancel()


class SocketServer:
    def __init__(
        self,
        path: Path,
        server: Any,
        status: Callable[[], dict[str, Any]],
        request_stop: Callable[[], Awaitable[None]],
        max_message_bytes: int,
        runner: Any = None,
        max_connections: int = 64,
        audit: Any = None,
        admin: Callable[[dict[str, Any]], list[str]] | None = None,
    ) -> None:
        self._path = path
        # The data directory owner's commands (admin.py: export, import, memories); None: refused.
        self._admin = admin
        self._server = server
        # The ToolRunner, for one-shot "call" requests (the Claude Code hook); None: refused.
        self._runner = runner
        self._status = status
        self._request_stop = request_stop
        self._max = max_message_bytes
        self._max_connections = max_connections
        # The AuditLog port: refused peers are recorded there (who and why, never what they sent).
        self._audit = audit
        self.connections = 0
        # Of those, the sessions served on the client's own pipes (handoff.py), not relayed.
        self.handed_off = 0

    async def serve(self, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        _quiet_cancelled_reads(asyncio.get_running_loop())
        self._path.unlink(missing_ok=True)
        listener = await anyio.create_unix_listener(self._path)
        os.chmod(self._path, 0o600)
        task_status.started()
        async with listener:
            await listener.serve(self._handle)

    async def _handle(self, stream: SocketStream) -> None:
        async with stream:
            try:
                if await self._refused(stream):
                    return
                await self._handle_hello(stream)
            except Exception as exc:  # one connection's failure ends that connection, never the daemon
                # A peer that hangs up is ordinary; anything else is worth a line (never the content).
                level = logging.DEBUG if _peer_gone(exc) else logging.WARNING
                log.log(level, "socket connection ended by %s", type(exc).__name__)
                log.debug("socket connection failure", exc_info=True)

    async def _refused(self, stream: SocketStream) -> bool:
        raw = stream.extra(SocketAttribute.raw_socket)  # noqa: S610 - anyio stream attributes, not Django
        try:
            peer = peer_of(raw)
            check_peer(peer)
        except PeerRefused as exc:
            reason = str(exc)
        except OSError as exc:
            peer, reason = None, f"cannot identify the connecting process: {exc.strerror}"
        else:
            return False
        fields = {"peer_pid": peer.pid, "peer_uid": peer.uid} if peer else {}
        log.warning("socket peer refused (%s): %s", fields, reason)
        if self._audit is not None:
            self._audit.record({"event": "socket_peer_refused", "outcome": "refused", "transport": "socket",
                                "reason": reason, **fields})
        with anyio.move_on_after(1):
            await self._safe_reply(stream, {"ok": False, "error": f"refused: {reason}"})
        return True

    async def _handle_hello(self, stream: SocketStream) -> None:
        try:
            hello, rest = await _read_hello(stream)
        except (ValueError, TimeoutError, anyio.EndOfStream, json.JSONDecodeError, OSError) as exc:
            await self._safe_reply(stream, {"ok": False, "error": f"bad hello: {exc}"})
            return
        op = hello.get("op")
        if op == "status":
            await _reply(stream, {"ok": True, "pid": os.getpid(), "version": __version__, **self._status(),
                                  "connections": self.connections, "handed_off": self.handed_off})
        elif op == "stop":
            await _reply(stream, {"ok": True, "pid": os.getpid()})
            await self._request_stop()
        elif op == "mcp":
            await self._serve_mcp(stream, hello, rest)
        elif op == "call" and self._runner is not None:
            await self._serve_call(stream, hello)
        elif op == "admin" and self._admin is not None:
            await self._serve_admin(stream, hello)
        else:
            await _reply(stream, {"ok": False, "error": f"unknown op {op!r}"})

    async def _safe_reply(self, stream: SocketStream, body: dict[str, Any]) -> None:
        try:
            await _reply(stream, body)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass

    async def _serve_mcp(self, stream: SocketStream, hello: dict[str, Any], rest: bytes) -> None:
        if self.connections >= self._max_connections:
            await self._safe_reply(stream, {"ok": False, "error": (
                f"too many open sessions ({self.connections}, CONTEXTD_MAX_CONNECTIONS={self._max_connections}); "
                "close some agents or raise the limit and restart the daemon")})
            return
        env = {str(k): str(v) for k, v in (hello.get("env") or {}).items()}
        try:
            toolsets = _toolsets(env)
        except ValueError as exc:
            await self._safe_reply(stream, {"ok": False, "error": f"--toolsets / CONTEXTD_TOOLSETS: {exc}"})
            return
        try:
            caller = local_caller("socket", _cwd(hello), env, _connection_id(hello.get("resume")), toolsets)
        except (ValueError, OSError) as exc:
            await self._safe_reply(stream, {"ok": False, "error": f"cannot resolve scope: {_scope_error(exc)}"})
            return
        scope = caller.scope
        offer = {wire.FIELD: wire.VERSION} if _handoff_asked(hello, rest) else {}
        await _reply(stream, {"ok": True, "pid": os.getpid(), "version": __version__, "scope": scope.fields(), **offer})
        CURRENT_CALLER.set(caller)
        self.connections += 1
        try:
            if offer:
                await self._serve_handed(stream, hello)
            else:
                async with jsonrpc_streams(stream, self._max, rest) as (read, write):
                    await self._server.run(read, write, self._server.create_initialization_options())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
            pass
        finally:
            self.connections -= 1
            if self._runner is not None:  # what this connection enabled ends with it
                self._runner.enabled.forget(caller.connection_id)

    async def _serve_handed(self, stream: SocketStream, hello: dict[str, Any]) -> None:
        """The session on the client's own pipes (handoff.py); the socket carries the bridge's copy."""
        try:
            handed = await handoff.receive(stream, self._max)
        except (handoff.HandoffRefused, ValueError, TimeoutError, OSError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) else f"handoff: {type(exc).__name__}"
            log.warning("stdio hand-off refused (bridge pid %s): %s", hello.get("pid"), reason)
            if self._audit is not None:
                self._audit.record({"event": "handoff_refused", "outcome": "refused", "transport": "socket",
                                    "reason": reason})
            await self._safe_reply(stream, {"ok": False, "error": reason})
            return
        tee = handoff.Tee(stream)
        stdio = handoff.HandedStdio(handed, tee)
        self.handed_off += 1
        log.info("serving the client's stdio directly (handed off by bridge pid %s)", hello.get("pid"))
        try:
            await _reply(stream, {"ok": True})
            async with anyio.create_task_group() as tg:
                tg.start_soon(_end_with_bridge, stream, tg.cancel_scope)
                async with jsonrpc_streams(stdio, self._max, handed.prefix, handed.hidden, tee.sent) as (read, write):
                    await self._server.run(read, write, self._server.create_initialization_options())
                await tee.send(wire.EOF if stdio.eof else wire.END)
                tg.cancel_scope.cancel()
        finally:
            self.handed_off -= 1
            await stdio.aclose()

    async def _serve_admin(self, stream: SocketStream, hello: dict[str, Any]) -> None:
        """One owner command (the socket is the owner's only, peers checked): ``{"ok": true}``,
        then its lines, then the end of the stream; or ``{"ok": false, "error": ...}``."""
        request = hello.get("request") if isinstance(hello.get("request"), dict) else {}
        self.connections += 1  # a long import keeps an idle-exiting daemon up
        try:
            lines = await anyio.to_thread.run_sync(self._admin, request)  # type: ignore[arg-type]
        except (AdminError, KeyError) as exc:
            await self._safe_reply(stream, {"ok": False, "error": str(exc)})
            return
        finally:
            self.connections -= 1
        await _reply(stream, {"ok": True})
        for line in lines:
            await stream.send((line + "\n").encode())

    async def _serve_call(self, stream: SocketStream, hello: dict[str, Any]) -> None:
        """One tool call, one JSON reply line: what the stdlib-only ``hook`` command speaks.

        It goes through the ToolRunner like any MCP call (validation, scrubbing, caps, audit),
        as transport "hook". The caller's connection id is derived from the Claude Code
        session id, so SessionStart and a later SessionEnd find the same contextd session.
        ``transcript_path`` travels only here, on the owner-only socket, never as a tool argument.
        """
        env = {str(k): str(v) for k, v in (hello.get("env") or {}).items()}
        hook: dict[str, Any] = hello["hook"] if isinstance(hello.get("hook"), dict) else {}
        client_session = str(hook.get("session_id") or "")[:128]
        extra = {k: str(hook[k])[:4096] for k in ("transcript_path", "event") if hook.get(k)}
        connection = f"claude-code:{client_session}" if client_session else uuid.uuid4().hex[:12]
        # The hook names the toolsets of the tools it calls; a bad one fails the call, named.
        toolsets = str(hello.get("toolsets") or env.get("CONTEXTD_TOOLSETS") or "")[: limits.TOOLSETS_SPEC_MAX + 1] or None
        try:
            caller = local_caller("hook", _cwd(hello), env, connection, toolsets, extra)
        except (ValueError, OSError) as exc:
            await self._safe_reply(stream, {"ok": False, "error": f"cannot resolve scope: {_scope_error(exc)}"})
            return
        arguments = hello.get("arguments") if isinstance(hello.get("arguments"), dict) else {}
        result = await self._runner.call(str(hello.get("tool") or ""), arguments, caller)
        first = result.content[0] if result.content else None
        text = first.text if isinstance(first, types.TextContent) else ""
        reply = {"ok": True, "is_error": bool(result.is_error), "result": result.structured_content, "text": text}
        if result.is_error:  # the kind as a value (mcp/server.py ERROR_META): hooks match on it
            reply["error"] = (result.meta or {}).get(ERROR_META)
        await self._safe_reply(stream, reply)
