"""A scripted Anthropic Messages endpoint on 127.0.0.1, so the real Claude Code CLI runs offline.

The agent loop's requests (those that offer the ``Bash`` tool) are answered from a script of
turns, in order: each turn is tool calls (``tool_use`` blocks) or a final text. Every other
request (titles, summaries, quota probes) gets a short text. Every request is recorded, so a
test can assert what Claude Code sent: the system prompt and context its hooks injected, and
the tool results it sends back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 32 << 20  # a request the CLI sends holds the whole conversation and tool list


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Turn:
    """One assistant message: tool calls (stop_reason tool_use) or, with none, a final text."""

    text: str = ""
    tools: tuple[ToolUse, ...] = ()


@dataclass
class Script:
    turns: list[Turn]
    requests: list[dict[str, Any]] = field(default_factory=list)  # every POST body, in order
    served: list[Turn] = field(default_factory=list)
    other_paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def agent_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if _is_agent_loop(r)]

    def next_turn(self, body: dict[str, Any]) -> Turn:
        with self.lock:
            self.requests.append(body)
            if not _is_agent_loop(body):
                return Turn(text="ok")
            turn = self.turns[len(self.served)] if len(self.served) < len(self.turns) else Turn(text="done")
            self.served.append(turn)
            return turn


def _is_agent_loop(body: dict[str, Any]) -> bool:
    return any(tool.get("name") == "Bash" for tool in body.get("tools") or [])


def text_of(request: dict[str, Any]) -> str:
    """The request's system prompt and messages as one string, for "was X sent" assertions."""
    return json.dumps({"system": request.get("system"), "messages": request.get("messages")}, ensure_ascii=False)


def tool_results(request: dict[str, Any]) -> dict[str, str]:
    """tool_use_id → the text Claude Code sent back for it, over the whole conversation."""
    found: dict[str, str] = {}
    for message in request.get("messages") or []:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_result":
                inner = block.get("content")
                if isinstance(inner, list):
                    inner = "".join(part.get("text", "") for part in inner if isinstance(part, dict))
                found[block["tool_use_id"]] = str(inner)
    return found


def _blocks(turn: Turn, serial: int) -> list[dict[str, Any]]:
    if not turn.tools:
        return [{"type": "text", "text": turn.text}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
    for i, tool in enumerate(turn.tools):
        blocks.append({"type": "tool_use", "id": f"toolu_{serial:04d}_{i}", "name": tool.name, "input": tool.input})
    return blocks


def _events(turn: Turn, serial: int, model: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The SSE events of one streamed message, as the real API sends them."""
    usage = {"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    yield "message_start", {"type": "message_start", "message": {
        "id": f"msg_{serial:04d}", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage}}
    for index, block in enumerate(_blocks(turn, serial)):
        if block["type"] == "text":
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "text", "text": ""}}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {**block, "input": {}}
            yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    stop = "tool_use" if turn.tools else "end_turn"
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                            "usage": {"output_tokens": 5}}
    yield "message_stop", {"type": "message_stop"}


class _Handler(BaseHTTPRequestHandler):
    script: Script
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.script.other_paths.append("GET " + self.path)
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "stub"}})

    def do_HEAD(self) -> None:
        self.script.other_paths.append("HEAD " + self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(min(length, MAX_BODY)) or b"{}")
        path = self.path.split("?")[0]
        if path == "/v1/messages/count_tokens":
            self._json(200, {"input_tokens": 100})
            return
        if path != "/v1/messages":
            self.script.other_paths.append("POST " + self.path)
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "stub"}})
            return
        turn = self.script.next_turn(body)
        serial = len(self.script.requests)
        model = str(body.get("model", "claude-stub"))
        if not body.get("stream"):
            self._json(200, {"id": f"msg_{serial:04d}", "type": "message", "role": "assistant", "model": model,
                             "content": _blocks(turn, serial), "stop_reason": "tool_use" if turn.tools else "end_turn",
                             "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}})
            return
        payload = b"".join(
            f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in _events(turn, serial, model)
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: int, data: dict[str, Any]) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def serving(script: Script) -> Iterator[str]:
    """The endpoint on a free loopback port; yields its base URL (for ``ANTHROPIC_BASE_URL``)."""
    handler = type("ScriptedHandler", (_Handler,), {"script": script})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
