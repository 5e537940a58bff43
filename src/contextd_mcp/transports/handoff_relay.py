"""The bridge with its stdio handed to the daemon (handoff_wire.py). Standard library only.

After the hello, the bridge sends its stdin and stdout to the daemon and only reads the
daemon's copy of the session: the chunks the daemon read from the client, a summary of each
line it wrote. With that it keeps relay.py's bookkeeping (requests in flight, the client's
``initialize``, the agent a ``session_start`` bound, a partial last line), so when the daemon
goes away it takes the pipes back and does what relay.py does: answers the requests in flight
with an error, reconnects, replays the handshake (inside the next hand-off, whose daemon keeps
the replies to itself) and hands the pipes over again. While no daemon has them, the client's
new lines wait unread in the pipe.

Falls back to relaying lines (relay.py) when a daemon does not offer the hand-off (an older
one) or refuses it, when stdin or stdout is not a pipe or a socket (a terminal), off Linux, or
with ``CONTEXTD_STDIO_HANDOFF=0``. Once relaying, a bridge relays until it exits.
"""

from __future__ import annotations

import array
import json
import os
import socket
import sys
import time
from typing import Any

from contextd_mcp import env
from contextd_mcp.transports import handoff_wire as wire
from contextd_mcp.transports.bridge import START_TIMEOUT_S, BridgeError
from contextd_mcp.transports.relay import (
    _REINIT_ID,
    LIST_CHANGED,
    REINIT_TIMEOUT_S,
    Relay,
    _Lost,
    _parse,
    _whole_lines,
)


# The daemon's copy is read by polling, not by waiting on the socket: a bridge woken by each
# frame ran on the call's path (the copy of a request is sent as the daemon starts on it: on 2
# cores the woken bridge preempted the daemon; bench/bash_timeline.py, client → daemon 1.7 →
# 2.9 ms at load 18). The copy is only needed once the daemon is gone, and the socket's buffer
# holds it meanwhile. Polled every TEE_POLL_S while frames come, backing off to TEE_IDLE_S
# while none do (the exit after the client closes stdin, or the take-over after the daemon
# died, waits at most that long), and every TEE_BURST_S while a large request streams through
# (a full buffer holds the daemon up).
TEE_POLL_S = 0.05
TEE_IDLE_S = 0.25
TEE_BURST_S = 0.001


def _drain(sock: socket.socket, data: bytearray) -> tuple[int, bool]:
    """What the daemon sent since the last look: (bytes read, whether the socket is closed)."""
    got = 0
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except BlockingIOError:
            return got, False
        except OSError:
            return got, True
        if not chunk:
            return got, True
        got += len(chunk)
        data.extend(chunk)


def can_hand_off(in_fd: int, out_fd: int) -> bool:
    if not sys.platform.startswith("linux") or not hasattr(socket, "MSG_CMSG_CLOEXEC") or not env.stdio_handoff():
        return False
    try:
        return wire.stream_kind(in_fd) is not None and wire.stream_kind(out_fd) is not None
    except OSError:
        return False


class HandoffRelay(Relay):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handoff = True  # asked for in each hello, until a daemon refuses it
        self._offered = False  # the last hello's reply offered it
        self._handed = False  # the current connection's daemon has the client's pipes
        self._big = False  # a long line is being written by the daemon
        self._over = False  # the daemon ended the session (the client stopped reading)
        self._next_version = ""

    def run(self) -> int:
        try:
            return super().run()
        finally:
            self._restore_blocking()

    def _restore_blocking(self) -> None:
        for fd in (self._in, self._out):
            try:  # shared with whoever gave the bridge its stdio
                os.set_blocking(fd, True)
            except OSError:
                pass

    def _hello_fields(self) -> dict[str, Any]:
        fields = super()._hello_fields()
        if self._handoff and not self._client_started:
            fields[wire.FIELD] = wire.VERSION
        return fields

    def _open(self, autostart: bool = True, start_timeout: float = START_TIMEOUT_S) -> tuple[socket.socket, dict[str, Any], bytes]:
        sock, reply, rest = super()._open(autostart, start_timeout)
        self._offered = reply.get(wire.FIELD) == wire.VERSION and self._handoff and not self._client_started
        self._next_version = str(reply.get("version") or "")
        return sock, reply, rest

    def _begin(self, sock: socket.socket, reply: dict[str, Any], rest: bytes) -> tuple[socket.socket, bytes]:
        if self._offered:
            try:
                rest = self._hand_off(sock, rest, [])
            except (BridgeError, OSError, ValueError) as exc:
                sock.close()
                self._refused(exc)
                sock, reply, rest = self._open()
            else:
                self._publish(sock, reply)
                return sock, rest
        return super()._begin(sock, reply, rest)

    def _refused(self, exc: BaseException) -> None:
        self._handoff = False
        self._restore_blocking()  # in case the daemon took them before failing
        print(f"contextd-mcp: relaying stdio instead of handing it to the daemon: {exc}", file=sys.stderr, flush=True)

    def _hand_off(self, sock: socket.socket, rest: bytes, replay: list[dict[str, Any]]) -> bytes:
        """Send the client's pipes (and the start of a line already read); returns what followed the reply."""
        prefix = bytes(self._client_data)
        header = json.dumps({"prefix": len(prefix), "replay": replay}).encode() + b"\n"
        sock.sendmsg([header], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [self._in, self._out]))])
        sock.sendall(prefix)
        sock.settimeout(REINIT_TIMEOUT_S)
        data = bytearray(rest)
        try:
            while b"\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    raise BridgeError("the daemon closed the connection during the hand-off")
                data.extend(chunk)
        finally:
            sock.settimeout(None)
        line, after = bytes(data).split(b"\n", 1)
        answer = json.loads(line)
        if not isinstance(answer, dict) or not answer.get("ok"):
            raise BridgeError(f"the daemon refused the hand-off: {answer.get('error') if isinstance(answer, dict) else answer}")
        self._handed, self._big = True, False
        return after

    def _reinitialize(self, sock: socket.socket, rest: bytes) -> bytes:
        if not self._offered:
            return super()._reinitialize(sock, rest)
        replay: list[dict[str, Any]] = []
        if self._initialize is not None:
            replay.append({**self._initialize, "id": _REINIT_ID})
            if self._initialized is not None:
                replay.append(json.loads(self._initialized))
            if self._version and self._next_version != self._version:
                self._write(LIST_CHANGED)  # now, while no daemon writes to the client
        try:
            return self._hand_off(sock, rest, replay)
        except (BridgeError, ValueError) as exc:
            self._refused(exc)
            raise _Lost(str(exc)) from None

    def _version_changed(self, previous: str) -> bool:
        return not self._handed and super()._version_changed(previous)

    def _serve(self, sock: socket.socket, rest: bytes) -> None:
        if not self._handed:
            self._start_client()
            super()._serve(sock, rest)
            return
        data = bytearray(rest)
        sock.setblocking(False)
        delay = TEE_POLL_S
        while self._frames(data):
            time.sleep(delay)
            got, gone = _drain(sock, data)
            if gone:
                self._frames(data)
                return
            delay = TEE_BURST_S if got >= 1 << 16 else TEE_POLL_S if got else min(delay * 2, TEE_IDLE_S)

    def _frames(self, data: bytearray) -> bool:
        """Takes every whole frame off ``data``; False on one no daemon of ours sends."""
        while len(data) >= wire.HEADER.size:
            kind, size = wire.HEADER.unpack_from(data)
            end = wire.HEADER.size + size
            if size > wire.MAX_FRAME:
                return False  # take the pipes back
            if len(data) < end:
                break
            self._tee(kind, bytes(data[wire.HEADER.size : end]))
            del data[:end]
        return True

    def _tee(self, kind: bytes, payload: bytes) -> None:
        if kind == wire.IN:
            self._client_data.extend(payload)
            for line in _whole_lines(self._client_data):
                with self._cv:
                    self._note_client(_parse(line) or {}, line)
        elif kind == wire.OUT:
            self._big = False
            message = _parse(payload) or {}
            if message.get("id") == _REINIT_ID and "error" in message:
                print("contextd-mcp: the new daemon refused the replayed initialize", file=sys.stderr, flush=True)
            self._note_daemon(payload)
        elif kind == wire.BIG:
            self._big = True
        elif kind == wire.EOF:
            with self._cv:
                self._client_closed = True
        elif kind == wire.END:
            self._over = True

    def _session_over(self) -> bool:
        return self._over

    def _take_back(self) -> None:
        if not self._handed:
            return
        self._handed = False
        self._restore_blocking()  # a daemon killed while serving left them non-blocking
        if self._big:  # the daemon may have died mid-line: end it, so the next line stands alone
            self._write(b"\n")
            self._big = False
