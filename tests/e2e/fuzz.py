"""Hostile frames for the daemon's socket and HTTP transports (issue 14 part 1).

Random and mutated JSON-RPC messages, truncated lines, invalid UTF-8, huge and ill-typed ids,
deeply nested garbage, oversize lines, and connections dropped mid-write or reset. Shared by
tests/e2e/test_fuzz.py and bench/bench_fuzz.py; seeded, so a failure can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import socket as pysocket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketAttribute

from contextd_mcp.transports.hello import PROTOCOL

TOOLS = ("memory_store", "memory_search", "memory_get", "memory_feedback", "no_such_tool", "")
METHODS = (
    "initialize", "ping", "tools/list", "tools/call", "resources/list", "prompts/list", "prompts/get",
    "notifications/initialized", "notifications/cancelled", "completion/complete", "logging/setLevel",
    "no/such/method", "", "tools/call\x00", "../../etc/passwd",
)
INIT_PARAMS = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}


@dataclass
class FuzzReport:
    frames: int = 0
    connections: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    unreachable: bool = False  # the daemon stopped answering connections during the run

    def count(self, kind: str) -> None:
        self.frames += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


class Frames:
    """One line (or HTTP body) at a time, of a randomly chosen kind."""

    def __init__(self, seed: int, cap: int) -> None:
        self.rng = random.Random(seed)
        self.cap = cap

    def _id(self) -> Any:
        r = self.rng
        return r.choice([
            r.randint(0, 1000), r.randint(-(2**70), 2**70), "s" * r.randint(0, 600), None, True, 1.5,
            {"nested": [1, {"id": 2}]}, [1, 2], -1, "", "\u2028\ud7ff", 10**40,
        ])

    def _garbage(self, depth: int = 0) -> Any:
        r = self.rng
        if depth > 4 or r.random() < 0.3:
            return r.choice([None, True, 0, -1.5e308, "x" * r.randint(0, 200), "\u0000\ufffd", 2**64])
        if r.random() < 0.5:
            return [self._garbage(depth + 1) for _ in range(r.randint(0, 4))]
        return {r.choice(["id", "method", "params", "a", "", "jsonrpc"]): self._garbage(depth + 1) for _ in range(r.randint(0, 4))}

    def message(self) -> dict[str, Any]:
        r = self.rng
        method = r.choice(METHODS)
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": r.randint(1, 10**6), "method": method}
        if method == "tools/call":
            arguments = r.choice([
                {"title": "fuzz", "content": "fuzz content " * r.randint(0, 20)},
                {"query": "fuzz " * r.randint(0, 50), "limit": r.choice([1, 5, 0, -1, 10**9, "5"])},
                {"memory_id": r.choice(["", "0" * 64, "../x", None])},
                self._garbage(),
            ])
            msg["params"] = {"name": r.choice(TOOLS), "arguments": arguments}
        elif method == "initialize":
            msg["params"] = INIT_PARAMS
        elif method.startswith("notifications/"):
            msg.pop("id")
            msg["params"] = {"requestId": self._id(), "reason": "fuzz"}
        elif r.random() < 0.5:
            msg["params"] = self._garbage()
        return msg

    def mutate(self, msg: dict[str, Any]) -> dict[str, Any]:
        r = self.rng
        msg = dict(msg)
        for _ in range(r.randint(1, 3)):
            op = r.randrange(5)
            if op == 0:
                msg["id"] = self._id()
            elif op == 1 and msg:
                msg.pop(r.choice(list(msg)))
            elif op == 2:
                msg[r.choice(["jsonrpc", "method", "params", "result", "error"])] = self._garbage()
            elif op == 3:
                msg["jsonrpc"] = r.choice(["1.0", "2", 2.0, None, ""])
            else:
                msg["method"] = r.choice([None, 7, "x" * 5000, {"a": 1}])
        return msg

    def line(self) -> tuple[str, bytes]:
        """(kind, bytes) for one frame, newline included except where the kind is a cut."""
        r = self.rng
        kind = r.choice([
            "valid", "mutated", "mutated", "truncated", "bitflip", "invalid-utf8", "nested", "random-bytes",
            "huge-id", "oversize", "empty", "response", "batch",
        ])
        if kind == "valid":
            body = json.dumps(self.message()).encode()
        elif kind == "mutated":
            body = json.dumps(self.mutate(self.message())).encode()
        elif kind == "truncated":
            whole = json.dumps(self.message()).encode()
            body = whole[: r.randint(0, len(whole))]
        elif kind == "bitflip":
            data = bytearray(json.dumps(self.message()).encode())
            for _ in range(r.randint(1, 8)):
                data[r.randrange(len(data))] = r.randrange(256)
            body = bytes(data).replace(b"\n", b" ")
        elif kind == "invalid-utf8":
            whole = json.dumps(self.message()).encode()
            cut = r.randint(0, len(whole))
            body = whole[:cut] + r.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]) + whole[cut:]
        elif kind == "nested":
            depth = r.choice([50, 500, 5000, 50000])
            body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + b"[" * depth + b"]" * depth + b"}"
        elif kind == "random-bytes":
            body = os.urandom(r.randint(1, 2000)).replace(b"\n", b"")
        elif kind == "huge-id":
            big = r.choice([b"9" * 5000, b'"' + b"i" * 100_000 + b'"', b"-" + b"1" * 300, b"1e999999"])
            body = b'{"jsonrpc":"2.0","id":' + big + b',"method":"tools/list"}'
        elif kind == "oversize":
            body = b'{"jsonrpc":"2.0","id":' + str(r.randint(1, 99)).encode() + b',"method":"tools/call","params":{"x":"'
            body += b"y" * (self.cap + r.randint(1, 70_000)) + b'"}}'
        elif kind == "empty":
            body = r.choice([b"", b" ", b"\r", b"\t\t"])
        elif kind == "response":
            body = json.dumps({"jsonrpc": "2.0", "id": self._id(), r.choice(["result", "error"]): self._garbage()}).encode()
        else:
            body = json.dumps([self.message() for _ in range(r.randint(0, 5))]).encode()
        return kind, body + b"\n"


async def fuzz_socket(socket_path: Path, cwd: Path, frames: int, seed: int, cap: int) -> FuzzReport:
    """Send ``frames`` hostile lines over many short socket sessions, ending each in a random way."""
    gen, report = Frames(seed, cap), FuzzReport()
    while report.frames < frames:
        report.connections += 1
        try:
            stream = await anyio.connect_unix(str(socket_path))
        except OSError:
            report.unreachable = True  # the daemon is gone: nothing left to send to
            return report
        try:
            async with stream:
                with anyio.fail_after(60):
                    await _socket_session(stream, gen, report, cwd, frames)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError):
            pass  # the daemon may close a session it has had enough of: that is its right
    return report


async def _socket_session(stream: Any, gen: Frames, report: FuzzReport, cwd: Path, frames: int) -> None:
    rng = gen.rng
    hello = {"contextd": PROTOCOL, "op": "mcp", "cwd": str(cwd), "env": {}, "pid": os.getpid()}
    if rng.random() < 0.05:  # a bad hello, now and then
        await stream.send(rng.choice([b"nonsense\n", b'{"contextd": 1, "op": "mcp", "env": [1]}\n', b"\xff\n"]))
        report.count("bad-hello")
        return
    await stream.send(json.dumps(hello).encode() + b"\n")
    if rng.random() < 0.7:
        await stream.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT_PARAMS}).encode() + b"\n")
        await stream.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    reading = rng.random() < 0.7  # some peers never read their replies
    for _ in range(rng.randint(1, 40)):
        if report.frames >= frames:
            break
        kind, line = gen.line()
        await stream.send(line)
        report.count(kind)
        if reading:
            _drain_now(stream)
    ending = rng.randrange(4)
    if ending == 0:  # disconnect mid-write
        kind, line = gen.line()
        await stream.send(line[: max(1, len(line) // 2)])
        report.count("cut-" + kind)
    elif ending == 1:  # SO_LINGER 0: a reset where the transport has one
        stream.extra(SocketAttribute.raw_socket).setsockopt(pysocket.SOL_SOCKET, pysocket.SO_LINGER, struct.pack("ii", 1, 0))
    elif ending == 2:
        await anyio.sleep(0.05)  # let some replies meet a closing peer


def _drain_now(stream: Any) -> None:
    """Read what has arrived without waiting: a cancelled pending read on an anyio unix stream
    can trip asyncio (InvalidStateError), and this client must not be the thing that fails."""
    raw = stream.extra(SocketAttribute.raw_socket)
    while True:
        try:
            if not raw.recv(65536):
                return
        except (BlockingIOError, InterruptedError):
            return


def _http_request(gen: Frames, host: str, port: int, token: str, session: str) -> tuple[str, bytes, bool]:
    """(kind, raw request, cut): a hostile HTTP request to /mcp, sometimes not HTTP at all."""
    rng = gen.rng
    kind, body = gen.line()
    body = body.rstrip(b"\n")
    if rng.random() < 0.1:
        return "raw-" + kind, body + b"\r\n\r\n", False
    method = rng.choice(["POST"] * 8 + ["GET", "DELETE", "PUT"])
    headers = [f"Host: {host}:{port}", "Accept: application/json, text/event-stream"]
    if rng.random() < 0.9:
        headers.append(f"Authorization: Bearer {token if rng.random() < 0.9 else 'ctx_' + 'x' * 40}")
    headers.append("Content-Type: " + rng.choice(["application/json"] * 5 + ["text/plain", "application/json; charset=latin-1"]))
    if rng.random() < 0.6:
        headers.append(f"Mcp-Session-Id: {session if rng.random() < 0.8 else 'nope' * rng.randint(1, 40)}")
        headers.append("Mcp-Protocol-Version: " + rng.choice(["2025-06-18", "1999-01-01", ""]))
    length = len(body)
    cut = rng.random() < 0.15
    if cut:  # a Content-Length the client never fulfils, then it disconnects
        length += rng.randint(1, 1000)
    headers.append(f"Content-Length: {length}")
    if rng.random() < 0.05:
        headers.append("X-Big: " + "h" * rng.choice([1000, 20_000]))
    head = f"{method} /mcp HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    return kind, head.encode("utf-8", "surrogateescape") + body, cut


async def fuzz_http(base: str, token: str, frames: int, seed: int, cap: int, session: str) -> FuzzReport:
    """Send ``frames`` hostile HTTP requests, each on its own connection, reading or not."""
    gen, report = Frames(seed, cap), FuzzReport()
    host, port = base.removeprefix("http://").rsplit(":", 1)
    while report.frames < frames:
        kind, raw, cut = _http_request(gen, host, int(port), token, session)
        report.connections += 1
        report.count(kind)
        try:
            stream = await anyio.connect_tcp(host, int(port))
        except OSError:
            report.unreachable = True
            return report
        try:
            async with stream:
                await stream.send(raw)
                if gen.rng.random() < 0.1:  # a reset instead of a close
                    linger = struct.pack("ii", 1, 0)
                    stream.extra(SocketAttribute.raw_socket).setsockopt(pysocket.SOL_SOCKET, pysocket.SO_LINGER, linger)
                if cut or gen.rng.random() < 0.3:
                    continue  # gone before the answer
                with anyio.move_on_after(5):
                    while True:
                        chunk = await stream.receive(65536)
                        if b"\r\n\r\n" in chunk or not chunk:
                            break
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError):
            pass
    return report
