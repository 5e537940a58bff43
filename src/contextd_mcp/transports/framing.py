"""Newline-delimited JSON-RPC over any anyio byte stream (the unix socket, in-process stdio).

Whatever a peer sends or does (bad lines, oversize lines, bad ids, invalid UTF-8, closing
mid-reply, never reading), the damage stays inside its own connection: a bad line gets a
JSON-RPC error carrying the request's id whenever one can be read, and a peer that cannot
be written to ends its connection, never the daemon.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage

from contextd_mcp.limits import ECHOED_ID_MAX, ID_SCAN_BYTES, WRITE_TIMEOUT_S

log = logging.getLogger("contextd_mcp")

# The request id near the start of a line too big to parse: SDK clients write "id" before
# "params", so the first match in the prefix is the top-level one. A nested "id" that comes
# first only misdirects an error the request would have got anyway.
_ID_IN_PREFIX = re.compile(rb'"id"\s*:\s*(-?\d{1,18}(?![\d.eE])|"(?:[^"\\\r\n]|\\.){0,%d}")' % ECHOED_ID_MAX)
_PEER_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, ConnectionError, TimeoutError)


class OversizeMessage(ValueError):
    def __init__(self, max_bytes: int, request_id: int | str | None) -> None:
        super().__init__(
            f"message larger than {max_bytes} bytes (CONTEXTD_REQUEST_MAX_BYTES); send less, "
            "e.g. shorter content or fewer items per call"
        )
        self.request_id = request_id


def id_in_prefix(prefix: bytes) -> int | str | None:
    """The request id a line starts with, without parsing the (possibly huge) line."""
    match = _ID_IN_PREFIX.search(prefix[:ID_SCAN_BYTES])
    if match is None:
        return None
    try:
        value = json.loads(match.group(1))
    except ValueError:
        return None
    return value if isinstance(value, int | str) else None


def echoable_id(message: Any) -> int | str | None:
    """The id of a parsed but invalid message, if JSON-RPC allows echoing it (else null)."""
    value = message.get("id") if isinstance(message, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    if isinstance(value, int) and abs(value) >= 1 << 63:
        return None
    return value if not isinstance(value, str) or len(value) <= ECHOED_ID_MAX else None


async def read_lines(stream: ByteStream, max_bytes: int, first: bytes = b"") -> AsyncIterator[bytes | OversizeMessage]:
    """Yield complete lines; a line over ``max_bytes`` is skipped whole and reported once."""
    buffer = bytearray(first)
    skipping = False
    while True:
        newline = buffer.find(b"\n")
        while newline >= 0:
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            if skipping:
                skipping = False
            elif len(line) > max_bytes:
                yield OversizeMessage(max_bytes, id_in_prefix(line))
            elif line.strip():
                yield line
            newline = buffer.find(b"\n")
        if len(buffer) > max_bytes:
            if not skipping:
                yield OversizeMessage(max_bytes, id_in_prefix(bytes(buffer[:ID_SCAN_BYTES])))
            skipping = True
            buffer.clear()
        try:
            chunk = await stream.receive(65536)
        except _PEER_GONE:
            return
        buffer.extend(chunk)


def parse_line(line: bytes) -> SessionMessage | bytes:
    """The message on ``line``, or the error reply to send back for it."""
    try:
        message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except Exception:  # noqa: BLE001 - pydantic's ValidationError, or anything a hostile line provokes in it
        message = None
    # A request whose id is an object or array validates as a notification (the id dropped),
    # which gets no reply; its client would wait forever.
    if message is not None and not (isinstance(message, types.JSONRPCNotification) and _has_id(line)):
        return SessionMessage(message)
    try:
        loose = json.loads(line)
    except (ValueError, RecursionError):
        return error_reply(None, types.PARSE_ERROR, "parse error: not valid JSON (one JSON-RPC message per line)")
    return error_reply(
        echoable_id(loose),
        types.PARSE_ERROR,
        "parse error: not a JSON-RPC 2.0 message (needs jsonrpc \"2.0\", a string \"method\", "
        "and an \"id\" that is a string or an integer)",
    )


def _has_id(line: bytes) -> bool:
    if b'"id"' not in line:
        return False
    try:
        loose = json.loads(line)
    except (ValueError, RecursionError):
        return True
    return isinstance(loose, dict) and "id" in loose


def error_reply(request_id: int | str | None, code: int, message: str) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return (json.dumps(body) + "\n").encode()


@asynccontextmanager
async def jsonrpc_streams(
    stream: ByteStream, max_bytes: int, first: bytes = b"", hidden: Collection[Any] = (),
    on_sent: Callable[[SessionMessage], Awaitable[None]] | None = None,
) -> AsyncIterator[tuple[Any, Any]]:
    """The (read, write) stream pair the MCP server runs on, over a byte stream.

    Malformed or oversize input is answered with a JSON-RPC error right here, so the session
    stays up and the client learns what was wrong. A write that fails or stalls for
    ``WRITE_TIMEOUT_S`` ends the reading side, so the session ends; later replies are dropped.
    Replies to the ``hidden`` ids (requests a bridge replayed in ``first``) are not written;
    ``on_sent`` sees every message after it is written (the stdio hand-off's bookkeeping).
    """
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](16)
    wire = _Wire(stream, set(hidden), on_sent)
    async with anyio.create_task_group() as tg:

        async def run_reader() -> None:
            with wire.reader_scope:
                await wire.reader(read_send, max_bytes, first)

        tg.start_soon(run_reader)
        tg.start_soon(wire.writer, write_recv)
        try:
            yield read_recv, write_send
        finally:
            wire.reader_scope.cancel()
            # Let the writer drain the last responses before the connection closes.
            await write_send.aclose()


class _Wire:
    """One connection's byte stream: lines in, messages and error replies out."""

    def __init__(
        self, stream: ByteStream, hidden: set[Any], on_sent: Callable[[SessionMessage], Awaitable[None]] | None,
    ) -> None:
        self._stream = stream
        self._hidden = hidden
        self._on_sent = on_sent
        # Uncontended (nearly always), taken without a turn of the event loop before each reply.
        self._send_lock = anyio.Lock(fast_acquire=True)
        self.reader_scope = anyio.CancelScope()
        self._peer_gone = False

    async def send_raw(self, data: bytes) -> None:
        if self._peer_gone:
            return
        try:
            async with self._send_lock:
                with anyio.fail_after(WRITE_TIMEOUT_S):
                    await self._stream.send(data)
        except _PEER_GONE:
            self._peer_gone = True
            self.reader_scope.cancel()

    async def reader(self, read_send: MemoryObjectSendStream[SessionMessage | Exception], max_bytes: int, first: bytes) -> None:
        async with read_send:
            async for line in read_lines(self._stream, max_bytes, first):
                if isinstance(line, OversizeMessage):
                    await self.send_raw(error_reply(line.request_id, types.INVALID_REQUEST, str(line)))
                    continue
                parsed = parse_line(line)
                if isinstance(parsed, bytes):
                    await self.send_raw(parsed)
                else:
                    await read_send.send(parsed)

    async def writer(self, write_recv: MemoryObjectReceiveStream[SessionMessage]) -> None:
        async with write_recv:
            async for session_message in write_recv:
                # Keep draining after the peer is gone, so the server never blocks on a reply.
                if not self._is_hidden(session_message.message):
                    data = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await self.send_raw(data.encode() + b"\n")
                if self._on_sent is not None and not self._peer_gone:
                    await self._on_sent(session_message)

    def _is_hidden(self, message: Any) -> bool:
        if not self._hidden or not isinstance(message, types.JSONRPCResponse | types.JSONRPCError):
            return False
        if message.id not in self._hidden:
            return False
        self._hidden.discard(message.id)
        return True
