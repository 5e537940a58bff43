"""Agent config tools and agent access control, through a real MCP client."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from contextd_mcp.container import Container
from contextd_mcp.mcp.access import TOOL_ACCESS
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.models.scope import Scope
from tests.conftest import SCOPE_A
from tests.helpers import connected, connected_as, data, error_text

pytestmark = pytest.mark.anyio

READER = {
    "name": "reader",
    "description": "Reads memories and skills, writes nothing.",
    "system_prompt": "You answer questions from what the team has learned.",
    "collections_access": {"memories": "read", "skills": "read"},
}


async def skill(client: Any, name: str) -> dict[str, Any]:
    return data(await client.call_tool(
        "skill_create", {"name": name, "description": f"{name} skill.", "prompt_template": "Do {{thing}}."}
    ))


async def test_create_validates_and_resolves_skills(client: Any) -> None:
    review = await skill(client, "review")
    made = data(await client.call_tool("agent_create", {
        **READER, "skills": ["review"], "temperature": 0.2, "max_tokens": 4000,
        "model_preference": "claude-sonnet", "tools_enabled": ["memory_search", "skill_get"],
    }))
    assert made["skills"] == [{"id": review["id"], "name": "review"}] and made["missing_skills"] == []
    assert made["collections_access"] == {"memories": "read", "skills": "read"}
    assert made["tools_enabled"] == ["memory_search", "skill_get"] and made["temperature"] == 0.2
    assert data(await client.call_tool("agent_get", {"name": "reader"}))["id"] == made["id"]
    assert data(await client.call_tool("agent_get", {"agent_id": made["id"]}))["system_prompt"] == READER["system_prompt"]
    listed = data(await client.call_tool("agent_list", {}))["agents"]
    assert [(a["name"], a["skills"]) for a in listed] == [("reader", 1)]


async def test_omitted_access_means_every_kind(client: Any) -> None:
    made = data(await client.call_tool("agent_create", {k: v for k, v in READER.items() if k != "collections_access"}))
    assert set(made["collections_access"]) >= {"memories", "checkpoints", "remediations", "policies", "skills", "agents"}
    assert set(made["collections_access"].values()) == {"write"}


INVALID = [
    ({"skills": ["no-such-skill"]}, "invalid_input: skills.0: no skill 'no-such-skill' applies here"),
    ({"temperature": 2.5}, "invalid_input: agent_create: temperature: Input should be less than or equal to 2"),
    ({"temperature": -0.1}, "invalid_input: agent_create: temperature: Input should be greater than or equal to 0"),
    ({"max_tokens": 0}, "invalid_input: agent_create: max_tokens: Input should be greater than or equal to 1"),
    ({"max_tokens": 10**7}, "invalid_input: agent_create: max_tokens: Input should be less than or equal to 200000"),
    ({"tools_enabled": ["memory_search", "rm_rf"]}, "invalid_input: tools_enabled.1: no tool named 'rm_rf'"),
    ({"collections_access": {"secrets": "read"}}, "invalid_input: agent_create: collections_access.secrets"),
    ({"collections_access": {"memories": "admin"}}, "invalid_input: agent_create: collections_access.memories"),
    ({"name": "has space"}, "invalid_input: agent_create: name: Value error"),
]


async def test_invalid_configs_are_refused(client: Any) -> None:
    for change, expected in INVALID:
        assert error_text(await client.call_tool("agent_create", {**READER, **change})).startswith(expected), change
    assert data(await client.call_tool("agent_list", {}))["agents"] == []


async def test_a_skill_from_another_tenant_cannot_be_referenced(container: Container) -> None:
    async with connected_as(container, Scope(tenant="globex", project="api")) as other:
        theirs = await skill(other, "secret-sauce")
    async with connected_as(container, SCOPE_A) as client:
        for ref in (theirs["id"], "secret-sauce"):
            text = error_text(await client.call_tool("agent_create", {**READER, "skills": [ref]}))
            assert text == f"invalid_input: skills.0: no skill {ref!r} applies here (create it first)"


async def test_update_delete_and_deleted_skill_shows_missing(client: Any) -> None:
    review = await skill(client, "review")
    made = data(await client.call_tool("agent_create", {**READER, "skills": [review["id"]]}))
    changed = data(await client.call_tool("agent_update", {"agent_id": made["id"], "temperature": 1.5, "name": "reader2"}))
    assert (changed["temperature"], changed["name"]) == (1.5, "reader2")
    bad = error_text(await client.call_tool("agent_update", {"agent_id": made["id"], "tools_enabled": ["nope"]}))
    assert bad.startswith("invalid_input: tools_enabled.0:")
    await client.call_tool("skill_delete", {"skill_id": review["id"]})
    after = data(await client.call_tool("agent_get", {"agent_id": made["id"]}))
    assert after["skills"] == [] and after["missing_skills"] == [review["id"]]
    clash = data(await client.call_tool("agent_create", {**READER, "name": "other"}))
    conflict = error_text(await client.call_tool("agent_update", {"agent_id": clash["id"], "name": "READER2"}))
    assert conflict.startswith("conflict:")
    assert data(await client.call_tool("agent_delete", {"agent_id": made["id"]}))["deleted"] is True
    assert error_text(await client.call_tool("agent_get", {"agent_id": made["id"]})) == (
        f"not_found: agent {made['id']!r} not found"
    )


async def test_agent_identity_reads_but_may_not_write(container: Container) -> None:
    async with connected_as(container, SCOPE_A) as admin:
        await admin.call_tool("agent_create", READER)
        mid = data(await admin.call_tool("memory_store", {"title": "Pin images", "content": "Pin docker tags."}))["id"]
    async with connected_as(container, SCOPE_A, agent="reader") as reader:
        assert data(await reader.call_tool("memory_get", {"memory_id": mid}))["title"] == "Pin images"
        assert data(await reader.call_tool("memory_search", {"query": "docker image tags"}))["memories"]
        denied = error_text(await reader.call_tool("memory_store", {"title": "x", "content": "y"}))
        assert denied == "denied: agent 'reader' may not write memories"
        denied = error_text(await reader.call_tool("memory_feedback", {"memory_id": mid, "helpful": True}))
        assert denied == "denied: agent 'reader' may not write memories"
        assert error_text(await reader.call_tool("agent_list", {})) == "denied: agent 'reader' may not read agents"
        assert error_text(await reader.call_tool("skill_create", {
            "name": "x", "description": "x", "prompt_template": "x"
        })) == "denied: agent 'reader' may not write skills"
    async with connected_as(container, SCOPE_A) as admin:  # nothing was written
        assert data(await admin.call_tool("memory_get", {"memory_id": mid}))["helpful_count"] == 0


async def test_updates_apply_to_the_next_call(container: Container) -> None:
    async with connected_as(container, SCOPE_A) as admin:
        agent = data(await admin.call_tool("agent_create", READER))
    async with connected_as(container, SCOPE_A, agent="reader") as reader:
        assert error_text(await reader.call_tool("memory_store", {"title": "a", "content": "b"})).startswith("denied:")
        async with connected_as(container, SCOPE_A) as admin:
            await admin.call_tool("agent_update", {"agent_id": agent["id"], "collections_access": {"memories": "write"}})
        assert data(await reader.call_tool("memory_store", {"title": "a", "content": "b"}))["id"]
        assert error_text(await reader.call_tool("skill_list", {})) == "denied: agent 'reader' may not read skills"


async def test_tools_enabled_limits_the_tools(container: Container) -> None:
    async with connected_as(container, SCOPE_A) as admin:
        await admin.call_tool("agent_create", {**READER, "tools_enabled": ["memory_search"]})
    async with connected_as(container, SCOPE_A, agent="reader") as reader:
        assert data(await reader.call_tool("memory_search", {"query": "anything"}))["memories"] == []
        text = error_text(await reader.call_tool("memory_get", {"memory_id": "6f1c2b9e-3f7a-4c1d-9a57-0b8e2d4c1a10"}))
        assert text == "denied: agent 'reader' has not enabled the tool memory_get"


async def test_unconfigured_agent_identity_is_refused(container: Container) -> None:
    async with connected_as(container, SCOPE_A, agent="ghost") as ghost:
        text = error_text(await ghost.call_tool("memory_search", {"query": "x"}))
        assert text.startswith("denied: this connection acts as agent 'ghost', which is not configured")
    # An agent of another tenant with the same name does not count.
    async with connected_as(container, Scope(tenant="globex", project="api")) as other:
        await other.call_tool("agent_create", {**READER, "name": "ghost"})
    async with connected_as(container, SCOPE_A, agent="ghost") as ghost:
        assert error_text(await ghost.call_tool("memory_search", {"query": "x"})).startswith("denied:")


async def test_an_agent_cannot_grant_more_than_it_has(container: Container) -> None:
    async with connected_as(container, SCOPE_A) as admin:
        await admin.call_tool("agent_create", {**READER, "name": "maker", "collections_access": {
            "agents": "write", "memories": "read"}})
    async with connected_as(container, SCOPE_A, agent="maker") as maker:
        wider = error_text(await maker.call_tool("agent_create", {**READER, "name": "w", "collections_access": {
            "memories": "write"}}))
        assert wider == "denied: agent 'maker' may not grant write on memories, which it lacks itself"
        full = error_text(await maker.call_tool("agent_create", {k: v for k, v in READER.items() if k != "collections_access"}
                                                | {"name": "f"}))
        assert full.startswith("denied: agent 'maker' may not grant write on")
        ok = data(await maker.call_tool("agent_create", {**READER, "name": "n", "collections_access": {
            "memories": "read"}}))
        assert ok["collections_access"] == {"memories": "read"}
        self_id = data(await maker.call_tool("agent_get", {"name": "maker"}))["id"]
        raise_self = error_text(await maker.call_tool("agent_update", {"agent_id": self_id, "collections_access": {
            "memories": "write", "agents": "write"}}))
        assert raise_self.startswith("denied: agent 'maker' may not grant write on memories")


async def test_prompts_follow_the_agents_skill_access(container: Container) -> None:
    async with connected_as(container, SCOPE_A) as admin:
        await skill(admin, "review")
        await admin.call_tool("agent_create", {**READER, "name": "blind", "collections_access": {"memories": "read"}})
        await admin.call_tool("agent_create", READER)
    async with connected_as(container, SCOPE_A, agent="reader") as reader:
        assert [p.name for p in (await reader.list_prompts()).prompts] == ["review"]
    async with connected_as(container, SCOPE_A, agent="blind") as blind:
        assert (await blind.list_prompts()).prompts == []
        with pytest.raises(MCPError, match="denied: agent 'blind' may not read skills"):
            await blind.get_prompt("review", {"thing": "x"})


async def test_session_started_for_an_agent_is_confined_to_its_access(container: Container) -> None:
    async with connected_as(container, SCOPE_A) as admin:
        await admin.call_tool("agent_create", {**READER, "collections_access": {
            "memories": "read", "sessions": "write", "checkpoints": "read"}})
        await admin.call_tool("agent_create", {**READER, "name": "other"})
    async with connected_as(container, SCOPE_A, connection_id="c1") as client:
        started = data(await client.call_tool("session_start", {"task": "review the PR", "agent": "reader"}))
        assert started["session_id"]
        assert error_text(await client.call_tool("memory_store", {"title": "a", "content": "b"})) == (
            "denied: agent 'reader' may not write memories"
        )
        assert error_text(await client.call_tool("checkpoint_save", {"summary": "half done"})) == (
            "denied: agent 'reader' may not write checkpoints"
        )
        assert data(await client.call_tool("memory_search", {"query": "pull request review"}))["memories"] == []
        # Neither another agent, nor ending the session, lifts the binding.
        switch = error_text(await client.call_tool("session_start", {"agent": "other"}))
        assert switch == "denied: this connection acts as agent 'reader'; it cannot start a session as 'other'"
        assert error_text(await client.call_tool("session_end", {"outcome": "success"})) == (
            "denied: agent 'reader' may not write memories"
        )
        assert data(await client.call_tool("session_start", {"task": "again"}))["session_id"]
        assert error_text(await client.call_tool("memory_store", {"title": "a", "content": "b"})).startswith("denied:")
    async with connected_as(container, SCOPE_A, connection_id="c2") as other_connection:  # bindings are per connection
        assert data(await other_connection.call_tool("memory_store", {"title": "a", "content": "b"}))["id"]
    assert len(container.agent_bindings) == 1


async def test_session_start_refuses_unknown_foreign_and_unfit_agents(container: Container) -> None:
    async with connected_as(container, Scope(tenant="globex", project="api")) as other:
        foreign = data(await other.call_tool("agent_create", {**READER, "name": "spy"}))
    async with connected_as(container, SCOPE_A) as admin:
        await admin.call_tool("agent_create", {**READER, "name": "nosession"})  # no "sessions" access
    async with connected_as(container, SCOPE_A, connection_id="c3") as client:
        for ref in ("spy", foreign["id"], "missing"):
            assert error_text(await client.call_tool("session_start", {"agent": ref})) == (
                f"not_found: agent {ref!r} not found"
            )
        assert error_text(await client.call_tool("session_start", {"agent": "nosession"})) == (
            "denied: agent 'nosession' may not write sessions"
        )
        # Nothing was bound by the refusals.
        assert data(await client.call_tool("memory_store", {"title": "a", "content": "b"}))["id"]
    assert len(container.agent_bindings) == 0


async def test_identity_agent_cannot_start_a_session_as_another(container: Container) -> None:
    full = {k: v for k, v in READER.items() if k != "collections_access"}
    async with connected_as(container, SCOPE_A) as admin:
        await admin.call_tool("agent_create", full)
        await admin.call_tool("agent_create", {**full, "name": "wider"})
    async with connected_as(container, SCOPE_A, agent="reader", connection_id="c4") as client:
        text = error_text(await client.call_tool("session_start", {"agent": "wider"}))
        assert text == "denied: this connection acts as agent 'reader'; it cannot start a session as 'wider'"
        assert data(await client.call_tool("session_start", {"agent": "reader"}))["session_id"]


def test_bindings_are_sticky_and_released_per_connection() -> None:
    from contextd_mcp.errors import Denied
    from contextd_mcp.mcp.access import AgentBindings

    bindings = AgentBindings()
    caller = Caller(scope=SCOPE_A, transport="socket", connection_id="c1")
    same_id_other_tenant = Caller(scope=Scope(tenant="globex", project="api"), transport="socket", connection_id="c1")
    bindings.bind(caller, "id-1", "reader")
    bindings.bind(caller, "id-1", "reader")  # idempotent
    with pytest.raises(Denied, match="already acts as agent 'reader'"):
        bindings.bind(caller, "id-2", "other")
    assert bindings.bound(caller) == "id-1"
    assert bindings.bound(same_id_other_tenant) is None
    assert bindings.bound(Caller(scope=SCOPE_A, transport="socket", connection_id="c1", agent="x")) == "id-1"
    assert bindings.bound(Caller(scope=SCOPE_A, transport="socket", connection_id="c2", agent="x")) is None
    bindings.release(caller)
    assert bindings.bound(caller) is None and len(bindings) == 0


def test_every_registered_tool_has_an_access_rule(container: Container) -> None:
    missing = sorted(set(container.runner.tools) - set(TOOL_ACCESS))
    assert not missing, f"add these tools to mcp/access.py TOOL_ACCESS: {missing}"


async def test_a_tool_without_a_rule_is_denied_to_agents(container: Container) -> None:
    from contextd_mcp.mcp import access

    async with connected_as(container, SCOPE_A) as admin:
        await admin.call_tool("agent_create", {k: v for k, v in READER.items() if k != "collections_access"})
    saved = access.TOOL_ACCESS.pop("memory_search")
    try:
        async with connected_as(container, SCOPE_A, agent="reader") as reader:
            text = error_text(await reader.call_tool("memory_search", {"query": "x"}))
            assert text == "denied: agent 'reader' may not call memory_search: the tool has no access rule for agents"
        async with connected_as(container, SCOPE_A) as admin:  # a connection with no agent is not affected
            assert data(await admin.call_tool("memory_search", {"query": "x"}))["memories"] == []
    finally:
        access.TOOL_ACCESS["memory_search"] = saved


async def test_an_agent_held_by_id_is_that_agent_in_any_project_of_its_tenant(container: Container) -> None:
    """A token's agent (``Caller.agent_id``): a same-named agent where the request points is not it."""
    async with connected_as(container, SCOPE_A) as admin:
        held = data(await admin.call_tool("agent_create", READER))
    other = Scope(tenant=SCOPE_A.tenant, team=SCOPE_A.team, project="open")
    async with connected_as(container, other) as admin:
        data(await admin.call_tool("agent_create", {**READER, "collections_access": None}))  # full access, same name
    for scope in (SCOPE_A, other):
        as_token = Caller(scope=scope, transport="http", agent="reader", agent_id=held["id"])
        async with connected(container, as_token) as client:
            refused = error_text(await client.call_tool("memory_store", {"title": "t", "content": "c"}))
            assert refused == "denied: agent 'reader' may not write memories"
            # Nor can it become the full-access 'reader' of "open" by starting a session as it.
            refused = error_text(await client.call_tool("session_start", {"agent": "reader"}))
            assert refused == "denied: agent 'reader' may not write sessions"
    foreign = Caller(scope=Scope(tenant="globex", project="api"), transport="http", agent="reader", agent_id=held["id"])
    async with connected(container, foreign) as client:  # the id, in another tenant, is nobody
        assert "no longer exists" in error_text(await client.call_tool("memory_search", {"query": "x"}))
