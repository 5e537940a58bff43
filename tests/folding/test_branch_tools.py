"""Context folding through the real MCP client, with budgets charged by real tool calls."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from contextd_mcp.container import Container
from contextd_mcp.mcp.caller import CURRENT_CALLER, Caller
from contextd_mcp.models.scope import Scope
from tests.helpers import data, error_text

pytestmark = pytest.mark.anyio

SCOPE = Scope(tenant="acme", team="core", project="api")


class Connection:
    """One in-process MCP connection with its own identity (the socket transport's view)."""

    def __init__(self, container: Container, scope: Scope) -> None:
        self.caller = Caller(scope=scope, transport="memory", connection_id=uuid.uuid4().hex[:12])
        self.client = Client(container.server())

    async def __aenter__(self) -> Connection:
        await self._as_me(self.client.__aenter__())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._as_me(self.client.__aexit__(None, None, None))

    async def _as_me(self, awaitable: Any) -> Any:
        token = CURRENT_CALLER.set(self.caller)
        try:
            return await awaitable
        finally:
            CURRENT_CALLER.reset(token)

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        return await self._as_me(self.client.call_tool(name, arguments))


async def connect(container: Container, scope: Scope = SCOPE) -> Connection:
    return await Connection(container, scope).__aenter__()


@pytest.fixture
async def agent(container: Container) -> AsyncIterator[Any]:
    client = await connect(container)
    data(await client.call_tool("session_start", {"task": "fold some context"}))
    yield client
    await client.__aexit__(None, None, None)


def notices(result: Any) -> str:
    return " ".join(block.text for block in result.content[1:])


async def create(client: Any, **args: Any) -> dict[str, Any]:
    return data(await client.call_tool("branch_create", {"description": "sub-task", **args}))


async def test_nesting_to_the_depth_limit_and_one_over(agent: Any) -> None:
    first = await create(agent)
    second = await create(agent)
    third = await create(agent)
    assert (first["depth"], second["depth"], third["depth"]) == (1, 2, 3)
    assert (first["parent"], second["parent"], third["parent"]) == ("session", first["branch_id"], second["branch_id"])
    refused = error_text(await agent.call_tool("branch_create", {"description": "fourth"}))
    assert "conflict: depth limit" in refused
    status = data(await agent.call_tool("branch_status", {}))
    assert status["active"] == third["branch_id"]
    parent = data(await agent.call_tool("branch_status", {"branch_id": second["branch_id"]}))["branch"]
    assert parent["children"] == [third["branch_id"]] and parent["status"] == "active"


async def test_budget_warns_at_80_and_force_returns_at_100(container: Container, agent: Any) -> None:
    from contextd_mcp.models.branch import BranchStatusRequest

    branch = await create(agent, budget=256)

    def peek() -> dict[str, Any]:  # read through the service: a status tool call would be charged too
        request = BranchStatusRequest(branch_id=branch["branch_id"])
        return container.folding.status(SCOPE, branch["session_id"], request).branch.model_dump(mode="json")

    seen_warning = False
    for i in range(40):
        result = await agent.call_tool("memory_store", {"title": f"Fact {i}", "content": f"Observation number {i}."})
        text, status = notices(result), peek()
        if "force-returned as failed" in text:
            assert seen_warning, "no 80 % warning before the budget ran out"
            assert status["status"] == "failed" and "budget exhausted" in status["reason"]
            assert status["budget"]["used"] >= 256
            break
        assert status["status"] == "active" and status["budget"]["used"] < 256
        if "finish and call branch_return soon" in text:
            seen_warning = True
            assert status["budget"]["used"] >= 0.8 * 256
        else:
            assert status["budget"]["used"] < 0.8 * 256
    else:
        pytest.fail("the budget was never exhausted")
    after = data(await agent.call_tool("branch_status", {}))
    assert after["active"] == "session" and after["branch"] is None
    late = error_text(await agent.call_tool("branch_return", {"branch_id": branch["branch_id"], "message": "done"}))
    assert "already failed" in late


async def test_calls_outside_a_branch_cost_nothing(agent: Any) -> None:
    outer = await create(agent, budget=4096)
    inner = await create(agent, budget=4096)
    before = data(await agent.call_tool("branch_status", {"branch_id": outer["branch_id"]}))["branch"]["budget"]["used"]
    await agent.call_tool("memory_store", {"title": "Inner work", "content": "Charged to the inner branch only."})
    outer_now = data(await agent.call_tool("branch_status", {"branch_id": outer["branch_id"]}))["branch"]["budget"]["used"]
    assert outer_now == before  # status calls and work inside the child are the child's
    inner_used = data(await agent.call_tool("branch_status", {"branch_id": inner["branch_id"]}))["branch"]["budget"]["used"]
    assert inner_used > 0


async def test_timeout_force_returns(agent: Any) -> None:
    branch = await create(agent, timeout_seconds=1)
    time.sleep(1.2)
    result = await agent.call_tool("memory_search", {"query": "anything"})
    assert "timed_out" in notices(result)
    status = data(await agent.call_tool("branch_status", {"branch_id": branch["branch_id"]}))
    assert status["branch"]["status"] == "timed_out" and status["active"] == "session"


async def test_return_closes_open_children_and_caps_the_message(agent: Any) -> None:
    outer = await create(agent)
    middle = await create(agent)
    inner = await create(agent)
    secret = "AKIA" + "QWERTYUIOPASDFGH"
    long_message = f"Found it with key {secret}. " + "detail " * 3000
    returned = data(
        await agent.call_tool("branch_return", {"branch_id": outer["branch_id"], "message": long_message[:8000]})
    )
    assert returned["closed_children"] == [inner["branch_id"], middle["branch_id"]]
    assert returned["active"] == "session" and returned["status"] == "returned"
    assert secret not in returned["message"] and "[REDACTED:" in returned["message"]
    assert returned["message_tokens"] <= 1000
    for child in (middle, inner):
        info = data(await agent.call_tool("branch_status", {"branch_id": child["branch_id"]}))["branch"]
        assert info["status"] == "failed" and "closed before this branch returned" in info["reason"]


async def test_bad_input_leaves_state_unchanged(agent: Any) -> None:
    branch = await create(agent)
    cases = [
        ({"description": "x", "budget": 32769}, "budget:"),
        ({"description": "x", "budget": 100}, "budget:"),
        ({"description": "x", "timeout_seconds": 601}, "timeout_seconds:"),
        ({"description": "x", "prompt": "p" * 8001}, "prompt:"),
        ({}, "description: is required"),
    ]
    for args, fragment in cases:
        assert fragment in error_text(await agent.call_tool("branch_create", args))
    unknown = str(uuid.uuid4())
    assert "not_found" in error_text(await agent.call_tool("branch_return", {"branch_id": unknown, "message": "m"}))
    assert "not_found" in error_text(await agent.call_tool("branch_status", {"branch_id": unknown}))
    assert "message:" in error_text(
        await agent.call_tool("branch_return", {"branch_id": branch["branch_id"], "message": "m" * 8001})
    )
    status = data(await agent.call_tool("branch_status", {}))
    assert status["active"] == branch["branch_id"] and status["branch"]["children"] == []
    data(await agent.call_tool("branch_return", {"branch_id": branch["branch_id"], "message": "ok"}))
    twice = error_text(await agent.call_tool("branch_return", {"branch_id": branch["branch_id"], "message": "again"}))
    assert "already returned" in twice


async def test_branches_need_a_session(container: Container) -> None:
    client = await connect(container)
    try:
        assert "not_found: session" in error_text(await client.call_tool("branch_create", {"description": "x"}))
    finally:
        await client.__aexit__(None, None, None)


async def test_other_sessions_and_tenants_cannot_touch_a_branch(container: Container, agent: Any) -> None:
    branch = await create(agent)
    session = data(await agent.call_tool("branch_status", {}))["branch"]["session_id"]
    for scope in (SCOPE, Scope(tenant="acme", team="core", project="web"), Scope(tenant="evil", team="core", project="api")):
        other = await connect(container, scope)
        try:
            data(await other.call_tool("session_start", {}))
            for tool, args in (
                ("branch_status", {"branch_id": branch["branch_id"]}),
                ("branch_return", {"branch_id": branch["branch_id"], "message": "hijack"}),
            ):
                assert "not_found" in error_text(await other.call_tool(tool, args))
            # Naming the session explicitly does not help across projects or tenants.
            named = await other.call_tool("branch_status", {"session_id": session})
            if scope == SCOPE:
                assert data(named)["active"] == branch["branch_id"]  # same project: a shared session is allowed
            else:
                assert "not_found" in error_text(named)
        finally:
            await other.__aexit__(None, None, None)
    assert data(await agent.call_tool("branch_status", {}))["active"] == branch["branch_id"]


async def test_ending_the_session_cleans_up_its_branches(container: Container, agent: Any) -> None:
    from contextd_mcp.models.branch import BranchStatusRequest

    branch = await create(agent)
    memory = data(await agent.call_tool("memory_store", {"title": "Kept", "content": "Survives the session."}))
    data(await agent.call_tool("session_end", {"session_id": branch["session_id"], "outcome": "partial"}))
    info = container.folding.status(SCOPE, branch["session_id"], BranchStatusRequest(branch_id=branch["branch_id"]))
    assert info.branch is not None and info.branch.status == "failed" and info.branch.reason == "session ended"
    assert info.active == "session"
    assert data(await agent.call_tool("memory_get", {"memory_id": memory["id"]}))["title"] == "Kept"
