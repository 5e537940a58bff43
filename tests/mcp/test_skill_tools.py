"""Skill tools and skills as MCP prompts, through a real MCP client on the real store and model."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from contextd_mcp.container import Container
from contextd_mcp.models.scope import Scope
from tests.helpers import connected_as, data, error_text

pytestmark = pytest.mark.anyio

REVIEW = {
    "name": "review-migration",
    "description": "Review a database migration for table locks and a safe rollback.",
    "prompt_template": "Review the migration {{file}} for long table locks and a safe rollback.\nFocus: {{focus?}}",
    "trigger": "before merging a schema migration",
    "steps": ["List every ALTER TABLE in {{file}}", "Check each has a down migration"],
    "tags": ["postgres"],
}


async def create(client: Any, **fields: Any) -> dict[str, Any]:
    return data(await client.call_tool("skill_create", fields))


async def test_create_get_by_id_and_name_counts_uses(client: Any) -> None:
    made = await create(client, **REVIEW)
    assert made["arguments"] == [{"name": "file", "required": True}, {"name": "focus", "required": False}]
    assert made["level"] == "project" and made["use_count"] == 0 and made["applies_here"] is True
    by_id = data(await client.call_tool("skill_get", {"skill_id": made["id"]}))
    by_name = data(await client.call_tool("skill_get", {"name": "Review-Migration"}))
    assert by_id["id"] == by_name["id"] == made["id"]
    assert (by_id["use_count"], by_name["use_count"]) == (1, 2)
    listed = data(await client.call_tool("skill_list", {}))["skills"]
    assert [(s["name"], s["use_count"]) for s in listed] == [("review-migration", 2)]


BAD_TEMPLATES = [
    ("Review {{file", "'{{' is never closed"),
    ("Review file}} now", "'}}' closes nothing"),
    ("Review {{the file}}", "must be an identifier"),
    ("Review {{1st}}", "must be an identifier"),
    ("Review {{}}", "must be an identifier"),
    ("Use {{a}} and {{a?}}", "both as required and as optional"),
]


async def test_bad_templates_are_refused_at_create(client: Any) -> None:
    for template, complaint in BAD_TEMPLATES:
        text = error_text(await client.call_tool("skill_create", {**REVIEW, "prompt_template": template}))
        assert text.startswith("invalid_input: prompt_template:") and complaint in text, template
    assert data(await client.call_tool("skill_list", {}))["skills"] == []


async def test_bad_step_placeholder_names_the_step(client: Any) -> None:
    text = error_text(await client.call_tool("skill_create", {**REVIEW, "steps": ["ok", "bad {{x y}}"]}))
    assert text.startswith("invalid_input: steps.1:")


async def test_literal_braces_and_json_need_no_escaping(client: Any) -> None:
    made = await create(
        client, name="json-fmt", description="Format output as JSON.",
        prompt_template='Answer as {"status": "..."} about {{topic}}; write \\{{ and \\}} for Jinja.',
    )
    assert made["arguments"] == [{"name": "topic", "required": True}]


async def test_names_unique_per_level_not_across_levels(client: Any) -> None:
    await create(client, **REVIEW)
    clash = error_text(await client.call_tool("skill_create", {**REVIEW, "name": "REVIEW-migration"}))
    assert clash.startswith("conflict:") and "already exists" in clash
    team = await create(client, **{**REVIEW, "scope": "team", "description": "Team-wide migration review."})
    assert team["level"] == "team"
    # The bare name finds the skill closest to the caller; '@team' picks the other.
    assert data(await client.call_tool("skill_get", {"name": "review-migration"}))["level"] == "project"
    assert data(await client.call_tool("skill_get", {"name": "review-migration@team"}))["id"] == team["id"]


async def test_query_finds_by_meaning_and_by_name(client: Any) -> None:
    review = await create(client, **REVIEW)
    flaky = await create(
        client, name="triage-flaky-test", description="Find why a test passes and fails at random.",
        prompt_template="Investigate the flaky test {{test}}: rerun it, look for shared state and timing.",
        trigger="a CI test fails intermittently",
    )
    await create(client, name="write-changelog", description="Draft release notes from merged pull requests.",
                 prompt_template="Summarise the changes since {{tag}}.")
    meaning = data(await client.call_tool("skill_list", {"query": "a unit test is nondeterministic in CI"}))["skills"]
    assert meaning[0]["id"] == flaky["id"] and 0 < meaning[0]["relevance"] < 1
    schema = data(await client.call_tool("skill_list", {"query": "is this ALTER TABLE safe to deploy"}))["skills"]
    assert schema[0]["id"] == review["id"]
    by_name = data(await client.call_tool("skill_list", {"query": "changelog", "limit": 1}))["skills"]
    assert by_name[0]["name"] == "write-changelog" and by_name[0]["relevance"] == 1.0
    tagged = data(await client.call_tool("skill_list", {"tags": ["postgres"]}))["skills"]
    assert [s["id"] for s in tagged] == [review["id"]]


async def test_update_revalidates_and_delete_removes(client: Any) -> None:
    made = await create(client, **REVIEW)
    bad = error_text(await client.call_tool("skill_update", {"skill_id": made["id"], "prompt_template": "{{oops"}))
    assert bad.startswith("invalid_input: prompt_template:")
    changed = data(await client.call_tool(
        "skill_update", {"skill_id": made["id"], "prompt_template": "Check {{path}} only.", "steps": [], "trigger": ""}
    ))
    assert changed["arguments"] == [{"name": "path", "required": True}] and changed["trigger"] is None
    renamed = data(await client.call_tool("skill_update", {"skill_id": made["id"], "name": "check-path"}))
    assert renamed["name"] == "check-path"
    assert data(await client.call_tool("skill_delete", {"skill_id": made["id"]})) == {"id": made["id"], "deleted": True}
    gone = error_text(await client.call_tool("skill_get", {"skill_id": made["id"]}))
    assert gone == f"not_found: skill {made['id']!r} not found"


async def test_secrets_in_templates_are_redacted(client: Any) -> None:
    key = "AKIA" + "ABCDEFGHIJKLMNOP"
    made = await create(client, name="deploy", description="Deploy.", prompt_template=f"Use key {key} for {{{{env}}}}")
    assert key not in made["prompt_template"] and "REDACTED" in made["prompt_template"]


async def test_skills_are_prompts_listed_and_rendered(client: Any) -> None:
    made = await create(client, **REVIEW)
    await create(client, **{**REVIEW, "scope": "org", "description": "Org-wide migration review."})
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(prompts) == {"review-migration", "review-migration@org"}  # unique names in the listing
    args = prompts["review-migration"].arguments
    assert [(a.name, a.required) for a in args] == [("file", True), ("focus", False)]
    rendered = await client.get_prompt("review-migration", {"file": "0042_add_index.sql"})
    text = rendered.messages[0].content.text
    assert rendered.messages[0].role == "user"
    assert text.startswith("Review the migration 0042_add_index.sql for long table locks")
    assert "Focus: \n" in text and "1. List every ALTER TABLE in 0042_add_index.sql" in text
    org = await client.get_prompt("review-migration@org", {"file": "x.sql", "focus": "locks"})
    assert "Focus: locks" in org.messages[0].content.text
    assert data(await client.call_tool("skill_get", {"skill_id": made["id"]}))["use_count"] == 2


async def test_prompt_with_missing_or_unknown_arguments_says_which(client: Any) -> None:
    await create(client, **REVIEW)
    with pytest.raises(MCPError, match=r"invalid_input: arguments: skill 'review-migration' needs file"):
        await client.get_prompt("review-migration", {"focus": "x"})
    with pytest.raises(MCPError, match=r"has no placeholder colour \(it takes: file, focus\)"):
        await client.get_prompt("review-migration", {"file": "a", "colour": "red"})
    with pytest.raises(MCPError, match=r"not_found: skill 'nope' not found"):
        await client.get_prompt("nope", {})


async def test_levels_and_reach_within_a_tenant(container: Container) -> None:
    api = Scope(tenant="acme", team="core", project="api")
    web = Scope(tenant="acme", team="core", project="web")
    ops = Scope(tenant="acme", team="ops", project="infra")
    async with connected_as(container, api) as client:
        own = await create(client, name="api-only", description="Only for api.", prompt_template="x")
        team = await create(client, name="core-wide", description="For the core team.", prompt_template="y", scope="team")
        org = await create(client, name="org-wide", description="For all of acme.", prompt_template="z", scope="org")
    async with connected_as(container, web) as client:
        names = {s["name"] for s in data(await client.call_tool("skill_list", {}))["skills"]}
        assert names == {"core-wide", "org-wide"}
        assert {p.name for p in (await client.list_prompts()).prompts} == {"core-wide", "org-wide"}
        missing = error_text(await client.call_tool("skill_get", {"skill_id": own["id"]}))
        assert missing == f"not_found: skill {own['id']!r} not found"
        wide = data(await client.call_tool("skill_get", {"skill_id": own["id"], "scope": "team"}))
        assert wide["applies_here"] is False
        team_names = {s["name"] for s in data(await client.call_tool("skill_list", {"scope": "team"}))["skills"]}
        assert team_names == {"api-only", "core-wide", "org-wide"}
    async with connected_as(container, ops) as client:
        assert {s["id"] for s in data(await client.call_tool("skill_list", {}))["skills"]} == {org["id"]}
        assert error_text(await client.call_tool("skill_get", {"skill_id": team["id"], "scope": "team"})).startswith(
            "not_found:"
        )
        org_ids = {s["id"] for s in data(await client.call_tool("skill_list", {"scope": "org"}))["skills"]}
        assert org_ids == {own["id"], team["id"], org["id"]}
