"""The tool registry: one entry per MCP tool, built from the services.

Everything else about a tool (its JSON schemas, schema.json, TOOL.md, validation,
error mapping, caps, audit) derives from its entry here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from contextd_mcp.mcp.caller import Caller

# Blocking handlers run in a worker thread; async ones (long waits) on the event loop.
Handler = Callable[[Caller, Any], BaseModel] | Callable[[Caller, Any], Awaitable[BaseModel]]


@dataclass(frozen=True)
class ToolDef:
    name: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    handler: Handler
    read_only: bool = False
    idempotent: bool = False
    example: dict[str, Any] = field(default_factory=dict)
    example_result: dict[str, Any] = field(default_factory=dict)
    # A writing tool's text arguments are scrubbed of secrets before it runs (ToolRunner);
    # False only for a tool that must see its input verbatim and stores none of it (bash).
    scrub_input: bool = True


def _strip_titles(node: Any) -> Any:
    """Pydantic titles repeat the property names; dropping them cuts tools/list tokens."""
    if isinstance(node, dict):
        return {
            k: _strip_titles(v)
            for k, v in node.items()
            if not (k == "title" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def input_schema(tool: ToolDef) -> dict[str, Any]:
    return _strip_titles(tool.input_model.model_json_schema())


def output_schema(tool: ToolDef) -> dict[str, Any]:
    return _strip_titles(tool.output_model.model_json_schema(mode="serialization"))
