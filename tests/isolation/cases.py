"""One entry per registered tool: how to make a valid call of it in HOME (the base that each
attack changes one parameter of), or why the tool holds no data.

The suite fails for a registered tool without an entry here, and for an input parameter it
cannot attack (an object or a list of objects) unless the entry builds values for it.
Strings and lists of strings are attacked generically with every probe (ids, names, tags and
texts of other scopes' objects); a ``scope`` parameter multiplies the attacks by its values;
numbers, booleans and other enums cannot name anything and are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.isolation.world import Probe, World, call

Base = Callable[[World, Any], Awaitable[dict[str, Any]]]
# Builds a value for an object-typed parameter from a probe's value.
Builder = Callable[[str], Any]


@dataclass(frozen=True)
class Case:
    base: Base
    builders: dict[str, Builder] = field(default_factory=dict)
    # Whole-argument attacks beyond one parameter at a time, e.g. a foreign memory's exact
    # title *and* content (a deduplicating store must not answer "already exists").
    combos: Callable[[World], list[tuple[Probe, dict[str, Any]]]] | None = None


@dataclass(frozen=True)
class NoData:
    reason: str


def fixed(args: dict[str, Any]) -> Base:
    async def base(world: World, client: Any) -> dict[str, Any]:
        return dict(args)

    return base


def with_home(key: str, param: str, **extra: Any) -> Base:
    async def base(world: World, client: Any) -> dict[str, Any]:
        return {param: world.home[key], **extra}

    return base


async def _fresh_session(world: World, client: Any) -> str:
    started = await call(client, "session_start", {"task": "home work"})
    world.home["session"] = started["session_id"]
    return started["session_id"]


def in_session(args: dict[str, Any]) -> Base:
    async def base(world: World, client: Any) -> dict[str, Any]:
        await _fresh_session(world, client)
        return dict(args)

    return base


async def _home_branch(world: World, client: Any) -> dict[str, Any]:
    await _fresh_session(world, client)
    branch = await call(client, "branch_create", {"description": "home branch"})
    return {"branch_id": branch["branch_id"], "message": "home result"}


def _memory_twins(world: World) -> list[tuple[Probe, dict[str, Any]]]:
    return [
        (Probe(t, "memory", "text", title), {"title": title, "content": content}) for t, title, content in world.memory_texts
    ]


def _learning(value: str) -> list[dict[str, str]]:
    return [{"title": value[:200], "content": value[:1000] or "x"}]


def _fix_twins(world: World) -> list[tuple[Probe, dict[str, Any]]]:
    keys = ("title", "problem", "solution")
    return [(Probe(t, "remediation", "text", fix["title"]), {k: fix[k] for k in keys}) for t, fix in world.remediation_texts]


def _rule(value: str) -> dict[str, Any]:
    return {"kind": "command_regex", "pattern": re.escape(value)[:500]}


def _policy_context(value: str) -> dict[str, Any]:
    return {"project_dir": value, "working_dir": value, "paths": [value], "content": value}


def _reach_files(world: World) -> list[tuple[Probe, dict[str, Any]]]:
    """bash from HOME's directory towards another project's files, by every route we know."""
    attacks = []
    for target in ("foreign", "sibling"):
        directory = world.dirs[target]
        name = directory.rsplit("/", 1)[1]
        probe = Probe(target, "file", "text", directory)
        for command in (f"cat {directory}/canary.txt", f"ls -la {directory}; cat {directory}/*",
                        f"cat ../{name}/canary.txt", "cat /proc/*/cwd/canary.txt 2>&1 | head -5",
                        "find / -name canary.txt -not -path '/proc/*' 2>/dev/null | head -20 | xargs cat"):
            attacks.append((probe, {"command": command}))
        attacks.append((probe, {"command": "cat canary.txt", "working_dir": directory}))
        attacks.append((probe, {"command": "cat canary.txt", "working_dir": f"../{name}"}))
    return attacks


CASES: dict[str, Case | NoData] = {
    "memory_store": Case(fixed({"title": "attacker lesson {n}", "content": "attacker content"}), combos=_memory_twins),
    "memory_search": Case(fixed({"query": "rotate the staging database password"})),
    "memory_get": Case(with_home("memory", "memory_id")),
    "memory_feedback": Case(with_home("memory", "memory_id", helpful=True)),
    "memory_outcome": Case(with_home("memory", "memory_id", succeeded=True)),
    "skill_create": Case(fixed({"name": "attacker-skill-{n}", "description": "d", "prompt_template": "t"})),
    "skill_get": Case(with_home("skill", "skill_id")),
    "skill_list": Case(fixed({"query": "deploy the payment service"})),
    "skill_update": Case(with_home("skill", "skill_id")),
    "skill_delete": Case(with_home("skill-org", "skill_id")),
    "agent_create": Case(fixed({"name": "attacker-agent-{n}", "description": "d", "system_prompt": "s"})),
    "agent_get": Case(with_home("agent", "agent_id")),
    "agent_list": Case(fixed({})),
    "agent_update": Case(with_home("agent", "agent_id")),
    "agent_delete": Case(with_home("agent", "agent_id")),
    "session_start": Case(fixed({"task": "migrate billing"})),
    "session_end": Case(in_session({"outcome": "partial"}), builders={"learnings": _learning}),
    "distill_status": Case(fixed({"job_id": "00000000-0000-4000-8000-000000000000"})),
    "checkpoint_save": Case(in_session({"summary": "attacker checkpoint"})),
    "checkpoint_list": Case(in_session({})),
    "checkpoint_resume": Case(fixed({"checkpoint_id": "00000000-0000-4000-8000-000000000000"})),
    "branch_create": Case(in_session({"description": "attacker branch"})),
    "branch_return": Case(_home_branch),
    "branch_status": Case(in_session({})),
    "remediation_record": Case(
        fixed({"title": "attacker error {n}", "problem": "attacker problem", "solution": "attacker fix"}),
        combos=_fix_twins,
    ),
    "remediation_search": Case(fixed({"error": "Error: cannot open /srv/billing/ledger.db (database is locked)"})),
    "remediation_get": Case(with_home("remediation", "remediation_id")),
    "remediation_feedback": Case(with_home("remediation", "remediation_id", helpful=True)),
    "policy_set": Case(
        fixed({"title": "attacker policy {n}", "scope": "project", "severity": "info",
               "rule": {"kind": "command_regex", "pattern": "attacker"}}),
        builders={"rule": _rule},
    ),
    "policy_get": Case(with_home("policy0", "policy_id")),
    "policy_list": Case(fixed({})),
    "policy_delete": Case(with_home("policy1", "policy_id")),
    "policy_check": Case(fixed({"action": "rm /srv/ledger.db"}), builders={"context": _policy_context}),
    "policy_pack_enable": Case(fixed({"pack": "security", "scope": "project"})),
    "bash": Case(fixed({"command": "echo home; ls", "timeout_seconds": 10}), builders={"env": lambda v: {"PROBE": v}},
                 combos=_reach_files),
    # Reads and changes only this connection's own toolsets: no record, no scope, nothing to leak.
    "toolsets": Case(fixed({"enable": ["policy"]})),
    "bench_noop": NoData("takes no arguments and returns an empty object (benchmark floor, CONTEXTD_BENCH_TOOLS=1)"),
}
