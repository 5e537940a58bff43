"""tools/list is read by every agent on every session: it stays small, and compacting it loses no rule."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.container import Container
from contextd_mcp.mcp.registry import input_schema
from tests.helpers import data

pytestmark = pytest.mark.anyio

# The full listing (every toolset, as this suite's client has it) may not grow past its size
# before toolsets (35,893 chars, issue 20); 35,853 chars / 14,176 WordPiece tokens for 36 tools
# once they came. A new tool or field may need more: make room first (tests/mcp/test_toolsets.py
# holds the default listing's own, much smaller, budget).
BUDGET_CHARS = 35_893
BUDGET_TOKENS = 14_300

# Keys that are rules an agent must follow: each one in the model's schema must be listed.
RULES = {
    "maxLength", "minLength", "maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum", "multipleOf",
    "maxItems", "minItems", "uniqueItems", "maxProperties", "minProperties", "pattern", "enum", "const",
    "required", "additionalProperties", "default",
}


def tools_json(listed: Any) -> str:
    """As bench/contextd.py's session_figures measures it."""
    return json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed.tools])


async def test_tools_list_stays_within_its_budget(client: Any) -> None:
    text = tools_json(await client.list_tools())
    tokens = WordPieceTokenCounter().count(text)
    assert len(text) <= BUDGET_CHARS, f"tools/list grew to {len(text)} chars (budget {BUDGET_CHARS})"
    assert tokens <= BUDGET_TOKENS, f"tools/list grew to {tokens} WordPiece tokens (budget {BUDGET_TOKENS})"


async def test_listed_schemas_carry_no_generator_noise(client: Any) -> None:
    for tool in (await client.list_tools()).tools:
        text = json.dumps(tool.input_schema)
        assert '"title": "' not in text, f"{tool.name} lists pydantic titles"
        assert '{"type": "null"}' not in text, f"{tool.name} lists a nullable anyOf"
        assert '"default": null' not in text, f"{tool.name} lists a null default"
        assert "discriminator" not in text, tool.name
        assert tool.description and len(tool.description) >= 15, f"{tool.name} needs a description"


def _walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str, Any]]:
    """(where, key, value) for every key; where names properties and $defs, not anyOf branches."""
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, path)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            for name, sub in value.items():
                yield from _walk(sub, (*path, name) if key == "properties" else (*path, "$defs", name))
        elif key in ("items", "additionalProperties", "propertyNames") and isinstance(value, dict):
            yield from _walk(value, (*path, key))
        else:
            yield path, key, value
            if key != "enum":
                yield from _walk(value, path)


def _rules(schema: dict[str, Any]) -> Counter[tuple[tuple[str, ...], str, str]]:
    return Counter(
        (path, key, json.dumps(value, sort_keys=True))
        for path, key, value in _walk(schema)
        if key in RULES and not (key == "default" and value is None)
    )


def test_compacting_keeps_every_rule_and_description(container: Container) -> None:
    for tool in container.tools():
        full = tool.input_model.model_json_schema()
        listed = input_schema(tool)
        assert _rules(listed) == _rules(full), tool.name
        wanted: dict[tuple[str, ...], set[str]] = {}
        enum_defs = {("$defs", name) for name, d in full.get("$defs", {}).items() if "enum" in d}
        for path, key, value in _walk(full):
            if key == "description" and isinstance(value, str) and path not in enum_defs:
                wanted.setdefault(path, set()).add(value)
        kept: dict[tuple[str, ...], set[str]] = {}
        for path, key, value in _walk(listed):
            if key == "description" and isinstance(value, str):
                kept.setdefault(path, set()).add(value)
        for path, texts in wanted.items():
            # A nullable field described both inside and outside lists the outer text, as pydantic does.
            assert kept.get(path) and kept[path] <= texts, (tool.name, path, texts, kept.get(path))


async def test_an_explicit_null_is_still_accepted(client: Any) -> None:
    """The listed schema asks optional arguments to be left out; calls are validated by the
    pydantic models, so null still means 'left out'."""
    found = data(await client.call_tool("memory_search", {"query": "anything", "outcome": None}))
    assert found["memories"] == [] and set(found) == {"search_id", "memories"}


async def test_annotations_read_with_the_spec_defaults_give_each_tools_flags(client: Any, container: Container) -> None:
    tools = container.runner.tools
    listed = {t.name: t.annotations for t in (await client.list_tools()).tools}
    for name, hints in listed.items():
        read_only = bool(hints.read_only_hint)  # default false
        assert hints.open_world_hint is False, name  # default true: every tool here is closed-world
        if not read_only:  # stated for every writer, true or false (clients differ on its default)
            assert hints.destructive_hint is tools[name].destructive, name
        assert read_only == tools[name].read_only, name
        assert (bool(hints.idempotent_hint) or read_only) == (tools[name].idempotent or read_only), name
