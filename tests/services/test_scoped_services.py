"""The services' formerly unscoped store calls, attacked as a bug would: handed another tenant's
id, each now goes through the caller's handle and leaves the other tenant's record as it was.

Before the handle: the skill use counter read and wrote by id with no filter, a session's
last-seen write and a branch's field writes took no scope, and ``counts()`` without a scope
counted every tenant (the raw calls reproduced in tests/adapters/test_scoped_store.py).
"""

from __future__ import annotations

from contextd_mcp.container import Container
from contextd_mcp.models.requests import StoreMemory
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.models.session import StartSession
from contextd_mcp.models.skill import CreateSkill
from contextd_mcp.services.sessions import COLLECTION as SESSIONS
from contextd_mcp.services.sessions import TOUCH_WRITE_EVERY_S
from contextd_mcp.services.skills import COLLECTION as SKILLS

HOME = Scope(tenant="acme", team="core", project="api")
FOREIGN = Scope(tenant="globex", team="core", project="api")


def stored(container: Container, collection: str, ident: str) -> dict[str, object]:
    """The record as the admin path sees it (no filter)."""
    (record,) = container.store.get(collection, [ident], {})
    return record.payload


def test_the_skill_use_counter_never_counts_another_tenants_skill(container: Container) -> None:
    request = CreateSkill(name="deploy", description="Deploys.", prompt_template="Deploy it.", scope=ScopeLevel.org)
    theirs = container.skills.create(FOREIGN, request)
    mine = container.skills.create(HOME, request)
    for reach in ScopeLevel:
        container.skills._count_use(HOME, theirs.id, reach)
        container.skills._count_use(HOME, mine.id, reach)
    assert stored(container, SKILLS, theirs.id)["use_count"] == 0
    assert stored(container, SKILLS, mine.id)["use_count"] == 3


def test_a_session_touch_never_writes_another_tenants_session(container: Container) -> None:
    theirs = container.sessions.start(FOREIGN, "their-connection", StartSession())
    before = stored(container, SESSIONS, theirs.session_id)["last_seen_ts"]
    container.sessions._seen[theirs.session_id] = (0.0, -2 * TOUCH_WRITE_EVERY_S)  # due for a write-back
    container.sessions.touch_session(HOME, theirs.session_id)
    assert stored(container, SESSIONS, theirs.session_id)["last_seen_ts"] == before


def test_counts_are_per_tenant(container: Container) -> None:
    container.memory.store(FOREIGN, StoreMemory(title="Theirs", content="A lesson of another tenant."))
    container.memory.store(HOME, StoreMemory(title="Mine", content="A lesson of this tenant."))
    request = CreateSkill(name="lint", description="Lints.", prompt_template="Lint it.")
    container.skills.create(FOREIGN, request)
    assert container.memory.counts(HOME) == 1 and container.memory.counts(FOREIGN) == 1
    assert container.skills.counts(HOME) == 0 and container.skills.counts(FOREIGN) == 1
    assert container.status()["memories"] == 2  # the admin path's total
