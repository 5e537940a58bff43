"""The tool registry: one entry per MCP tool, declared as data and bound to a service call.

Everything else about a tool (its JSON schemas, schema.json, TOOL.md, validation,
error mapping, caps, audit) derives from its entry here.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic import BaseModel

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.models.scope import Scope

# Blocking handlers run in a worker thread; async ones (long waits) on the event loop.
Handler = Callable[[Caller, Any], BaseModel] | Callable[[Caller, Any], Awaitable[BaseModel]]


@dataclass(frozen=True)
class ToolSpec:
    """A tool as data: what it is called, takes, answers and promises. Declared at module level
    in ``mcp/tools/``, so the docs render from it without building any service (mcp/catalog.py)."""

    name: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    read_only: bool = False
    idempotent: bool = False
    # Deletes, overwrites or runs arbitrary effects (MCP's destructiveHint). Clients may approve a
    # non-destructive tool without asking, so any tool that can lose data or run commands says so.
    destructive: bool = False
    example: dict[str, Any] = field(default_factory=dict)
    example_result: dict[str, Any] = field(default_factory=dict)
    # A writing tool's text arguments are scrubbed of secrets before it runs (ToolRunner);
    # False only for a tool that must see its input verbatim and stores none of it (bash).
    scrub_input: bool = True
    # The toolset it belongs to (mcp/toolsets.py): listed and callable only where enabled.
    toolset: str = ""

    def __post_init__(self) -> None:
        if self.read_only and self.destructive:
            raise ValueError(f"tool {self.name}: a read-only tool cannot be destructive")

    def bind(self, handler: Handler) -> ToolDef:
        return ToolDef(**{f.name: getattr(self, f.name) for f in fields(ToolSpec)}, handler=handler)


@dataclass(frozen=True)
class ToolDef(ToolSpec):
    """A declared tool with the service call that answers it."""

    handler: Handler = field(kw_only=True)


def in_scope(call: Callable[[Scope, Any], BaseModel]) -> Handler:
    """The handler of most tools: the service answers the request in the caller's scope."""

    def handle(caller: Caller, req: Any) -> BaseModel:
        return call(caller.scope, req)

    return handle


def bind(specs: Sequence[ToolSpec], handlers: Mapping[str, Handler]) -> list[ToolDef]:
    """Each spec with its handler, in the specs' order; a spec without a handler, or a handler
    without a spec, is a wiring mistake and stops the build, named."""
    declared = [s.name for s in specs]
    if set(declared) != set(handlers):
        missing, extra = set(declared) - set(handlers), set(handlers) - set(declared)
        raise ValueError(f"tool handlers do not match the specs: missing {sorted(missing)}, extra {sorted(extra)}")
    return [spec.bind(handlers[spec.name]) for spec in specs]


def tool_annotations(tool: ToolSpec) -> dict[str, bool]:
    """The tool's MCP hints. Every tool pays them in every agent's context, so a hint whose
    absence already reads safely is left out: not read-only (the spec's default), not idempotent
    (the default). ``destructiveHint`` is always stated for a writer, true or false: the spec
    defaults it to true, but clients that take a missing hint for false exist, and a delete must
    not pass for harmless. Destructive and idempotent mean nothing for a read-only tool (spec).
    No tool reaches outside this machine: ``bash`` has no network and the store is local."""
    if tool.read_only:
        return {"readOnlyHint": True, "openWorldHint": False}
    hints = {"destructiveHint": tool.destructive, "openWorldHint": False}
    return {**hints, "idempotentHint": True} if tool.idempotent else hints


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


_NULL = {"type": "null"}


def _optional(prop: Any) -> Any:
    """An optional argument: ``anyOf: [X, null], default: null`` becomes X.

    Leaving it out already means null (no model tells the two apart), so the listed schema
    asks for X or nothing. The outer description wins over X's own, as pydantic does for a
    field that is not nullable.
    """
    if not isinstance(prop, dict) or prop.get("default", 0) is not None:
        return prop  # required, or with a real default: listed as it is
    prop = {k: v for k, v in prop.items() if k != "default"}
    options = prop.get("anyOf")
    if not isinstance(options, list) or _NULL not in options:
        return prop
    rest = [o for o in options if o != _NULL]
    outer = {k: v for k, v in prop.items() if k != "anyOf"}
    if len(rest) != 1:
        return {**outer, "anyOf": rest}
    return {**rest[0], **outer}


def _compact(node: Any, key: str = "") -> Any:
    """What an input schema carries only for code generators, dropped; every rule an agent
    must follow (types, enums, limits, required, descriptions) stays."""
    if isinstance(node, list):
        return [_compact(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "discriminator":  # OpenAPI's hint; each branch already pins its "kind" with const
            continue
        if k == "type" and "const" in node:  # the const says it
            continue
        if k == "description" and key == "$def" and "enum" in node:  # an enum class's docstring
            continue
        if k == "properties" and isinstance(v, dict):
            out[k] = {name: _compact(_optional(prop)) for name, prop in v.items()}
        elif k == "$defs" and isinstance(v, dict):
            out[k] = {name: _compact(d, "$def") for name, d in v.items()}
        else:
            out[k] = _compact(v)
    return out


def input_schema(tool: ToolSpec) -> dict[str, Any]:
    """The schema listed to clients and documented; calls are validated by ``tool.input_model``
    itself (ToolRunner), so compacting it changes no rule and no error message."""
    return copy.deepcopy(_input_schema(tool.input_model))


def output_schema(tool: ToolSpec) -> dict[str, Any]:
    return copy.deepcopy(_output_schema(tool.output_model))


# Per model class, once per process: generating the 37 tools' schemas took 0.5 s of a 3.6 s
# container build (profiled under load); every test builds a container. Callers get copies.
@functools.cache
def _input_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema: dict[str, Any] = _compact(_strip_titles(model.model_json_schema()))
    return schema


@functools.cache
def _output_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema: dict[str, Any] = _strip_titles(model.model_json_schema(mode="serialization"))
    return schema
