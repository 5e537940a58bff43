"""The daemon: sole owner of a data directory's store and model (DESIGN.md §1)."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio

from contextd_mcp import __version__, start_gc
from contextd_mcp.paths import DataPaths

if TYPE_CHECKING:  # heavy (pydantic, starlette): imported where they are used
    from contextd_mcp.settings import HttpSettings, Settings
    from contextd_mcp.transports.http_options import HttpAuth
    from contextd_mcp.transports.http_guard import HttpLimits

log = logging.getLogger("contextd_mcp")


class AlreadyRunning(RuntimeError):
    pass


class CannotListen(RuntimeError):
    """The HTTP address cannot be bound (taken, or not this machine's): said in one line, before
    the store and model load, instead of uvicorn's exit inside the task group."""


def acquire_owner_lock(paths: DataPaths) -> IO[str]:
    """Hold an exclusive lock on the data directory for this process's lifetime."""
    handle = open(paths.daemon_lock, "a+")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise AlreadyRunning(f"another contextd-mcp daemon already owns {paths.root}") from None
    return handle


@dataclass(frozen=True)
class ServeOptions:
    """What ``serve`` was asked for beyond the settings (cli.py turns its flags into this)."""

    # HOST, PORT to serve HTTP/SSE on besides the socket (port 0: any free one).
    http: tuple[str, int] | None = None
    # Who may use HTTP; set whenever ``http`` is (cli.py refuses to start otherwise).
    auth: HttpAuth | None = None
    # Stop after this long with no connection (daemons a bridge started); 0: never.
    idle_exit_s: float = 0.0


def _announce(paths: DataPaths, http: tuple[str, int] | None, started: float, ui: bool = False) -> None:
    """The daemon is ready: where it listens goes in daemon.json (for clients) and the log."""
    info = {
        "pid": os.getpid(),
        "version": __version__,
        "socket": str(paths.socket),
        "http": f"http://{http[0]}:{http[1]}" if http else None,
        "started_at": time.time(),
    }
    paths.daemon_info.write_text(json.dumps(info))
    served = "/mcp, /sse, /ui/" if ui else "/mcp, /sse"
    where = str(paths.socket) + (f" and http://{http[0]}:{http[1]} ({served})" if http else "")
    log.info("contextd-mcp %s ready in %.2fs on %s", __version__, time.perf_counter() - started, where)


async def _stop_on_signal(stop_event: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for _ in signals:
            stop_event.set()
            return


def _listen(host: str, port: int) -> socket.socket:
    from contextd_mcp.transports.http_options import bind

    try:
        return bind(host, port)
    except OSError as exc:
        taken = "; another process listens there: pick another port with --http HOST:PORT" if exc.errno == errno.EADDRINUSE else ""
        raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror or exc}{taken}") from None


async def run_daemon(paths: DataPaths, options: ServeOptions | None = None, settings: Settings | None = None) -> None:
    from contextd_mcp.adapters.token_store import FILE_NAME
    from contextd_mcp.settings import Settings
    from contextd_mcp.transports.http_options import HttpAuth

    settings = settings or Settings()
    options = options or ServeOptions()
    http = options.http
    paths.ensure()
    lock = acquire_owner_lock(paths)
    started = time.perf_counter()
    listener = None
    if http is not None:
        try:
            listener = _listen(*http)
        except CannotListen:
            lock.close()
            raise
        http = (http[0], listener.getsockname()[1])  # port 0 means any free one: say which
    if settings.store.embedded:
        from contextd_mcp.adapters.edge_warm import warm

        # The kernel reads the store's files back into the page cache (its last close dropped
        # them) while the SDK, the model and the tools load: the first search finds them there.
        warm(paths.store)
    # After the lock and the port: a taken one fails before the ~1 s of the SDK's and the tools' imports.
    from contextd_mcp.admin import Admin
    from contextd_mcp.container import build
    from contextd_mcp.transports.socket_server import SocketServer

    limits = settings.limits
    access = None
    if http is not None:
        from contextd_mcp.transports.auth import access_from_options

        access = access_from_options(options.auth or HttpAuth(tokens_file=paths.root / FILE_NAME))
    container = build(paths, settings)
    server = container.server()
    ui_parts = _ui_parts(container, settings.diagnostics.ui) if http is not None else None
    stop_event = anyio.Event()

    async def request_stop() -> None:
        stop_event.set()

    socket_server = SocketServer(
        paths.socket,
        server,
        container.status,
        request_stop,
        limits.request_max_bytes,
        runner=container.runner,
        max_connections=limits.max_connections,
        audit=container.audit,
        admin=Admin(container).run,
    )
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(socket_server.serve)
            http_server = None
            http_done = anyio.Event()
            if http is not None:
                from contextd_mcp.transports.http import HttpServing, serve_http

                assert access is not None  # made with the listener, above
                # HTTP's own server: its callers are told by their requests (a token), not by a connection.
                http_mcp = container.server(access.identify)
                serving = HttpServing(
                    http_limits(settings.http, limits.max_connections),
                    limits.request_max_bytes,
                    options.auth.allowed_hosts if options.auth is not None else (),
                    listener,
                    ui_parts,
                )

                async def run_http(task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
                    try:
                        await serve_http(http_mcp, http[0], http[1], serving, task_status=task_status, access=access)
                    finally:
                        http_done.set()

                http_server = await tg.start(run_http)
            _announce(paths, http, started, ui=ui_parts is not None)
            start_gc.settle()  # the start's objects frozen, the collector back on (cli.py paused it)

            tg.start_soon(_stop_on_signal, stop_event)
            tg.start_soon(watch_liveness, paths, socket_server, options.idle_exit_s, stop_event)
            for worker in container.workers:
                tg.start_soon(worker)
            await stop_event.wait()
            log.info("stopping")
            if http_server is not None:
                # Graceful: uvicorn closes connections and runs the app's shutdown itself.
                http_server.should_exit = True
                with anyio.move_on_after(5):
                    await http_done.wait()
            tg.cancel_scope.cancel()
    finally:
        paths.socket.unlink(missing_ok=True)
        paths.daemon_info.unlink(missing_ok=True)
        container.close()
        lock.close()
        log.info("stopped; store flushed")


async def watch_liveness(paths: DataPaths, sockets: Any, idle_exit_s: float, stop_event: anyio.Event) -> None:
    """Stop when the data directory is gone, or (daemons a bridge started) after an idle spell.

    A deleted data directory (a removed checkout, a test's temp dir) would otherwise leave a
    daemon serving a store nobody can reach; an auto-started daemon with no agent connected
    for ``idle_exit_s`` gives its memory back.
    """
    idle_since = time.monotonic()
    while not stop_event.is_set():
        await anyio.sleep(2)
        if not paths.socket.exists():
            log.warning("socket %s is gone (data directory removed?): stopping", paths.socket)
            stop_event.set()
            return
        if sockets.connections > 0:
            idle_since = time.monotonic()
        elif idle_exit_s and time.monotonic() - idle_since > idle_exit_s:
            log.info("no connection for %.0fs: stopping (the next bridge starts a daemon again)", idle_exit_s)
            stop_event.set()
            return


def _ui_parts(container: Any, enabled: bool) -> Any:
    """The web page's parts (served at /ui/ beside /mcp); CONTEXTD_UI=0 serves no page."""
    if not enabled:
        return None
    from contextd_mcp.ui.app import parts_from

    return parts_from(container)


def http_limits(settings: HttpSettings, max_per_client: int) -> HttpLimits:
    """HTTP deadlines and budgets from ``CONTEXTD_HTTP_*``; requests per token from max_connections."""
    from contextd_mcp.transports.http_guard import HttpLimits

    return HttpLimits(**settings.model_dump(), max_per_client=max_per_client)


def configure_logging(log_file: Path | None, level: str = "INFO") -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())
