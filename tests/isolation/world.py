"""The world the isolation suite attacks: data seeded through the real MCP client in

- HOME     acme/core/api     the attacker's own project (it holds a few objects of its own);
- SIBLING  acme/core/web     another project of the same team and tenant: reachable only with
                             an explicit widening ``scope`` argument;
- FOREIGN  globex/core/api   another tenant with the *same* team and project names, so a
                             filter that forgets the tenant shows up at once: never reachable.

Every seeded object carries a unique token (in its names and texts); the token and the
object's id are its canaries. A response leaks when it shows a canary of an object it must
not reach, and a write leaks when the other scope's stored state changes.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from contextd_mcp.container import Container
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.models.scope import Scope
from tests.helpers import connected, data

HOME = Scope(tenant="acme", team="core", project="api")
SIBLING = Scope(tenant="acme", team="core", project="web")
FOREIGN = Scope(tenant="globex", team="core", project="api")
# Every connection of the suite uses the same connection id, the attacker's included: state
# keyed by connection (active session, agent binding) must still be keyed by scope too.
CONNECTION = "shared-connection"


@dataclass(frozen=True)
class Canary:
    """An object seeded outside HOME. ``shared``: a team / org object of HOME's own tenant,
    which legitimately applies to HOME (a team skill, an org agent); not a secret."""

    target: str  # "foreign" or "sibling"
    kind: str
    id: str
    token: str
    shared: bool = False


@dataclass(frozen=True)
class Probe:
    """A value an attacker may pass: an id, a name, a tag, a text of another scope's object."""

    target: str
    kind: str  # of the object it comes from: memory, skill, ...
    what: str  # "id", "name", "tag", "text"
    value: str


@dataclass
class World:
    container: Container
    dirs: dict[str, str] = field(default_factory=dict)  # "home" / "foreign" / "sibling" → project directory
    canaries: list[Canary] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    home: dict[str, str] = field(default_factory=dict)  # kind → an id of HOME's own object
    seeded: list[str] = field(default_factory=list)  # tool families that had data to seed
    memory_texts: list[tuple[str, str, str]] = field(default_factory=list)  # (target, title, content)
    remediation_texts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(self, target: str, kind: str, ident: str, token: str, *, names: list[str] = (), tags: list[str] = (),
            texts: list[str] = (), shared: bool = False) -> None:  # type: ignore[assignment]
        self.canaries.append(Canary(target, kind, ident, token, shared))
        if shared:
            return
        self.probes.append(Probe(target, kind, "id", ident))
        self.probes += [Probe(target, kind, "name", n) for n in names]
        self.probes += [Probe(target, kind, "tag", t) for t in tags]
        self.probes += [Probe(target, kind, "text", t) for t in texts]

    def snapshot(self, scope_filter: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Every stored record of a scope, by collection: what a write leak would change."""
        store = self.container.store
        collections = sorted(store.describe().get("points", {}))
        return {c: {r.id: r.payload for r in store.scan(c, scope_filter, limit=100_000)} for c in collections}


@asynccontextmanager
async def connect(
    container: Container, scope: Scope, agent: str | None = None, project_dir: str | None = None
) -> AsyncIterator[Any]:
    caller = Caller(scope=scope, transport="memory", connection_id=CONNECTION, agent=agent, project_dir=project_dir)
    async with connected(container, caller) as client:
        yield client


_counter = itertools.count(1)


def token_for(target: str, kind: str) -> str:
    prefix = {"foreign": "gx", "sibling": "sb", "home": "hm"}[target]
    # Fixed width, so that a control value (the same with a fresh token) has the same length.
    return f"{prefix}{kind}{next(_counter):05d}tok"


async def call(client: Any, tool: str, args: dict[str, Any]) -> Any:
    return data(await client.call_tool(tool, args))


# -- seeders: one per tool family, run only when the family's tools are registered ---------

Seeder = Callable[[World, Any, str], Awaitable[None]]


async def seed_memories(world: World, client: Any, target: str) -> None:
    for outcome in ("success", "failure"):
        tok = token_for(target, "mem")
        title = f"{tok} rotate the staging database password"
        content = f"{tok}: the password for staging lives in the vault; rotate it monthly ({outcome})."
        mid = (await call(client, "memory_store", {"title": title, "content": content, "outcome": outcome,
                                                   "tags": [tok]}))["id"]
        await call(client, "memory_feedback", {"memory_id": mid, "helpful": True})
        world.add(target, "memory", mid, tok, tags=[tok], texts=[title, content])
        world.memory_texts.append((target, title, content))


async def seed_skills(world: World, client: Any, target: str) -> None:
    for level in ("project", "team", "org"):
        tok = token_for(target, "skill")
        name = f"{tok}-deploy"
        made = await call(client, "skill_create", {
            "name": name, "description": f"{tok} deploy the payment service", "tags": [tok],
            "prompt_template": f"{tok}: deploy {{{{service}}}} with the canary key", "scope": level,
        })
        shared = target == "sibling" and level != "project"
        names = [name, f"{name}@{level}"]
        world.add(target, "skill", made["id"], tok, names=names, tags=[tok], texts=[made["description"]], shared=shared)
    # The same name as one of HOME's skills, at every level: a name lookup must pick HOME's.
    if target == "foreign":
        for level in ("project", "team", "org"):
            tok = token_for(target, "skill")
            made = await call(client, "skill_create", {
                "name": f"home-deploy-{level}", "description": f"{tok} foreign twin", "prompt_template": f"{tok}",
                "scope": level,
            })
            world.add(target, "skill", made["id"], tok, names=[f"home-deploy-{level}@{level}"])


async def seed_agents(world: World, client: Any, target: str) -> None:
    for level in ("project", "org"):
        tok = token_for(target, "agent")
        name = f"{tok}-ops"
        made = await call(client, "agent_create", {
            "name": name, "description": f"{tok} operations agent", "system_prompt": f"{tok} you run operations",
            "collections_access": {"memories": "read"}, "scope": level,
        })
        shared = target == "sibling" and level != "project"
        world.add(target, "agent", made["id"], tok, names=[name, f"{name}@{level}"], texts=[made["system_prompt"]],
                  shared=shared)


async def seed_sessions(world: World, client: Any, target: str) -> None:
    tok = token_for(target, "session")
    started = await call(client, "session_start", {"task": f"{tok} migrate billing", "project_path": f"/srv/{tok}"})
    world.add(target, "session", started["session_id"], tok, texts=[f"{tok} migrate billing"])
    if "checkpoint_save" in world.container.runner.tools:
        tok = token_for(target, "checkpoint")
        saved = await call(client, "checkpoint_save", {
            "summary": f"{tok} half of the billing migration done", "context": f"{tok} next: invoices",
            "full_state": f"{tok} state", "tags": [tok],
        })
        world.add(target, "checkpoint", saved["checkpoint_id"], tok, tags=[tok], texts=[f"{tok} half of the billing"])
    if "branch_create" in world.container.runner.tools:
        tok = token_for(target, "branch")
        branch = await call(client, "branch_create", {"description": f"{tok} look at invoices", "prompt": f"{tok} go"})
        world.add(target, "branch", branch["branch_id"], tok, texts=[f"{tok} look at invoices"])
    ended = await call(client, "session_end", {
        "outcome": "success", "summary": f"{tok} migrated billing; the invoices table needed a lock timeout.",
    })
    tok = token_for(target, "job")
    world.add(target, "job", ended["job_id"], tok)
    # A second session stays active on the shared connection id.
    tok = token_for(target, "session")
    started = await call(client, "session_start", {"task": f"{tok} open session"})
    world.add(target, "session", started["session_id"], tok)


async def seed_remediations(world: World, client: Any, target: str) -> None:
    tok = token_for(target, "fix")
    fix = {
        "title": f"{tok}Error: cannot open /srv/billing/ledger.db",
        "problem": f"{tok}Error: cannot open /srv/billing/ledger.db (database is locked)",
        "solution": f"{tok}: stop the ledger-sync cron before migrating; it holds the lock",
        "tags": [tok],
    }
    made = await call(client, "remediation_record", fix)
    await call(client, "remediation_feedback", {"remediation_id": made["id"], "helpful": True})
    world.add(target, "remediation", made["id"], tok, tags=[tok], texts=[fix["problem"], fix["solution"]])
    world.remediation_texts.append((target, fix))


async def seed_policies(world: World, client: Any, target: str) -> None:
    for level in ("project", "team", "org"):
        tok = token_for(target, "policy")
        made = await call(client, "policy_set", {
            "title": f"{tok} no ledger deletes", "scope": level, "severity": "warning",
            "rule": {"kind": "command_regex", "pattern": f"{tok}|rm .*ledger"}, "suggestion": f"{tok} archive it",
        })
        shared = target == "sibling" and level != "project"
        world.add(target, "policy", made["id"], tok, texts=[f"rm /srv/ledger {tok}"], shared=shared)


def seed_files(world: World, root: Path) -> None:
    """Each scope's project directory holds a file with a canary (what bash must not reach)."""
    for target in ("home", "foreign", "sibling"):
        directory = root / f"{target}-project"
        directory.mkdir(parents=True, exist_ok=True)
        world.dirs[target] = str(directory)
        if target != "home":
            tok = token_for(target, "file")
            (directory / "canary.txt").write_text(f"{tok}\n")
            world.add(target, "file", str(uuid.uuid4()), tok, texts=[str(directory / "canary.txt")])


SEEDERS: list[tuple[str, str, Seeder]] = [
    ("memories", "memory_store", seed_memories),
    ("skills", "skill_create", seed_skills),
    ("agents", "agent_create", seed_agents),
    ("sessions", "session_start", seed_sessions),
    ("remediations", "remediation_record", seed_remediations),
    ("policies", "policy_set", seed_policies),
]


async def seed_home(world: World, client: Any) -> None:
    """HOME's own objects: the attacker's legitimate starting points (bases of update calls)."""
    tools = world.container.runner.tools
    world.home["memory"] = (await call(client, "memory_store", {"title": "home lesson", "content": "home only"}))["id"]
    for level in ("project", "team", "org"):
        made = await call(client, "skill_create", {
            "name": f"home-deploy-{level}", "description": "home deploy", "prompt_template": "deploy {{what}}",
            "scope": level,
        })
        world.home[f"skill-{level}"] = made["id"]
    world.home["skill"] = world.home["skill-project"]
    world.home["agent"] = (await call(client, "agent_create", {
        "name": "home-agent", "description": "home", "system_prompt": "home",
    }))["id"]
    if "session_start" in tools:
        world.home["session"] = (await call(client, "session_start", {"task": "home work"}))["session_id"]
    if "remediation_record" in tools:
        world.home["remediation"] = (await call(client, "remediation_record", {
            "title": "home error", "problem": "home error happened", "solution": "home fix",
        }))["id"]
    if "policy_set" in tools:
        for n in range(2):
            world.home[f"policy{n}"] = (await call(client, "policy_set", {
                "title": f"home policy {n}", "scope": "project", "severity": "info",
                "rule": {"kind": "command_regex", "pattern": "home-only"},
            }))["id"]


async def build_world(container: Container, root: Path) -> World:
    world = World(container)
    tools = container.runner.tools
    seed_files(world, root)
    for target, scope in (("foreign", FOREIGN), ("sibling", SIBLING)):
        async with connect(container, scope, project_dir=world.dirs[target]) as client:
            for family, needs, seeder in SEEDERS:
                if needs in tools:
                    await seeder(world, client, target)
                    if family not in world.seeded:
                        world.seeded.append(family)
    async with connect(container, HOME, project_dir=world.dirs["home"]) as client:
        await seed_home(world, client)
    if "session_start" in tools:  # the newest session on the shared connection id is another tenant's
        async with connect(container, FOREIGN) as client:
            tok = token_for("foreign", "session")
            started = await call(client, "session_start", {"task": f"{tok} newest"})
            world.add("foreign", "session", started["session_id"], tok)
    return world
