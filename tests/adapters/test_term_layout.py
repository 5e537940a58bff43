"""Per-tenant term indexes on a store written before them: the one-time rewrite, on each engine.

A store written by the earlier code holds plain term indexes (``term_index`` of each word) and
no term layout in its collection state. Opened through ``Stores`` it is rewritten once to
each record's tenant's layout (``ports/tenant_terms.py``): its lexical results are then those
of a store written by the new code from the start, dense vectors as they were, and an
interrupted rewrite, run again, ends the same (no vector remapped twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.adapters import sparse_rewrite
from contextd_mcp.models.scope import Scope
from contextd_mcp.ports import tenant_terms
from contextd_mcp.ports.scoped_store import Stores
from contextd_mcp.ports.vector_store import CollectionSpec, Hit, Record, VectorStore
from contextd_mcp.services.error_text import normalise, sparse_vector
from tests.adapters.test_vector_store_contract import BACKENDS, open_store

_REWRITE = sparse_rewrite.rewrite  # the real one, for the crashing wrapper below

SPEC = CollectionSpec(name="fixes", dim=4, model="test-model", keyword_fields=("tenant", "team", "project"), sparse=True)
TENANTS = [Scope(tenant=t, team="core", project="api") for t in ("initech", "umbrella", "globex")]
WORDS = ["zanzibar", "quokka", "wombat", "ledger", "timeout", "locked", "vault", "kafka", "psycopg", "yaml"]
QUERIES = ["zanzibar quokka", "ledger locked timeout", "kafka vault yaml", "wombat psycopg zanzibar"]


def _records() -> list[tuple[Scope, Record]]:
    """23 records over three tenants, word counts differing by tenant (so their IDF does)."""
    made = []
    for n in range(23):
        scope = TENANTS[n % 3]
        text = " ".join(WORDS[(n * k) % len(WORDS)] for k in range(1, 2 + n % 4))
        vector = [1.0, float(n % 5), float(n % 3), 0.5]
        ident = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fix/{n}"))
        made.append((scope, Record(ident, {**scope.fields(), "n": n}, vector, sparse_vector(normalise(text), unit=True))))
    return made


def _write_plain(store: VectorStore) -> None:
    """As the earlier code did: the raw store (no rewrite at ensure), plain term indexes."""
    store.ensure(SPEC)
    store.upsert(SPEC.name, [record for _, record in _records()])
    store.flush()


def _write_new(store: VectorStore) -> None:
    stores = Stores(store)
    stores.ensure(SPEC)
    for scope, record in _records():
        stores.of(scope).upsert(SPEC.name, [record])
    store.flush()


def _ranked(hits: list[Hit]) -> list[tuple[float, str]]:
    return sorted((-h.score, h.id) for h in hits)


def _groups(ranked: list[tuple[float, str]]) -> list[set[str]]:
    """Ids by score, near-equal scores (float32 sums in another term order) as one group."""
    groups: list[tuple[float, set[str]]] = []
    for score, ident in ranked:
        if groups and abs(groups[-1][0] - score) <= 1e-5:
            groups[-1][1].add(ident)
        else:
            groups.append((score, {ident}))
    return [ids for _, ids in groups]


def _same(a: list[tuple[float, str]], b: list[tuple[float, str]]) -> bool:
    """The same hits with the same scores, up to the engine summing a query's terms in index
    order (which differs between term spaces: another tenant, another store's key)."""
    return len(a) == len(b) and all(abs(x[0] - y[0]) <= 1e-5 for x, y in zip(a, b, strict=True)) and _groups(a) == _groups(b)


def _same_results(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(_same(a[k][0], b[k][0]) and _same(a[k][1], b[k][1]) for k in a)


def _results(store: VectorStore) -> dict[str, Any]:
    stores = Stores(store)
    stores.ensure(SPEC)  # as every service does before its first call (a store in the old layout: rewritten)
    out: dict[str, Any] = {}
    for scope in TENANTS:
        handle = stores.of(scope)
        for query in QUERIES:
            lexical = handle.sparse_search(SPEC.name, sparse_vector(normalise(query)), 10)
            dense = handle.search(SPEC.name, [1.0, 2.0, 1.0, 0.5], 10)
            out[f"{scope.tenant}/{query}"] = (_ranked(lexical), _ranked(dense))
    return out


def _dense(store: VectorStore) -> dict[str, Any]:
    """Dense results per tenant and query through the raw store (no Stores: nothing rewritten)."""
    return {f"{scope.tenant}/{query}": _ranked(store.search(SPEC.name, [1.0, 2.0, 1.0, 0.5], scope.fields(), 10))
            for scope in TENANTS for query in QUERIES}


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "qdrant-server":
        pytest.skip("a shared server would hold both stores in one collection")
    return str(request.param)


@pytest.fixture
def reference(kind: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The results of a store written by the per-tenant code from the start."""
    store = open_store(kind, tmp_path / "reference")
    try:
        _write_new(store)
        yield _results(store)
    finally:
        store.close()


def test_a_store_written_before_gives_the_new_codes_results(kind: str, tmp_path: Path, reference: dict[str, Any]) -> None:
    store = open_store(kind, tmp_path / "old")
    _write_plain(store)
    dense_before = _dense(store)
    store.close()

    store = open_store(kind, tmp_path / "old")
    try:
        Stores(store).ensure(SPEC)  # what a service does at start: the rewrite happens here
        upgraded = _results(store)
        assert _same_results(upgraded, reference)
        dense_after = {key: dense for key, (_, dense) in upgraded.items()}
        assert all(_same(dense_after[k], dense_before[k]) for k in dense_before), "dense vectors moved"
        assert any(lexical for lexical, _ in upgraded.values())
        # Marked: opened again, nothing is rewritten.
        assert store.rewrite_sparse(SPEC.name, tenant_terms.LAYOUT, tenant_terms.from_plain(store.term_key(SPEC.name))) == 0
    finally:
        store.close()


class Crash(RuntimeError):
    pass


def _crashing(at: int, after_write: bool) -> Callable[..., int]:
    """``rewrite`` whose ``at``-th batch write dies before (or just after) reaching the engine."""
    calls = {"n": 0}

    def run(engine: sparse_rewrite.Engine, layout: str, remap: Any) -> int:
        def write(batch: list[tuple[str, Any]]) -> None:
            calls["n"] += 1
            if calls["n"] == at and not after_write:
                raise Crash("before the write")
            engine.write(batch)
            if calls["n"] == at:
                raise Crash("after the write, before the journal is dropped")
        return _REWRITE(sparse_rewrite.Engine(engine.read, write, engine.load, engine.save), layout, remap)

    return run


@pytest.mark.parametrize("after_write", [False, True], ids=["before-write", "after-write"])
def test_an_interrupted_rewrite_resumes_without_remapping_twice(
    kind: str, tmp_path: Path, reference: dict[str, Any], monkeypatch: pytest.MonkeyPatch, after_write: bool
) -> None:
    store = open_store(kind, tmp_path / "old")
    _write_plain(store)
    store.close()

    monkeypatch.setattr(sparse_rewrite, "SPARSE_REWRITE_BATCH", 5)  # 23 records: five batches
    monkeypatch.setattr(sparse_rewrite, "rewrite", _crashing(at=3, after_write=after_write))
    store = open_store(kind, tmp_path / "old")
    try:
        with pytest.raises(Crash):
            Stores(store).ensure(SPEC)
    finally:
        store.close()
    monkeypatch.setattr(sparse_rewrite, "rewrite", _REWRITE)

    store = open_store(kind, tmp_path / "old")
    try:
        Stores(store).ensure(SPEC)
        assert _same_results(_results(store), reference)
    finally:
        store.close()


def test_move_sparse_moves_owner_and_terms_together(kind: str, tmp_path: Path) -> None:
    """migrate-tenant's write: the record lands in the new tenant with its terms in that tenant's
    layout, as if written there; its dense vector as it was."""
    store = open_store(kind, tmp_path / "move")
    try:
        stores = Stores(store)
        stores.ensure(SPEC)
        old, new = TENANTS[0], TENANTS[1]
        records = [record for scope, record in _records() if scope == old]
        stores.of(old).upsert(SPEC.name, records)
        query = sparse_vector(normalise("ledger locked timeout zanzibar"))
        before_lexical = _ranked(stores.of(old).sparse_search(SPEC.name, query, 10))
        before_dense = _ranked(stores.of(old).search(SPEC.name, [1.0, 2.0, 1.0, 0.5], 10))
        assert before_lexical
        secret = store.term_key(SPEC.name)
        for record in records:
            store.move_sparse(SPEC.name, record.id, new.fields(), old.fields(),
                              lambda owner, sparse: tenant_terms.between(sparse, str(owner["tenant"]), new.tenant, secret))
        assert stores.of(old).sparse_search(SPEC.name, query, 10) == []
        assert _same(_ranked(stores.of(new).sparse_search(SPEC.name, query, 10)), before_lexical)
        assert _same(_ranked(stores.of(new).search(SPEC.name, [1.0, 2.0, 1.0, 0.5], 10)), before_dense)
        # A record outside ``where`` is left as it is.
        store.move_sparse(SPEC.name, records[0].id, old.fields(), TENANTS[2].fields(), lambda owner, sparse: {})
        assert _same(_ranked(stores.of(new).sparse_search(SPEC.name, query, 10)), before_lexical)
    finally:
        store.close()


def test_each_store_keys_its_tenants_term_spaces_with_its_own_secret(kind: str, tmp_path: Path) -> None:
    """The tenant offsets are keyed (a public hash would let a tenant who knows another's name aim
    a crafted word at one of its terms): random per store, and the same after a reopen, which
    the stored vectors depend on."""
    keys = []
    for name in ("one", "two"):
        store = open_store(kind, tmp_path / name)
        try:
            Stores(store).ensure(SPEC)
            keys.append(store.term_key(SPEC.name))
        finally:
            store.close()
    assert len(keys[0]) == 16 and keys[0] != keys[1]
    store = open_store(kind, tmp_path / "one")
    try:
        store.ensure(SPEC)
        assert store.term_key(SPEC.name) == keys[0]
    finally:
        store.close()
    offsets = [tenant_terms.tenant_key(TENANTS[0].tenant, key) for key in keys]
    assert offsets[0] != offsets[1], "the same tenant lands elsewhere in another store's index space"

