"""The daemon's side of the stdio hand-off (handoff_wire.py): the client's pipes, served directly.

The peer was already checked (peer.py: same uid, outside any sandbox) and its hello read;
what it hands over is checked again here, since any same-user process can send descriptors:
exactly two, the first readable and the second writable, each a pipe or a stream socket
(never a regular file, a directory or a device). They are received close-on-exec
(``MSG_CMSG_CLOEXEC``), so no process the daemon starts (the sandbox's helper) inherits them.
"""

from __future__ import annotations

import array
import fcntl
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import ByteStream, SocketAttribute, SocketStream
from mcp.shared.message import SessionMessage

from contextd_mcp.limits import WRITE_TIMEOUT_S
from contextd_mcp.transports import handoff_wire as wire

_FDS = 2
_INT = array.array("i").itemsize


class HandoffRefused(ValueError):
    """What was handed over may not be served; the message names the rule."""


@dataclass
class Handed:
    read_fd: int
    write_fd: int
    prefix: bytes  # replayed lines, then the start of a line the previous daemon had read
    hidden: set[Any] = field(default_factory=set)  # ids of replayed requests: their replies stay here


async def _recvmsg(raw: socket.socket) -> tuple[bytes, list[int]]:
    while True:
        try:
            data, ancdata, flags, _ = raw.recvmsg(wire.MAX_HEADER, socket.CMSG_SPACE(_FDS * _INT), socket.MSG_CMSG_CLOEXEC)
        except BlockingIOError:
            await anyio.wait_readable(raw)
            continue
        fds: list[int] = []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", payload[: len(payload) - len(payload) % _INT]))
        if flags & socket.MSG_CTRUNC:
            _close(fds)  # the kernel closed the ones that did not fit
            raise HandoffRefused(f"handoff: more than {_FDS} descriptors sent")
        return data, fds


async def _read_more(stream: SocketStream, buffer: bytes, until: Callable[[bytes], bool], cap: int) -> bytes:
    with anyio.fail_after(10):
        while not until(buffer):
            buffer += await stream.receive(65536)
            if len(buffer) > cap:
                raise HandoffRefused(f"handoff: message larger than {cap} bytes")
    return buffer


def _check(fds: list[int]) -> None:
    if len(fds) != _FDS:
        raise HandoffRefused(f"handoff: expected {_FDS} descriptors (stdin, stdout), got {len(fds)}")
    for fd, name, modes in ((fds[0], "stdin", (os.O_RDONLY, os.O_RDWR)), (fds[1], "stdout", (os.O_WRONLY, os.O_RDWR))):
        kind = wire.stream_kind(fd)
        if kind is None:
            raise HandoffRefused(f"handoff: {name} must be a pipe or a socket (not a file, directory or device)")
        if kind == "socket" and _socket_type(fd) != socket.SOCK_STREAM:
            raise HandoffRefused(f"handoff: {name} must be a stream socket")
        if (fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE) not in modes:
            raise HandoffRefused(f"handoff: {name} is not open for {'reading' if name == 'stdin' else 'writing'}")


def _socket_type(fd: int) -> int:
    probe = socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM)  # a dup: ``fd`` stays open
    try:
        return int(probe.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE))
    finally:
        probe.close()


async def receive(stream: SocketStream, max_prefix: int) -> Handed:
    """The descriptors and the header the bridge sends after the hello's reply."""
    raw = stream.extra(SocketAttribute.raw_socket)  # noqa: S610 - anyio stream attributes, not Django
    with anyio.fail_after(10):
        data, fds = await _recvmsg(raw)
    try:
        _check(fds)
        data = await _read_more(stream, data, lambda b: b"\n" in b, wire.MAX_HEADER)
        line, rest = data.split(b"\n", 1)
        try:
            header = json.loads(line)
        except ValueError:
            raise HandoffRefused("handoff: the header is not JSON") from None
        if not isinstance(header, dict):
            raise HandoffRefused("handoff: the header must be a JSON object")
        size, replay = header.get("prefix", 0), header.get("replay") or []
        if not isinstance(size, int) or not 0 <= size <= max_prefix:
            raise HandoffRefused(f"handoff: prefix must be 0..{max_prefix} bytes")
        if not isinstance(replay, list) or not all(isinstance(r, dict) for r in replay):
            raise HandoffRefused("handoff: replay must be a list of JSON-RPC messages")
        rest = await _read_more(stream, rest, lambda b: len(b) >= size, max_prefix + 1)
        if len(rest) != size:
            raise HandoffRefused("handoff: bytes after the prefix (send nothing until the reply)")
        for fd in fds:
            os.set_blocking(fd, False)
    except BaseException:
        _close(fds)
        raise
    hidden = {r["id"] for r in replay if "id" in r and "method" in r}
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in replay)
    return Handed(fds[0], fds[1], lines + rest, hidden)


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class Tee:
    """The bridge's copy of the session (handoff_wire.py), on the hello's socket."""

    def __init__(self, stream: SocketStream) -> None:
        self._stream = stream
        self._raw = stream.extra(SocketAttribute.raw_socket)  # noqa: S610 - anyio stream attributes, not Django
        self._lock = anyio.Lock(fast_acquire=True)

    async def send(self, kind: bytes, payload: bytes = b"") -> None:
        data = wire.frame(kind, payload)
        if self._lock.locked():  # another frame is on its way: after it
            await self._send_rest(data, locked=False)
            return
        # At once, without a turn of the event loop: the copy of a request is sent before the
        # request is handled, on the call's path. The socket's buffer nearly always has room.
        try:
            sent = self._raw.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise anyio.BrokenResourceError from exc
        if sent < len(data):
            self._lock.acquire_nowait()  # no other frame may come between the two parts
            await self._send_rest(data[sent:], locked=True)

    async def _send_rest(self, data: bytes, locked: bool) -> None:
        # Shielded: a chunk read from the client but not copied would be lost to the bridge
        # should the daemon stop right then; bounded by the write timeout instead.
        with anyio.CancelScope(shield=True), anyio.fail_after(WRITE_TIMEOUT_S):
            if not locked:
                await self._lock.acquire()
            try:
                await self._stream.send(data)
            finally:
                self._lock.release()

    async def sent(self, message: SessionMessage) -> None:
        root = message.message
        if isinstance(root, types.JSONRPCResponse):
            result = root.result if isinstance(root.result, dict) else {}
            body = wire.summary(root.id, "result", bool(result.get("isError")))
        elif isinstance(root, types.JSONRPCError):
            body = wire.summary(root.id, "error")
        elif isinstance(root, types.JSONRPCRequest):
            body = wire.summary(root.id, "request", method=root.method)
        else:
            return
        await self.send(wire.OUT, body)


class HandedStdio(ByteStream):
    """The client's stdin and stdout as one byte stream; every chunk read is teed first."""

    def __init__(self, handed: Handed, tee: Tee) -> None:
        self._in, self._out = handed.read_fd, handed.write_fd
        self._tee = tee
        self.eof = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            try:
                data = os.read(self._in, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._in)
                continue
            except OSError as exc:
                raise anyio.BrokenResourceError from exc
            if not data:
                self.eof = True
                raise anyio.EndOfStream
            await self._tee.send(wire.IN, data)
            return data

    async def send(self, item: bytes) -> None:
        if len(item) > wire.ATOMIC_WRITE:
            await self._tee.send(wire.BIG)
        view = memoryview(item)
        while view:
            try:
                view = view[os.write(self._out, view) :]
            except BlockingIOError:
                await anyio.wait_writable(self._out)
            except OSError as exc:
                raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        for fd in (self._in, self._out):
            try:  # the description is the client's and the bridge's too: leave it as it came
                os.set_blocking(fd, True)
            except OSError:
                pass
        _close([self._in, self._out])
        self._in = self._out = -1
