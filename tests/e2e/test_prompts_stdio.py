"""Skills as MCP prompts, and agent identities, through the real `contextd-mcp stdio` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from tests.e2e.test_stdio import stdio
from tests.helpers import data, error_text

pytestmark = pytest.mark.anyio

ACME = {"CONTEXTD_TENANT": "acme", "CONTEXTD_TEAM": "core"}


async def test_skills_are_listed_and_rendered_as_prompts(shared_data_dir: Path, project_dir: Path) -> None:
    async with stdio(shared_data_dir, project_dir, CONTEXTD_PROJECT="api", **ACME) as client:
        assert (await client.list_prompts()).prompts == []
        await client.call_tool("skill_create", {
            "name": "review-migration", "description": "Review a migration for locks.",
            "prompt_template": "Review {{file}} for long locks. Notes: {{notes?}}", "steps": ["Check {{file}} rollback"],
        })
        await client.call_tool("skill_create", {
            "name": "review-migration", "description": "The org's review.", "prompt_template": "Org review of {{file}}",
            "scope": "org",
        })
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert set(prompts) == {"review-migration", "review-migration@org"}
        assert [(a.name, a.required) for a in prompts["review-migration"].arguments] == [("file", True), ("notes", False)]
        result = await client.get_prompt("review-migration", {"file": "0042.sql"})
        assert result.messages[0].content.text == "Review 0042.sql for long locks. Notes: \n\nSteps:\n1. Check 0042.sql rollback"
        with pytest.raises(MCPError, match="needs file"):
            await client.get_prompt("review-migration", {})
        used = data(await client.call_tool("skill_get", {"name": "review-migration"}))
        assert used["use_count"] == 2  # one render, one get

    # Another project of the same tenant: only the org skill applies, under its bare name.
    async with stdio(shared_data_dir, project_dir, CONTEXTD_PROJECT="web", **ACME) as client:
        assert [p.name for p in (await client.list_prompts()).prompts] == ["review-migration"]
        rendered = await client.get_prompt("review-migration", {"file": "x.sql"})
        assert rendered.messages[0].content.text == "Org review of x.sql"

    # Another tenant: nothing, and a name that exists elsewhere is "not found" like any other.
    async with stdio(shared_data_dir, project_dir, CONTEXTD_TENANT="globex", CONTEXTD_PROJECT="api") as client:
        assert (await client.list_prompts()).prompts == []
        for name in ("review-migration", "review-migration@org", "no-such-skill"):
            with pytest.raises(MCPError, match=f"not_found: skill '{name}' not found"):
                await client.get_prompt(name, {"file": "x"})


async def test_contextd_agent_restricts_a_stdio_connection(shared_data_dir: Path, project_dir: Path) -> None:
    env = {"CONTEXTD_PROJECT": "api", **ACME}
    async with stdio(shared_data_dir, project_dir, **env) as admin:
        await admin.call_tool("agent_create", {
            "name": "reader", "description": "Reads only.", "system_prompt": "Answer from memory.",
            "collections_access": {"memories": "read", "skills": "read"},
        })
    async with stdio(shared_data_dir, project_dir, CONTEXTD_AGENT="reader", **env) as reader:
        assert isinstance(data(await reader.call_tool("memory_search", {"query": "anything"}))["memories"], list)
        denied = error_text(await reader.call_tool("memory_store", {"title": "t", "content": "c"}))
        assert denied == "denied: agent 'reader' may not write memories"
    async with stdio(shared_data_dir, project_dir, **env) as client:  # session_start(agent=) binds this connection
        await client.call_tool("agent_update", {"agent_id": data(await client.call_tool("agent_get", {"name": "reader"}))["id"],
                                                "collections_access": {"memories": "read", "sessions": "write",
                                                                       "checkpoints": "read"}})
        assert data(await client.call_tool("memory_store", {"title": "before", "content": "allowed"}))["id"]
        assert data(await client.call_tool("session_start", {"task": "review", "agent": "reader"}))["session_id"]
        denied = error_text(await client.call_tool("memory_store", {"title": "after", "content": "refused"}))
        assert denied == "denied: agent 'reader' may not write memories"
    async with stdio(shared_data_dir, project_dir, CONTEXTD_AGENT="reader", CONTEXTD_PROJECT="api",
                     CONTEXTD_TENANT="globex") as elsewhere:
        text = error_text(await elsewhere.call_tool("memory_search", {"query": "anything"}))
        assert text.startswith("denied: this connection acts as agent 'reader', which is not configured")
