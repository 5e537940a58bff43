"""The scope-bound handle, attacked: on both adapters, a handle for HOME neither reads, counts,
changes nor deletes another tenant's record, whatever id or condition a (buggy) service passes.

Each attack is first run with the raw call a service made before the handle existed (no scope
on ``set_fields`` / ``delete``, an empty filter on ``get`` and ``count``): it succeeds there, so
the test shows the handle is what stops it, not the data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from contextd_mcp.models.scope import Scope, ScopeLevel, owner_fields
from contextd_mcp.ports.scoped_store import AcrossScopes, ScopeViolation, Stores
from contextd_mcp.ports.vector_store import CollectionSpec, Record, VectorStore
from tests.adapters.test_vector_store_contract import BACKENDS, open_store

HOME = Scope(tenant="acme", team="core", project="api")
SIBLING = Scope(tenant="acme", team="core", project="web")
# Same team and project names, another tenant: a filter that forgets the tenant shows at once.
FOREIGN = Scope(tenant="globex", team="core", project="api")
SPEC = CollectionSpec(name="things", dim=4, model="test-model")


@pytest.fixture(params=BACKENDS)
def raw(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    opened = open_store(request.param, tmp_path)
    if request.param == "qdrant-server":
        spec = CollectionSpec(name=f"t{uuid.uuid4().hex[:8]}", dim=4, model="test-model")
    else:
        spec = SPEC
    opened.ensure(spec)
    opened.spec = spec  # type: ignore[attr-defined]
    yield opened
    opened.close()


def col(raw: VectorStore) -> str:
    return raw.spec.name  # type: ignore[attr-defined]


def put(raw: VectorStore, owner: dict[str, str], **payload: object) -> str:
    ident = str(uuid.uuid4())
    raw.upsert(col(raw), [Record(ident, {**owner, "note": "original", "use_count": 0, **payload}, [1.0, 0, 0, 0])])
    return ident


def note(raw: VectorStore, ident: str) -> str | None:
    found = raw.get(col(raw), [ident], {})
    return found[0].payload["note"] if found else None


def test_set_fields_on_another_tenants_id_changes_nothing(raw: VectorStore) -> None:
    theirs = put(raw, FOREIGN.fields())
    raw.set_fields(col(raw), theirs, {"note": "raw attack"}, {})  # before: no scope on the call
    assert note(raw, theirs) == "raw attack"
    for reach in ScopeLevel:
        Stores(raw).of(HOME).set_fields(col(raw), theirs, {"note": "through the handle"}, reach)
        Stores(raw).levelled(HOME).set_fields(col(raw), theirs, {"note": "through the handle"}, reach)
    assert note(raw, theirs) == "raw attack"


def test_set_fields_on_a_sibling_projects_id_needs_a_wider_reach(raw: VectorStore) -> None:
    sibling = put(raw, SIBLING.fields())
    Stores(raw).of(HOME).set_fields(col(raw), sibling, {"note": "project reach"})
    assert note(raw, sibling) == "original"
    Stores(raw).of(HOME).set_fields(col(raw), sibling, {"note": "team reach"}, ScopeLevel.team)
    assert note(raw, sibling) == "team reach"  # the widening a caller asks for on purpose


def test_delete_of_another_tenants_id_deletes_nothing(raw: VectorStore) -> None:
    theirs, victim = put(raw, FOREIGN.fields()), put(raw, FOREIGN.fields())
    raw.delete(col(raw), [victim], {})  # before: no scope on the call
    assert note(raw, victim) is None
    mine = put(raw, HOME.fields())
    for reach in ScopeLevel:
        Stores(raw).of(HOME).delete(col(raw), [theirs], reach)
        Stores(raw).levelled(HOME).delete(col(raw), [theirs], reach)
    Stores(raw).of(HOME).delete(col(raw), [theirs, mine])  # a mixed batch: only its own goes
    assert note(raw, theirs) == "original" and note(raw, mine) is None


def test_count_never_includes_another_tenant(raw: VectorStore) -> None:
    for _ in range(3):
        put(raw, FOREIGN.fields())
    put(raw, HOME.fields())
    put(raw, SIBLING.fields())
    assert raw.count(col(raw), {}) == 5  # before: counts() without a scope counted every tenant
    handle = Stores(raw).of(HOME)
    assert [handle.count(col(raw), reach) for reach in ScopeLevel] == [1, 2, 2]
    assert Stores(raw).levelled(HOME).count(col(raw), ScopeLevel.org) == 2
    assert AcrossScopes(raw).count(col(raw)) == 5  # the admin path, for status totals


def test_read_by_id_without_a_filter_is_not_offered(raw: VectorStore) -> None:
    """skills.py's use counter read a skill by id with an empty filter."""
    theirs = put(raw, owner_fields(FOREIGN, ScopeLevel.org), use_count=7)
    assert [r.id for r in raw.get(col(raw), [theirs], {})] == [theirs]  # before: any tenant's skill
    handle = Stores(raw).levelled(HOME)
    assert all(handle.get(col(raw), [theirs], reach) == [] for reach in ScopeLevel)
    assert all(handle.scan(col(raw), 100, reach) == [] for reach in ScopeLevel)
    assert all(handle.search(col(raw), [1.0, 0, 0, 0], 10, reach) == [] for reach in ScopeLevel)
    assert handle.hybrid_search(col(raw), [1.0, 0, 0, 0], {}, 10, ScopeLevel.org) == []


def test_levelled_handles_see_what_applies_and_wider_reaches_their_own_tenant_only(raw: VectorStore) -> None:
    org, team = put(raw, owner_fields(HOME, ScopeLevel.org)), put(raw, owner_fields(HOME, ScopeLevel.team))
    project, sibling = put(raw, HOME.fields()), put(raw, SIBLING.fields())
    put(raw, owner_fields(FOREIGN, ScopeLevel.org))
    handle = Stores(raw).levelled(HOME)
    seen = {reach: {r.id for r in handle.scan(col(raw), 100, reach)} for reach in ScopeLevel}
    assert seen == {
        ScopeLevel.project: {org, team, project},
        ScopeLevel.team: {org, team, project, sibling},
        ScopeLevel.org: {org, team, project, sibling},
    }


def test_a_condition_cannot_widen_the_scope(raw: VectorStore) -> None:
    theirs = put(raw, FOREIGN.fields())
    handle = Stores(raw).of(HOME)
    for match in ({"tenant": "globex"}, {"tenant": ["acme", "globex"]}, {"project": "web"}):
        with pytest.raises(ScopeViolation):
            handle.get(col(raw), [theirs], match=match)
        with pytest.raises(ScopeViolation):
            handle.count(col(raw), match=match)
    # Narrowing is fine: at org reach the team and project are free to name.
    assert handle.count(col(raw), ScopeLevel.org, {"project": "web"}) == 0


def test_writes_are_stamped_and_a_record_of_another_scope_is_refused(raw: VectorStore) -> None:
    handle = Stores(raw).of(HOME)
    stamped = str(uuid.uuid4())
    handle.upsert(col(raw), [Record(stamped, {"note": "no owner named"})])
    assert {k: raw.get(col(raw), [stamped], {})[0].payload[k] for k in ("tenant", "team", "project")} == HOME.fields()
    planted = str(uuid.uuid4())
    for owner in (FOREIGN.fields(), SIBLING.fields(), {"tenant": "globex"}):
        with pytest.raises(ScopeViolation):
            handle.upsert(col(raw), [Record(stamped, {"note": "overwrite"}), Record(planted, {**owner, "note": "x"})])
    assert note(raw, planted) is None and note(raw, stamped) == "no owner named"  # the batch went nowhere
    with pytest.raises(ScopeViolation):
        handle.set_fields(col(raw), stamped, {"tenant": "globex"})  # nor can an update move it
    assert Stores(raw).levelled(HOME).count(col(raw)) == 1


def test_a_levelled_handle_writes_at_any_level_of_its_own_tenant_only(raw: VectorStore) -> None:
    handle = Stores(raw).levelled(HOME)
    for level in ScopeLevel:
        handle.upsert(col(raw), [Record(str(uuid.uuid4()), {**owner_fields(HOME, level), "note": level.value})])
    with pytest.raises(ScopeViolation):
        handle.upsert(col(raw), [Record(str(uuid.uuid4()), owner_fields(FOREIGN, ScopeLevel.org))])
    assert handle.count(col(raw), ScopeLevel.org) == 3 and raw.count(col(raw), {}) == 3
