"""Newline-delimited JSON-RPC over any anyio byte stream (the unix socket, stdio)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import ByteStream
from mcp.shared.message import SessionMessage

log = logging.getLogger("contextd_mcp")


class OversizeMessage(ValueError):
    pass


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
            elif line.strip():
                yield line
            newline = buffer.find(b"\n")
        if len(buffer) > max_bytes:
            if not skipping:
                yield OversizeMessage(f"message larger than {max_bytes} bytes")
            skipping = True
            buffer.clear()
        try:
            chunk = await stream.receive(65536)
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, ConnectionError):
            return
        buffer.extend(chunk)


def _error_reply(request_id: Any, code: int, message: str) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return (json.dumps(body) + "\n").encode()


@asynccontextmanager
async def jsonrpc_streams(stream: ByteStream, max_bytes: int, first: bytes = b"") -> AsyncIterator[tuple[Any, Any]]:
    """The (read, write) stream pair the MCP server runs on, over a byte stream.

    Malformed or oversize input is answered with a JSON-RPC error right here, so the
    session stays up and the client learns what was wrong.
    """
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](16)
    send_lock = anyio.Lock()

    async def send_raw(data: bytes) -> None:
        async with send_lock:
            await stream.send(data)

    async def reader() -> None:
        async with read_send:
            async for line in read_lines(stream, max_bytes, first):
                if isinstance(line, OversizeMessage):
                    await send_raw(_error_reply(None, types.INVALID_REQUEST, str(line)))
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except Exception:
                    await send_raw(_error_reply(None, types.PARSE_ERROR, "parse error: not a JSON-RPC message"))
                    continue
                await read_send.send(SessionMessage(message))

    async def writer() -> None:
        async with write_recv:
            async for session_message in write_recv:
                data = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                try:
                    await send_raw(data.encode() + b"\n")
                except (anyio.ClosedResourceError, anyio.BrokenResourceError, ConnectionError):
                    return

    async with anyio.create_task_group() as tg:
        reader_scope = anyio.CancelScope()

        async def run_reader() -> None:
            with reader_scope:
                await reader()

        tg.start_soon(run_reader)
        tg.start_soon(writer)
        try:
            yield read_recv, write_send
        finally:
            reader_scope.cancel()
            # Let the writer drain the last responses before the connection closes.
            await write_send.aclose()
