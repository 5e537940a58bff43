"""The attack engine: derives attacks from each tool's input schema, runs them through the
real MCP client, and judges every response.

A response leaks when it shows a protected canary (an id or token of another tenant's object,
or of a sibling project's object when the call did not widen its scope) that the attacker
did not supply itself, or when it differs from a control call (the same call with the probed
id / token replaced by a fresh one) in whether it failed or in the shape of its error: an id
from another tenant must be "not found" exactly like an id that does not exist.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mcp.shared.exceptions import MCPError

from contextd_mcp.mcp.registry import ToolDef, input_schema
from tests.isolation.cases import Case
from tests.isolation.world import Canary, Probe, World

WIDE = ("team", "org")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TOKEN = re.compile(r"(?:gx|sb|zz)[a-z]+\d{5}tok")
# Error messages may quote a value cut short: match the cut forms too when comparing shapes.
_PARTIAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{1,27}")
_PARTIAL_TOKEN = re.compile(r"(?:gx|sb|zz)[a-z]*\d{0,5}(?:tok|to|t)?")
_fresh = iter(range(50_000, 99_999))


@dataclass
class Reply:
    is_error: bool
    text: str
    structured: Any = None


@dataclass
class Tally:
    attempts: int = 0
    accepted: int = 0  # attempts the server ran (not refused as invalid input)
    leaks: list[str] = field(default_factory=list)
    by_tool: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    tainted: set[str] = field(default_factory=set)  # canaries the attacker itself wrote into HOME

    def count(self, tool: str, reply: Reply) -> None:
        self.attempts += 1
        self.by_tool[tool] = self.by_tool.get(tool, 0) + 1
        if not reply.text.startswith(f"invalid_input: {tool}:"):  # refused by the schema, never ran
            self.accepted += 1


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "string", "strings", "built", "scope", "inert", "unhandled"
    max_length: int | None = None


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        return schema["$defs"][ref.rsplit("/", 1)[1]]
    return node


def params_of(tool: ToolDef, case: Case) -> list[Param]:
    schema = input_schema(tool)
    out = []
    for name, prop in schema.get("properties", {}).items():
        options = [_resolve(schema, o) for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
        node = options[0] if len(options) == 1 else {}
        kind, max_length = "unhandled", None
        if name in case.builders:
            kind = "built"
        elif name == "scope" and node.get("enum") == ["project", "team", "org"]:
            kind = "scope"
        elif "enum" in node or node.get("type") in ("integer", "number", "boolean"):
            kind = "inert"  # a number, a flag or a fixed choice cannot name another scope's data
        elif node.get("type") == "string":
            kind, max_length = "string", node.get("maxLength")
        elif node.get("type") == "array" and _resolve(schema, node.get("items", {})).get("type") == "string":
            kind, max_length = "strings", _resolve(schema, node["items"]).get("maxLength")
        elif node.get("type") == "object" and _only_enums(schema, node):
            kind = "inert"  # a map of fixed choices to fixed choices (e.g. collections_access)
        out.append(Param(name, kind, max_length))
    return out


def _only_enums(schema: dict[str, Any], node: dict[str, Any]) -> bool:
    keys = _resolve(schema, node.get("propertyNames", {}))
    values = _resolve(schema, node.get("additionalProperties", {}) or {})
    return "enum" in keys and "enum" in values


def value_for(param: Param, probe: Probe, case: Case) -> Any:
    text = probe.value if param.max_length is None else probe.value[: param.max_length]
    if param.kind == "strings":
        return [text]
    if param.kind == "built":
        return case.builders[param.name](probe.value)
    return text


def control_of(value: Any) -> Any:
    """The same value with every probed id and token replaced by fresh ones of the same form."""
    text = json.dumps(value)
    text = _UUID.sub(lambda _: str(uuid.uuid4()), text)
    text = _TOKEN.sub(lambda m: f"zz{m.group(0)[2:-8]}{next(_fresh):05d}tok", text)
    return json.loads(text)


def shape(text: str) -> str:
    return _PARTIAL_TOKEN.sub("<TOKEN>", _PARTIAL_UUID.sub("<ID>", text))


def _id_values(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if (key == "id" or key.endswith("_id")) and isinstance(value, str):
                yield value
            elif key.endswith("_ids") and isinstance(value, list):
                yield from (v for v in value if isinstance(v, str))
            else:
                yield from _id_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _id_values(item)


def protected(world: World, widened: bool) -> list[Canary]:
    return [c for c in world.canaries if c.target == "foreign" or (not widened and not c.shared)]


def judge(
    world: World, tally: Tally, where: str, args: Any, reply: Reply, control: Reply | None, widened: bool
) -> None:
    sent = json.dumps(args)
    seen = reply.text + json.dumps(reply.structured)
    ids = set(_id_values(reply.structured)) if not reply.is_error else set()
    for canary in protected(world, widened):
        if canary.id in ids:
            tally.leaks.append(f"{where}: returned the {canary.target} {canary.kind} {canary.id}")
        for secret in (canary.id, canary.token):
            if secret in seen and secret not in sent and secret not in tally.tainted:
                tally.leaks.append(f"{where}: showed {canary.target} {canary.kind} canary {secret}")
    if control is not None:
        if reply.is_error != control.is_error:
            tally.leaks.append(f"{where}: answered {'an error' if reply.is_error else 'ok'} where an unknown value "
                               f"gets {'an error' if control.is_error else 'ok'} ({reply.text[:120]!r})")
        elif reply.is_error and shape(reply.text) != shape(control.text):
            tally.leaks.append(f"{where}: error differs from an unknown value's: {reply.text[:160]!r} vs "
                               f"{control.text[:160]!r}")


async def call_tool(client: Any, tool: ToolDef, args: dict[str, Any], tally: Tally) -> Reply:
    result = await client.call_tool(tool.name, args)
    text = "\n".join(getattr(c, "text", "") for c in result.content)
    reply = Reply(bool(result.is_error), text, result.structured_content)
    if not reply.is_error and not tool.read_only:  # what the attacker wrote into HOME may come back later
        tally.tainted |= _canaries_in(args)
    return reply


_serial = iter(range(1, 10**9))


def _numbered(base: dict[str, Any]) -> dict[str, Any]:
    """Fills "{n}" in a base's strings with a fresh number: names that must be unique stay so."""
    return {k: v.replace("{n}", str(next(_serial))) if isinstance(v, str) else v for k, v in base.items()}


def _canaries_in(value: Any) -> set[str]:
    text = json.dumps(value)
    return set(_TOKEN.findall(text)) | set(_UUID.findall(text))


async def get_prompt(client: Any, name: str, arguments: dict[str, str], tally: Tally) -> Reply:
    try:
        result = await client.get_prompt(name, arguments)
    except MCPError as exc:
        reply = Reply(True, str(exc))
    else:
        reply = Reply(False, "\n".join(getattr(m.content, "text", "") for m in result.messages), None)
    return reply


async def attack_tool(
    world: World, client: Any, tool: ToolDef, case: Case, tally: Tally, scopes: tuple[str | None, ...],
    probes: list[Probe],
) -> None:
    started = time.perf_counter()
    try:
        await _attack_tool(world, client, tool, case, tally, scopes, probes)
    finally:
        tally.seconds[tool.name] = round(tally.seconds.get(tool.name, 0.0) + time.perf_counter() - started, 2)


async def _attack_tool(
    world: World, client: Any, tool: ToolDef, case: Case, tally: Tally, scopes: tuple[str | None, ...],
    probes: list[Probe],
) -> None:
    params = params_of(tool, case)
    has_scope = any(p.kind == "scope" for p in params)
    targets = {p.target for p in probes}
    if not has_scope:
        if any(s in WIDE for s in scopes):
            return  # nothing to widen
        scopes = (None,)
    for scope in scopes:
        extra = {} if scope is None else {"scope": scope}
        widened = scope in WIDE
        base = await case.base(world, client)
        where = f"{tool.name}(scope={scope or '-'})"
        bare = {**_numbered(base), **extra}
        reply = await call_tool(client, tool, bare, tally)
        tally.count(tool.name, reply)
        judge(world, tally, where, bare, reply, None, widened)
        # (label, probe, the probed arguments); the control changes only those, never the base.
        attempts: list[tuple[str, Probe, dict[str, Any]]] = []
        for param in params:
            if param.kind not in ("string", "strings", "built"):
                continue
            for probe in probes:
                attempts.append((param.name, probe, {param.name: value_for(param, probe, case)}))
        for probe, combo in case.combos(world) if case.combos else []:
            if probe.target in targets:
                attempts.append(("*", probe, combo))
        for name, probe, probed in attempts:
            args = {**_numbered(base), **extra, **probed}
            # A value the attacker already wrote into HOME (a name it gave its own skill) may
            # rightly conflict now; the comparison with a fresh value is then meaningless.
            own = bool(_canaries_in(probed) & tally.tainted)
            reply = await call_tool(client, tool, args, tally)
            control = await call_tool(client, tool, {**_numbered(base), **extra, **control_of(probed)}, tally)
            tally.count(tool.name, reply)
            label = f"{where} {name}={probe.what} of {probe.target}"
            judge(world, tally, label, args, reply, None if own else control, widened)


async def attack_prompts(world: World, client: Any, tally: Tally, probes: list[Probe]) -> None:
    listed = await client.list_prompts()
    tally.count("prompts/list", Reply(False, ""))
    names = json.dumps([p.model_dump() for p in listed.prompts])
    judge(world, tally, "prompts/list", {}, Reply(False, names), None, widened=False)
    for probe in probes:
        for arguments in ({}, {"service": "x"}):
            own = bool(_canaries_in(probe.value) & tally.tainted)
            reply = await get_prompt(client, probe.value, arguments, tally)
            control = await get_prompt(client, control_of(probe.value), arguments, tally)
            tally.count("prompts/get", reply)
            label = f"prompts/get name={probe.what} of {probe.target}"
            judge(world, tally, label, probe.value, reply, None if own else control, False)


def diff(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    changes = []
    for collection in sorted(set(before) | set(after)):
        old, new = before.get(collection, {}), after.get(collection, {})
        for rid in sorted(set(old) | set(new)):
            if old.get(rid) != new.get(rid):
                what = "created" if rid not in old else "deleted" if rid not in new else "changed"
                fields = sorted(k for k in set(old.get(rid, {})) | set(new.get(rid, {}))
                                if old.get(rid, {}).get(k) != new.get(rid, {}).get(k))
                changes.append(f"{collection}/{rid} {what} {fields if what == 'changed' else ''}".strip())
    return changes
