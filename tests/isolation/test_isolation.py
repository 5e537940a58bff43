"""Multi-tenant isolation: every registered tool, every parameter, through the real MCP client.

From HOME (acme/core/api) the attacker passes the ids, names, tags and texts of objects of
another project (acme/core/web) and of another tenant (globex/core/api) into each parameter
of each tool, with each value of a ``scope`` argument, and asks for prompts by their names.
Another tenant's data must never show, never change and never be told apart from data that
does not exist; another project's only with an explicit widening scope.

The figures (attempts, leaks) are printed and, when CONTEXTD_ISOLATION_REPORT names a file,
written there as JSON (bench/isolation.py reads it).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.container import Container
from contextd_mcp.mcp.registry import input_schema
from tests.isolation.attack import Tally, attack_prompts, attack_tool, diff, params_of
from tests.isolation.cases import CASES, Case, NoData
from tests.isolation.world import FOREIGN, HOME, SIBLING, Probe, World, build_world, connect

pytestmark = pytest.mark.anyio

IDENTITY_PARAMS = {"tenant", "team", "project", "org", "tenant_id", "team_id", "project_id", "owner", "namespace"}


@pytest.fixture
async def world(container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    # Every touch of a session writes through to the store, so a touch of another tenant's
    # session is a visible write (the default writes at most once a minute).
    monkeypatch.setattr("contextd_mcp.services.sessions.TOUCH_WRITE_EVERY_S", 0.0)
    yield await build_world(container, tmp_path / "projects")


def test_every_registered_tool_has_a_case(container: Container) -> None:
    registered = set(container.runner.tools)
    missing = sorted(registered - set(CASES))
    assert not missing, f"tools/isolation/cases.py has no case for {missing}: add attacks or a NoData reason"


def test_every_parameter_can_be_attacked(container: Container) -> None:
    for name, tool in container.runner.tools.items():
        case = CASES.get(name)
        if isinstance(case, NoData):
            assert not input_schema(tool).get("properties"), f"{name} takes arguments; it needs attack cases"
            continue
        assert case is not None
        unhandled = [p.name for p in params_of(tool, case) if p.kind == "unhandled"]
        assert not unhandled, f"{name}: no way to attack {unhandled}; give the case a builder for them"


def test_no_parameter_names_a_tenant_and_scope_only_widens_inside_it(container: Container) -> None:
    for name, tool in container.runner.tools.items():
        schema = input_schema(tool)
        properties = schema.get("properties", {})
        assert not IDENTITY_PARAMS & set(properties), f"{name} lets the caller name an owner"
        if "scope" in properties:
            refs = [o["$ref"] for o in properties["scope"].get("anyOf", [properties["scope"]]) if "$ref" in o]
            assert len(refs) == 1, f"{name}.scope must be the scope enum"
            assert schema["$defs"][refs[0].rsplit("/", 1)[1]]["enum"] == ["project", "team", "org"], name


async def test_seeded_ids_cannot_be_derived_by_another_scope(world: World) -> None:
    """Ids are random (uuid4), or, for memories and remediations, derived from the owner's own
    scope and content (uuid5, services/content_ids.py): another scope storing the same text gets
    another id, so an id is never a way into, or an oracle on, someone else's records."""
    assert len(world.canaries) > 10
    derived = {"memory", "remediation"}
    for canary in world.canaries:
        version = uuid.UUID(canary.id).version
        assert version == (5 if canary.kind in derived else 4), canary
    assert {c.kind for c in world.canaries} & derived


def quick_sample(probes: list[Probe]) -> list[Probe]:
    """The quick sweep's probes: an id of every kind of object of each target (by-id access is
    where a forgotten filter shows first), and one name, one tag and one text per target."""
    seen: dict[tuple[str, str, str], Probe] = {}
    for probe in probes:
        key = (probe.target, probe.kind if probe.what == "id" else "", probe.what)
        seen.setdefault(key, probe)
    return list(seen.values())


async def sweep(world: World, container: Container, probes: list[Probe], wide_probes: list[Probe]) -> dict[str, Any]:
    """Phase 1 attacks HOME's own reach with every probe; phase 2 widens to team and org with
    ``wide_probes`` (another tenant's only: the sibling project is legitimately reachable then)."""
    tally = Tally()
    foreign_before = world.snapshot({"tenant": FOREIGN.tenant})
    sibling_before = world.snapshot(SIBLING.fields())
    tools = [(t, CASES[name]) for name, t in container.runner.tools.items() if isinstance(CASES.get(name), Case)]
    async with connect(container, HOME, project_dir=world.dirs["home"]) as client:
        await attack_prompts(world, client, tally, probes)
        for tool, case in tools:
            assert isinstance(case, Case)
            await attack_tool(world, client, tool, case, tally, ("project",), probes)
        foreign_after = world.snapshot({"tenant": FOREIGN.tenant})
        changed = diff(foreign_before, foreign_after) + diff(sibling_before, world.snapshot(SIBLING.fields()))
        tally.leaks += [f"write leak: {c}" for c in changed]
        for tool, case in tools:
            assert isinstance(case, Case)
            await attack_tool(world, client, tool, case, tally, ("team", "org"), wide_probes)
    tally.leaks += [f"write leak: {c}" for c in diff(foreign_after, world.snapshot({"tenant": FOREIGN.tenant}))]

    # The other project *is* reachable by widening: otherwise the probes above prove nothing.
    async with connect(container, HOME, project_dir=world.dirs["home"]) as client:
        sibling_memory = next(c for c in world.canaries if c.target == "sibling" and c.kind == "memory")
        wide = await client.call_tool("memory_get", {"memory_id": sibling_memory.id, "scope": "team"})
        assert not wide.is_error and wide.structured_content["id"] == sibling_memory.id

    report = {
        "tools": sorted(container.runner.tools),
        "tools_attacked": sorted(t.name for t, _ in tools),
        "tools_without_data": sorted(n for n in container.runner.tools if isinstance(CASES.get(n), NoData)),
        "families_seeded": world.seeded,
        "objects_seeded": {"foreign": sum(c.target == "foreign" for c in world.canaries),
                           "sibling": sum(c.target == "sibling" for c in world.canaries)},
        "probes": len(probes),
        "attempts": tally.attempts,
        "attempts_run": tally.accepted,
        "leaks": len(tally.leaks),
        "by_tool": tally.by_tool,
        "seconds_by_tool": tally.seconds,
        "leak_details": tally.leaks[:200],
    }
    print(json.dumps(tally.seconds))
    print(f"\nisolation: {tally.attempts} cross-scope attempts ({tally.accepted} ran past schema validation) "
          f"by {len(tools)} tools and prompts with {len(probes)} probes; {len(tally.leaks)} leaks")
    return report


@pytest.mark.timeout(900)
async def test_nothing_crosses_a_tenant_or_a_project(world: World, container: Container) -> None:
    probes = quick_sample(world.probes)
    report = await sweep(world, container, probes, [p for p in probes if p.target == "foreign" and p.what == "id"])
    assert report["leak_details"] == [], "\n".join(report["leak_details"][:50])
    assert report["attempts"] > 1000


@pytest.mark.slow
@pytest.mark.timeout(3600)
async def test_nothing_crosses_with_every_probe(world: World, container: Container) -> None:
    """Every probe in every parameter, in both phases: the figures the closing note reports."""
    report = await sweep(world, container, world.probes, [p for p in world.probes if p.target == "foreign"])
    target = os.environ.get("CONTEXTD_ISOLATION_REPORT")
    if target:
        Path(target).write_text(json.dumps(report, indent=2))
    assert report["leak_details"] == [], "\n".join(report["leak_details"][:50])


async def test_a_foreign_agent_name_gives_no_access(world: World, container: Container) -> None:
    """An identity naming another tenant's agent is refused, not granted that agent's rights."""
    foreign_agent = next(c for c in world.canaries if c.target == "foreign" and c.kind == "agent")
    name = next(p.value for p in world.probes if p.target == "foreign" and p.what == "name" and
                p.value.startswith(foreign_agent.token))
    async with connect(container, HOME, agent=name) as client:
        result = await client.call_tool("memory_search", {"query": "anything"})
        assert result.is_error and "not configured" in result.content[0].text
    async with connect(container, FOREIGN, agent=name) as client:  # in its own tenant it works
        assert not (await client.call_tool("memory_search", {"query": "anything"})).is_error
