"""Tool annotations as a client sees them: the real `contextd-mcp stdio` through the real MCP client.

Clients auto-approve tools that say they are read-only or not destructive, so a wrong hint lets a
shell command or a delete run without the user being asked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_stdio import stdio

pytestmark = pytest.mark.anyio

R, W, D = "read", "write", "destructive"
# tool → (kind, idempotent). Spelled out per tool so that a new tool, or a changed hint, is a
# decision someone makes here, not a default nobody looked at.
EXPECTED: dict[str, tuple[str, bool]] = {
    "memory_store": (W, False),
    "memory_search": (R, True),
    "memory_get": (R, True),
    "memory_feedback": (W, False),
    "memory_outcome": (W, False),
    "session_start": (W, False),
    "session_end": (W, False),
    "distill_status": (R, True),
    "checkpoint_save": (W, False),
    "checkpoint_list": (R, True),
    "checkpoint_resume": (R, True),
    "remediation_record": (W, False),
    "remediation_search": (R, True),
    "remediation_get": (R, True),
    "remediation_feedback": (W, False),
    "policy_set": (D, True),  # same title at the same scope replaces the old policy
    "policy_get": (R, True),
    "policy_list": (R, True),
    "policy_delete": (D, True),
    "policy_check": (R, True),
    "policy_pack_enable": (W, True),
    "skill_create": (W, False),
    "skill_get": (R, False),
    "skill_list": (R, True),
    "skill_update": (D, True),
    "skill_delete": (D, True),
    "agent_create": (W, False),
    "agent_get": (R, True),
    "agent_list": (R, True),
    "agent_update": (D, True),
    "agent_delete": (D, True),
    "branch_create": (W, False),
    "branch_return": (W, False),
    "branch_status": (R, True),
    "bash": (D, False),
    # Lists toolsets, or shows more tools to this connection: no stored data changes, safe to auto-approve.
    "toolsets": (R, True),
}


def _expected_hints(kind: str, idempotent: bool) -> dict[str, bool]:
    """Missing hints read with the spec's defaults: not read-only, not idempotent. Destructive is
    always stated (its default, true, is read as false by some clients)."""
    if kind == R:  # destructive / idempotent mean nothing for a read-only tool (spec)
        return {"readOnlyHint": True, "openWorldHint": False}
    return {"destructiveHint": kind == D, "openWorldHint": False} | ({"idempotentHint": True} if idempotent else {})


async def test_every_tool_states_honest_hints(shared_data_dir: Path, project_dir: Path) -> None:
    async with stdio(shared_data_dir, project_dir) as client:
        tools = (await client.list_tools()).tools
    listed = {t.name: t.annotations.model_dump(by_alias=True, exclude_none=True) for t in tools if t.annotations}
    assert set(listed) == {t.name for t in tools}, "every tool carries annotations"
    assert set(listed) == set(EXPECTED), "a tool was added or removed: decide its hints in EXPECTED"
    wrong = {name: hints for name, hints in listed.items() if hints != _expected_hints(*EXPECTED[name])}
    assert wrong == {}


async def test_deletes_and_bash_are_destructive_by_name(shared_data_dir: Path, project_dir: Path) -> None:
    """The rule behind the table, checked on what is listed: every delete and bash ask first."""
    async with stdio(shared_data_dir, project_dir) as client:
        tools = (await client.list_tools()).tools
    risky = [t for t in tools if t.name == "bash" or t.name.endswith("_delete")]
    assert len(risky) == 4
    for tool in risky:
        assert tool.annotations is not None
        assert not tool.annotations.read_only_hint and tool.annotations.destructive_hint is True, tool.name
