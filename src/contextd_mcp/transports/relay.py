"""The stdio bridge's relay: the client's MCP lines to the daemon and back, across restarts.

Standard library only (its start-up is the agent's wait). It moves whole lines both ways, so
it knows which requests are in flight and which reply ends each. When the daemon's
connection drops while the client is still there (``contextd-mcp stop``, the daemon killed
or crashed, an upgrade), the relay:

1. answers every request in flight with a JSON-RPC error carrying its id (the daemon may or
   may not have applied it; the message says so). A reply line cut off by the drop is
   discarded, so no request is ever answered twice;
2. reconnects, starting a daemon when none answers, within ``RECONNECT_ATTEMPTS`` and
   ``RECONNECT_WINDOW_S`` (while a process holds the data directory, e.g. the old daemon
   flushing its store, it only waits for that one's socket);
3. replays the client's ``initialize`` (under a bridge-own id, its reply kept from the
   client) and ``notifications/initialized``, so the new MCP session is ready;
4. keeps the daemon-side state: the hello carries a secret drawn once per bridge, from which
   the daemon derives the connection id, so the contextd session a ``session_start`` opened
   is found again (sessions.py rebinds it from the store); an agent bound with
   ``session_start(agent=…)`` is re-asserted as the connection's agent (``CONTEXTD_AGENT`` in
   the hello), so its restrictions hold after the restart too (an agent gone fails closed);
5. writes one line to stderr and goes on. Requests the client sends meanwhile wait. If the
   new daemon runs another version, the client gets ``notifications/tools/list_changed``.

If no daemon comes back within the limits, the pending and any further requests are answered
with an error, and the bridge exits 1 with a message.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from contextd_mcp import env
from contextd_mcp.paths import DataPaths
from contextd_mcp.transports.bridge import START_TIMEOUT_S, BridgeError, open_session, owner_pid

# Reconnecting after the daemon went away: at most this many attempts to reach or start one,
# all within this window (a start alone may take START_TIMEOUT_S: model load).
RECONNECT_ATTEMPTS = 6
RECONNECT_WINDOW_S = env.reconnect_window_s()
# Backoff between attempts: doubling from the first, capped.
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 2.0
# How often to look again while the old daemon is still shutting down (flushing its store).
OLD_DAEMON_POLL_S = 0.05
# The new daemon must answer the replayed initialize within this.
REINIT_TIMEOUT_S = 30.0
# After giving up, requests still arriving are answered for this long before the bridge exits.
FAIL_LINGER_S = 2.0
# Lines are parsed to track ids up to this size (the daemon's own cap is at most 16 MiB, so a
# larger line is refused by it anyway, with its id found by a prefix scan).
PARSE_MAX_BYTES = 16 << 20
# JSON-RPC "server error" range: the request met a connection that went away.
LOST_CODE = -32000
_REINIT_ID = "contextd-bridge-reinitialize"
LIST_CHANGED = b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n'

Key = tuple[str, int | str]


def _key(value: Any) -> Key | None:
    """A request id as a dict key (1 and "1" are different ids; a bool is no id)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return (type(value).__name__, value)


def _parse(line: bytes) -> dict[str, Any] | None:
    if len(line) > PARSE_MAX_BYTES:
        return None
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


def _error(request_id: int | str, message: str) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": LOST_CODE, "message": message}}
    return (json.dumps(body) + "\n").encode()


@dataclass(frozen=True)
class _InFlight:
    generation: int  # the connection it was sent on
    request_id: int | str
    method: str
    agent: str | None = None  # session_start(agent=…): bound if it succeeds


class _Lost(Exception):
    pass


class Relay:
    def __init__(self, paths: DataPaths, scope_env: dict[str, str] | None = None, in_fd: int = 0, out_fd: int = 1) -> None:
        self._paths = paths
        # The scope parts the hello carries: the bridge's environment, overridden by flags.
        self._scope_env = env.scope_env() | (scope_env or {})
        self._resume = secrets.token_hex(16)
        self._in, self._out = in_fd, out_fd
        self._cv = threading.Condition()
        self._out_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._generation = 0
        self._daemon_pid = 0
        self._version = ""
        self._pending: dict[Key, _InFlight] = {}
        self._server_requests: dict[Key, int] = {}  # daemon → client requests, by connection
        self._initialize: dict[str, Any] | None = None  # the client's, once answered with a result
        self._initialize_sent: dict[Key, dict[str, Any]] = {}
        self._initialized: bytes | None = None
        self._agent: str | None = None
        self._client_closed = False
        self._failure: str | None = None
        self._client_done = threading.Event()
        self._client_started = False
        # What the client sent after its last whole line (read by the stdin thread, or by a
        # daemon the stdio was handed to: handoff_relay.py).
        self._client_data = bytearray()

    # -- the main thread: the daemon's side ---------------------------------------------

    def run(self) -> int:
        try:
            sock, reply, rest = self._open()
            sock, rest = self._begin(sock, reply, rest)
        except (BridgeError, OSError) as exc:
            print(f"contextd-mcp: cannot reach the daemon for {self._paths.root}: {exc}", file=sys.stderr)
            return 1
        while True:
            try:
                self._serve(sock, rest)
            except OSError:  # stdout is gone: so is the client
                return 1
            finally:
                sock.close()
            with self._cv:
                if self._client_closed:
                    return 0
                if self._session_over():
                    return 1
                lost = self._drop_connection()
            self._take_back()
            dropped_at = time.monotonic()
            old_pid = self._daemon_pid
            try:
                self._answer(lost, "the contextd daemon went away (stopped, restarted or killed) while this request "
                             "was in flight; it may or may not have taken effect. The bridge is reconnecting: "
                             "check, then retry if it is safe to")
                sock, reply, rest = self._reconnect()
            except OSError:
                return 1
            except BridgeError as exc:
                return self._give_up(str(exc), len(lost))
            self._publish(sock, reply)
            print(
                f"contextd-mcp: the daemon for {self._paths.root} (pid {old_pid}) went away; reconnected to pid "
                f"{self._daemon_pid} in {time.monotonic() - dropped_at:.2f}s; {len(lost)} request(s) in flight "
                "answered with an error",
                file=sys.stderr,
                flush=True,
            )

    def _begin(self, sock: socket.socket, reply: dict[str, Any], rest: bytes) -> tuple[socket.socket, bytes]:
        """The first connection is up: start moving lines."""
        self._publish(sock, reply)
        self._start_client()
        return sock, rest

    def _start_client(self) -> None:
        if not self._client_started:
            self._client_started = True
            threading.Thread(target=self._client_loop, name="contextd-stdin", daemon=True).start()

    def _serve(self, sock: socket.socket, rest: bytes) -> None:
        self._daemon_loop(sock, rest)

    def _session_over(self) -> bool:
        """Under the lock, the connection gone: True when the session ended for good."""
        return False

    def _take_back(self) -> None:
        """The connection is gone and the client is not: whatever the bridge must own again."""

    def _hello_fields(self) -> dict[str, Any]:
        hello_env = dict(self._scope_env)
        if self._agent:
            hello_env["CONTEXTD_AGENT"] = self._agent
        return {"env": hello_env, "resume": self._resume}

    def _open(self, autostart: bool = True, start_timeout: float = START_TIMEOUT_S) -> tuple[socket.socket, dict[str, Any], bytes]:
        return open_session(self._paths, "mcp", autostart, self._hello_fields(), start_timeout)

    def _publish(self, sock: socket.socket, reply: dict[str, Any]) -> None:
        previous = self._version
        self._daemon_pid = int(reply.get("pid") or 0)
        self._version = str(reply.get("version") or "")
        with self._cv:
            self._sock = sock
            self._generation += 1
            closed = self._client_closed
            self._cv.notify_all()
        if closed:  # the client left while we reconnected: end the new session too
            _shutdown_write(sock)
        elif self._version_changed(previous):
            self._write(LIST_CHANGED)

    def _version_changed(self, previous: str) -> bool:
        return bool(previous) and previous != self._version and self._initialize is not None

    def _daemon_loop(self, sock: socket.socket, buffer: bytes) -> None:
        data = bytearray(buffer)
        while True:
            for line in _whole_lines(data):
                self._from_daemon(line)
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return  # a partial last line is dropped: its request gets the error instead
            data.extend(chunk)

    def _from_daemon(self, line: bytes) -> None:
        self._note_daemon(line)
        self._write(line)

    def _note_daemon(self, line: bytes) -> None:
        message = _parse(line)
        if message is not None:
            key = _key(message.get("id"))
            with self._cv:
                if key is not None and "method" not in message:
                    self._settle(key, message)
                elif key is not None:
                    self._server_requests[key] = self._generation

    def _settle(self, key: Key, reply: dict[str, Any]) -> None:
        """A reply arrived for ``key``: it is no longer in flight (called under the lock)."""
        sent = self._pending.pop(key, None)
        if sent is None:
            return
        result = reply.get("result")
        if sent.method == "initialize" and isinstance(result, dict):
            self._initialize = self._initialize_sent.pop(key, None)
        if sent.agent and isinstance(result, dict) and not result.get("isError"):
            self._agent = sent.agent

    def _drop_connection(self) -> list[_InFlight]:
        """Under the lock: no connection until reconnected; what was in flight on it."""
        self._sock = None
        lost = [p for p in self._pending.values() if p.generation == self._generation]
        for p in lost:
            del self._pending[_key(p.request_id)]  # type: ignore[arg-type]
        return lost

    def _reconnect(self) -> tuple[socket.socket, dict[str, Any], bytes]:
        deadline = time.monotonic() + RECONNECT_WINDOW_S
        delay = BACKOFF_FIRST_S
        attempts = 0
        last = "no attempt"
        while attempts < RECONNECT_ATTEMPTS and time.monotonic() < deadline:
            # While a process holds the data directory (the old daemon flushing its store, a
            # daemon starting: another bridge's, or `serve --replace`), a new one would fail to
            # start: only look for a socket that answers.
            holder = owner_pid(self._paths)
            waiting = holder is not None
            if not waiting:
                attempts += 1
            try:
                sock, reply, rest = self._open(not waiting, max(0.1, min(START_TIMEOUT_S, deadline - time.monotonic())))
                try:
                    rest = self._reinitialize(sock, rest)
                except BaseException:
                    sock.close()
                    raise
                return sock, reply, rest
            except (BridgeError, OSError, _Lost) as exc:
                last = str(exc) or type(exc).__name__
                if waiting and not isinstance(exc, _Lost):
                    last = f"process {holder} holds {self._paths.root} but does not answer on its socket"
            if waiting:
                time.sleep(OLD_DAEMON_POLL_S)
                continue
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, BACKOFF_MAX_S)
        raise BridgeError(
            f"no daemon came back after {attempts} attempt(s) in {RECONNECT_WINDOW_S:.0f}s "
            f"(CONTEXTD_RECONNECT_SECONDS); last error: {last}"
        )

    def _reinitialize(self, sock: socket.socket, rest: bytes) -> bytes:
        """Replay the client's handshake on a new connection; returns what followed its reply."""
        if self._initialize is None:
            return rest
        request = {**self._initialize, "id": _REINIT_ID}
        sock.sendall((json.dumps(request) + "\n").encode())
        sock.settimeout(REINIT_TIMEOUT_S)
        data = bytearray(rest)
        try:
            while True:
                newline = data.find(b"\n")
                if newline < 0:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise _Lost("the new daemon closed the connection during initialize")
                    data.extend(chunk)
                    continue
                message = _parse(bytes(data[:newline]))
                del data[: newline + 1]
                if message is not None and message.get("id") == _REINIT_ID and "method" not in message:
                    if "result" not in message:
                        raise _Lost(f"the new daemon refused initialize: {message.get('error')}")
                    break
        except TimeoutError:
            raise _Lost(f"the new daemon did not answer initialize within {REINIT_TIMEOUT_S:.0f}s") from None
        finally:
            sock.settimeout(None)
        if self._initialized is not None:
            sock.sendall(self._initialized)
        return bytes(data)

    def _give_up(self, reason: str, lost: int) -> int:
        with self._cv:
            self._failure = reason
            self._cv.notify_all()
        print(
            f"contextd-mcp: the daemon for {self._paths.root} went away and {reason}; {lost} request(s) in flight "
            "answered with an error; exiting",
            file=sys.stderr,
            flush=True,
        )
        self._start_client()  # the stdin a daemon had may be the bridge's again
        self._client_done.wait(FAIL_LINGER_S)  # answer what the client sends meanwhile
        return 1

    # -- the stdin thread: the client's side ----------------------------------------------

    def _client_loop(self) -> None:
        data = self._client_data
        try:
            while True:
                chunk = os.read(self._in, 65536)
                if not chunk:
                    break
                data.extend(chunk)
                for line in _whole_lines(data):
                    self._from_client(line)
            if data.strip():
                self._from_client(bytes(data) + b"\n")
        except OSError:
            pass
        finally:
            with self._cv:
                self._client_closed = True
                sock = self._sock
            if sock is not None:
                _shutdown_write(sock)  # the daemon sees EOF and ends the session
            self._client_done.set()

    def _from_client(self, line: bytes) -> None:
        message = _parse(line) or {}
        with self._cv:
            while self._sock is None and self._failure is None:
                self._cv.wait()
            if self._failure is not None:
                if _key(message.get("id")) is not None and isinstance(message.get("method"), str):
                    self._write(_error(message["id"], f"the contextd daemon is unreachable: {self._failure}"))
                return
            if not self._note_client(message, line):
                return
            sock = self._sock
        try:
            sock.sendall(line)  # type: ignore[union-attr]
        except OSError:
            pass  # the connection is gone: the main thread answers what was in flight on it

    def _note_client(self, message: dict[str, Any], line: bytes) -> bool:
        """Under the lock: track a client line; False when it must not reach the daemon."""
        key = _key(message.get("id"))
        method = message.get("method")
        if key is not None and method is None and self._server_requests.pop(key, self._generation) != self._generation:
            return False  # the reply to a request the previous daemon made: nobody waits for it now
        if key is not None and isinstance(method, str):
            self._pending[key] = _InFlight(self._generation, message["id"], method, _agent_of(message))
            if method == "initialize":
                self._initialize_sent[key] = message
        elif method == "notifications/initialized":
            self._initialized = line
        return True

    def _answer(self, lost: list[_InFlight], text: str) -> None:
        for p in lost:
            self._write(_error(p.request_id, text))

    def _write(self, data: bytes) -> None:
        with self._out_lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._out, view) :]


def _whole_lines(data: bytearray) -> Iterator[bytes]:
    """Each complete line (newline included), taken off the front of ``data`` as it is yielded;
    a partial last line stays for the next read."""
    newline = data.find(b"\n")
    while newline >= 0:
        line = bytes(data[: newline + 1])
        del data[: newline + 1]
        yield line
        newline = data.find(b"\n")


def _agent_of(message: dict[str, Any]) -> str | None:
    """The agent a ``session_start`` call asks to act as, if any."""
    if message.get("method") != "tools/call":
        return None
    params = message.get("params")
    if not isinstance(params, dict) or params.get("name") != "session_start":
        return None
    arguments = params.get("arguments")
    agent = arguments.get("agent") if isinstance(arguments, dict) else None
    return agent if isinstance(agent, str) and agent else None


def _shutdown_write(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def run_relay(paths: DataPaths, scope_env: dict[str, str] | None = None) -> int:
    """The stdio handed to the daemon where it can be (handoff_relay.py), else relayed."""
    from contextd_mcp.transports.handoff_relay import HandoffRelay, can_hand_off

    if can_hand_off(0, 1):
        return HandoffRelay(paths, scope_env).run()
    return Relay(paths, scope_env).run()
