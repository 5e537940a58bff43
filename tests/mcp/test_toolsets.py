"""Toolsets: a small default listing, the rest one call away, and a hidden tool is not callable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.container import Container
from contextd_mcp.mcp import toolsets
from contextd_mcp.mcp.caller import Caller, acting_as
from tests.conftest import SCOPE_A
from tests.helpers import data, error_text
from tests.mcp.test_tools_list import _rules, tools_json

pytestmark = pytest.mark.anyio

# Issue 20: the default tools/list costs at most 4,000 tokens at four characters a token.
DEFAULT_BUDGET_CHARS = 16_000
POLICY = {"title": "No force-push", "severity": "critical", "scope": "project",
          "rule": {"kind": "command_regex", "pattern": "git push .*--force"}}


@asynccontextmanager
async def session(
    container: Container, connection: str, selection: str | None = "default", mode: str = "legacy"
) -> AsyncIterator[tuple[Any, list[Any]]]:
    """A real SDK client on its own connection; the second value collects server notifications."""
    heard: list[Any] = []

    async def on_message(message: Any) -> None:
        heard.append(message)

    caller = Caller(scope=SCOPE_A, transport="memory", connection_id=connection, toolsets=selection)
    with acting_as(caller):
        async with Client(container.server(), mode=mode, message_handler=on_message) as client:
            yield AsCaller(client, caller), heard


class AsCaller:
    """An in-process client serves each request in the context it is sent from; this one sends
    every request as its own connection's caller, so two clients can be open at once."""

    def __init__(self, client: Client, caller: Caller) -> None:
        self._client = client
        self._caller = caller

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name == "listen":
            return lambda *a, **k: _Entered(attr(*a, **k), self._caller)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            with acting_as(self._caller):
                return await attr(*args, **kwargs)

        return call


class _Entered:
    def __init__(self, manager: Any, caller: Caller) -> None:
        self._manager = manager
        self._caller = caller

    async def __aenter__(self) -> Any:
        with acting_as(self._caller):
            return await self._manager.__aenter__()

    async def __aexit__(self, *exc: Any) -> Any:
        with acting_as(self._caller):
            return await self._manager.__aexit__(*exc)


async def names(client: Any) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


def tools_in(container: Container, chosen: frozenset[str]) -> set[str]:
    return {t.name for t in container.tools() if t.toolset in chosen | {toolsets.DISCOVERY}}


async def test_the_default_listing_fits_its_budget_and_holds_the_default_toolsets(container: Container) -> None:
    async with session(container, "c1") as (client, _):
        listed = await client.list_tools()
    text = tools_json(listed)
    assert len(text) <= DEFAULT_BUDGET_CHARS, f"default tools/list is {len(text)} chars (budget {DEFAULT_BUDGET_CHARS})"
    assert {t.name for t in listed.tools} == tools_in(container, toolsets.DEFAULT)
    # What the hooks, the server's instructions and a scripted agent session call (toolsets.py).
    assert {"memory_search", "memory_store", "memory_feedback", "session_start", "session_end",
            "checkpoint_save", "bash", "toolsets"} <= {t.name for t in listed.tools}
    assert WordPieceTokenCounter().count(text) < len(text) / 2  # a sanity bound on the other measure


@pytest.mark.parametrize("selection", ["default", "all"])
async def test_every_listed_schema_keeps_each_rule_of_its_model(container: Container, selection: str) -> None:
    """Compared with the registry's pydantic models, not a frozen copy: a required field, enum
    or limit that goes missing from what clients are sent fails here."""
    async with session(container, "c1", selection) as (client, _):
        listed = (await client.list_tools()).tools
    models = {t.name: t.input_model for t in container.tools()}
    for tool in listed:
        full = models[tool.name].model_json_schema()
        assert _rules(tool.input_schema) == _rules(full), tool.name
        assert tool.input_schema.get("required", []) == full.get("required", []), tool.name


async def test_a_hidden_tool_called_by_name_is_refused_and_names_its_toolset(container: Container) -> None:
    """The attack: an agent that knows a name calls a tool its connection does not list. Before
    toolsets every tool was callable; now the call fails, and nothing is written."""
    async with session(container, "c1") as (client, _):
        assert "policy_set" not in await names(client)
        refused = await client.call_tool("policy_set", POLICY)
        assert refused.is_error
        text = error_text(refused)
        assert text.startswith("not_found: policy_set is in toolset 'policy'"), text
        assert 'toolsets {"enable": ["policy"]}' in text
        # The server keeps serving this connection.
        assert data(await client.call_tool("memory_search", {"query": "force push"})) is not None
    async with session(container, "c2", "policy") as (client, _):
        assert data(await client.call_tool("policy_list", {}))["policies"] == []


async def test_enabling_a_toolset_notifies_that_connection_and_only_it(container: Container) -> None:
    async with session(container, "c1") as (one, heard_one), session(container, "c2") as (two, heard_two):
        answer = data(await one.call_tool("toolsets", {"enable": ["policy"]}))
        assert set(answer["added_tools"]) == tools_in(container, frozenset({"policy"})) - {"toolsets"}
        assert "policy (on, 6 tools): rules that allow, deny or ask before a command or tool runs" in answer["toolsets"]
        with anyio.fail_after(5):
            while not any(isinstance(m, types.ToolListChangedNotification) for m in heard_one):
                await anyio.sleep(0.01)
        assert "policy_set" in await names(one)  # the SDK client re-lists and sees the tools
        assert data(await one.call_tool("policy_set", POLICY))["id"]
        # The other connection: no notice, no new tools, still refused.
        await anyio.sleep(0.1)
        assert not any(isinstance(m, types.ToolListChangedNotification) for m in heard_two)
        assert "policy_set" not in await names(two)
        assert (await two.call_tool("policy_list", {})).is_error
        # Enabling what is on already announces nothing.
        heard_one.clear()
        assert data(await one.call_tool("toolsets", {"enable": ["policy", "memory"]}))["added_tools"] == []
        await anyio.sleep(0.1)
        assert not any(isinstance(m, types.ToolListChangedNotification) for m in heard_one)


async def test_a_2026_client_hears_list_changed_on_its_listen_stream(container: Container) -> None:
    async with session(container, "c1", mode="auto") as (one, _), session(container, "c2", mode="auto") as (two, _):
        assert one.protocol_version == "2026-07-28"
        assert one.server_capabilities.tools.list_changed is True
        async with one.listen(tools_list_changed=True) as mine, two.listen(tools_list_changed=True) as theirs:
            await one.call_tool("toolsets", {"enable": ["folding"]})
            with anyio.fail_after(5):
                event = await mine.__anext__()
            assert type(event).__name__ == "ToolsListChanged"
            with anyio.move_on_after(0.3) as quiet:
                await theirs.__anext__()
            assert quiet.cancelled_caught, "another connection heard this connection's change"
        assert "branch_create" in await names(one)
        assert "branch_create" not in await names(two)


async def test_prompts_follow_the_skills_toolset(container: Container) -> None:
    async with session(container, "admin", "all") as (admin, _):
        skill = {"name": "review", "description": "Review a diff", "prompt_template": "Review {{diff}}"}
        assert not (await admin.call_tool("skill_create", skill)).is_error
        assert [p.name for p in (await admin.list_prompts()).prompts] == ["review"]
    async with session(container, "c1") as (client, heard):
        assert (await client.list_prompts()).prompts == []
        with pytest.raises(MCPError, match=r"toolset 'skills'.*enable"):
            await client.get_prompt("review", {"diff": "x"})
        await client.call_tool("toolsets", {"enable": ["skills"]})
        with anyio.fail_after(5):
            while not any(isinstance(m, types.PromptListChangedNotification) for m in heard):
                await anyio.sleep(0.01)
        assert [p.name for p in (await client.list_prompts()).prompts] == ["review"]


async def test_a_bad_toolset_name_is_named_and_the_server_keeps_serving(container: Container) -> None:
    async with session(container, "c1", "memory,nope") as (client, _):
        assert (await client.list_tools()).tools == []  # and each call says why:
        text = error_text(await client.call_tool("memory_search", {"query": "x"}))
        assert text.startswith("invalid_input: toolsets") and "'nope'" in text and "memory, sessions" in text
    async with session(container, "c2") as (client, _):
        bad = error_text(await client.call_tool("toolsets", {"enable": ["nope"]}))
        assert bad.startswith("invalid_input: toolsets: enable.0:"), bad
        too_long = error_text(await client.call_tool("toolsets", {"enable": ["memory"] * 20}))
        assert "enable:" in too_long and "at most 11" in too_long
        assert "memory_search" in await names(client)


async def test_a_connection_without_a_session_id_is_told_to_use_the_header(container: Container) -> None:
    """Stateless HTTP has nothing to remember an enable by; the answer says what works instead."""
    async with session(container, "") as (client, _):
        text = error_text(await client.call_tool("toolsets", {"enable": ["policy"]}))
        assert text.startswith("invalid_input: enable:") and "X-Contextd-Toolsets" in text


async def test_the_toolsets_answer_is_one_line_a_toolset(container: Container) -> None:
    async with session(container, "c1") as (client, _):
        lines = data(await client.call_tool("toolsets", {}))["toolsets"]
    listed = {line.split(" ", 1)[0] for line in lines}
    assert listed == {name for name in toolsets.TOOLSETS if any(t.toolset == name for t in container.tools())}
    on = {line.split(" ", 1)[0] for line in lines if " (on, " in line}
    assert on == set(toolsets.DEFAULT)
    assert all(len(line) <= 120 for line in lines), json.dumps(lines)


def test_parse_expands_all_and_default_and_names_an_unknown_toolset() -> None:
    assert toolsets.parse("all") == frozenset(toolsets.TOOLSETS)
    assert toolsets.parse(None) == toolsets.parse("default") == toolsets.DEFAULT
    assert toolsets.parse(" Memory , policy ") == {"memory", "policy"}
    with pytest.raises(ValueError, match="unknown toolset 'polcy'.*policy"):
        toolsets.parse("memory,polcy")
    with pytest.raises(ValueError, match="at most 256"):
        toolsets.parse("memory," * 100)


def test_run_time_additions_are_per_connection_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from contextd_mcp import limits

    monkeypatch.setattr(limits, "TOOLSET_CONNECTIONS_MAX", 3)
    enabled = toolsets.Enabled(toolsets.DEFAULT)
    callers = [Caller(scope=SCOPE_A, transport="socket", connection_id=f"c{i}") for i in range(5)]
    for caller in callers:
        assert enabled.add(caller, {"policy"}) == {"policy"}
    # The two oldest connections are forgotten: back to their starting choice, nothing else.
    assert ["policy" in enabled.of(c) for c in callers] == [False, False, True, True, True]
    enabled.forget("c4")
    assert "policy" not in enabled.of(callers[4])
    with pytest.raises(LookupError):
        enabled.add(Caller(scope=SCOPE_A, transport="http"), {"policy"})
