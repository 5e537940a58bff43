"""The shared framing: what a bad line is answered with, and the id it carries."""

from __future__ import annotations

import json

import anyio
import pytest

from contextd_mcp.limits import ECHOED_ID_MAX
from contextd_mcp.transports.framing import OversizeMessage, echoable_id, id_in_prefix, parse_line, read_lines


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"x":"', 17),
        (b'{"jsonrpc":"2.0", "id" : "req-9", "method"', "req-9"),
        (b'{"id":-3,', -3),
        (b'{"id":"with \\"quote\\"",', 'with "quote"'),
        (b'{"id":1.5,"method"', None),  # not an integer: JSON-RPC ids are strings or integers
        (b'{"id":{"a":1}}', None),
        (b'{"id":' + b"9" * 40, None),  # beyond 64 bits
        (b'{"id":"' + b"s" * (ECHOED_ID_MAX + 1) + b'"}', None),
        (b'{"method":"x","params":{"pad":"', None),
    ],
)
def test_the_id_is_read_from_a_lines_prefix(prefix: bytes, expected: object) -> None:
    assert id_in_prefix(prefix) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [({"id": 4}, 4), ({"id": "a"}, "a"), ({"id": True}, None), ({"id": [1]}, None), ({"id": 2**64}, None), ([], None)],
)
def test_only_echoable_ids_are_echoed(message: object, expected: object) -> None:
    assert echoable_id(message) == expected


@pytest.mark.parametrize(
    ("line", "expected_id"),
    [
        (b"garbage", None),
        (b"\xff\xfe not utf-8", None),
        (b'{"jsonrpc":"2.0","id":8,"method":5}', 8),
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}', None),  # else taken for a notification
        (b"[" * 100_000 + b"]" * 100_000, None),
    ],
)
def test_a_bad_line_gets_a_parse_error_with_its_id(line: bytes, expected_id: object) -> None:
    reply = parse_line(line)
    assert isinstance(reply, bytes)
    body = json.loads(reply)
    assert body["id"] == expected_id and body["error"]["code"] == -32700


def test_a_valid_request_and_a_notification_pass() -> None:
    assert not isinstance(parse_line(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'), bytes)
    assert not isinstance(parse_line(b'{"jsonrpc":"2.0","method":"notifications/initialized"}'), bytes)


@pytest.mark.anyio
async def test_an_oversize_line_is_reported_once_with_its_id_and_the_next_line_is_read() -> None:
    big = b'{"jsonrpc":"2.0","id":5,"params":"' + b"x" * 20_000 + b'"}\n'
    stream = _Chunks([big[:7000], big[7000:], b'{"ok":1}\n'])
    lines = [line async for line in read_lines(stream, 4096)]  # type: ignore[arg-type]
    assert len(lines) == 2 and isinstance(lines[0], OversizeMessage) and lines[0].request_id == 5
    assert lines[1] == b'{"ok":1}'


class _Chunks:
    """What a peer sent, chunk by chunk, then end of stream."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._chunks:
            raise anyio.EndOfStream
        return self._chunks.pop(0)
