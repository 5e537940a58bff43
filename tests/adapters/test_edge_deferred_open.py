"""Collections opened at their first use (issue 19: a restart opens only what its first search
reads). The embedded store opens the collections named by ``open_first`` at ``ensure`` and the
others when first read or written: once, under concurrency, with every call answered as if it
had been open all along; a store made for another model still fails at ``ensure``."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
from contextd_mcp.errors import Unavailable
from contextd_mcp.models.scope import Scope
from contextd_mcp.ports.scoped_store import Stores
from contextd_mcp.ports.vector_store import CollectionSpec, Record

FIRST = CollectionSpec(name="first", dim=4, model="test-model", keyword_fields=("tenant",))
LATER = CollectionSpec(name="later", dim=4, model="test-model", keyword_fields=("tenant",), float_fields=("ts",))
SPARSE = CollectionSpec(name="terms", dim=4, model="test-model", keyword_fields=("tenant", "team", "project"), sparse=True)
SCOPE = Scope(tenant="acme", team="core", project="api")


def _rec(n: int, tenant: str = "acme") -> Record:
    return Record(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"r/{tenant}/{n}")), vector=[1.0, float(n), 0.0, 0.0],
                  payload={"tenant": tenant, "n": n, "ts": float(n)})


def _filled(root: Path, per_collection: int = 40) -> dict[str, list[Record]]:
    """A store written and closed by an eager store: what a restart finds."""
    store = EdgeStore(root)
    written = {}
    for spec in (FIRST, LATER):
        store.ensure(spec)
        written[spec.name] = [_rec(n) for n in range(per_collection)] + [_rec(n, "other") for n in range(5)]
        store.upsert(spec.name, written[spec.name])
    store.close()
    return written


def _opens(monkeypatch: pytest.MonkeyPatch, pause_s: float = 0.0) -> list[str]:
    """The collections the store opens, in order (the real open, timed out by ``pause_s`` first
    so that concurrent first uses meet inside it)."""
    opened: list[str] = []
    real = EdgeStore._open

    def spy(self: EdgeStore, spec: CollectionSpec) -> None:
        opened.append(spec.name)
        time.sleep(pause_s)
        real(self, spec)

    monkeypatch.setattr(EdgeStore, "_open", spy)
    return opened


def test_ensure_opens_only_the_first_collections_the_rest_at_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = _filled(tmp_path / "store")
    opened = _opens(monkeypatch)
    store = EdgeStore(tmp_path / "store", open_first={FIRST.name})
    store.ensure(FIRST)
    store.ensure(LATER)
    assert opened == [FIRST.name]
    assert len(store.search(FIRST.name, [1, 0, 0, 0], {"tenant": "acme"}, 100)) == 40
    assert opened == [FIRST.name]  # a search on an open collection opens nothing more
    hits = store.search(LATER.name, [1, 0, 0, 0], {"tenant": "acme"}, 100)
    assert opened == [FIRST.name, LATER.name]
    assert sorted(h.id for h in hits) == sorted(r.id for r in written[LATER.name] if r.payload["tenant"] == "acme")
    store.ensure(LATER)  # ensured again: already open, not opened twice
    store.count(LATER.name, {})
    assert opened == [FIRST.name, LATER.name]
    store.close()


def _first_uses(store: EdgeStore) -> list[Callable[[], Any]]:
    """Every kind of call a deferred collection may see first, reads and writes."""
    name = LATER.name
    return [
        lambda: len(store.search(name, [1, 0, 0, 0], {"tenant": "acme"}, 100)),
        lambda: store.count(name, {"tenant": "acme"}),
        lambda: len(store.get(name, [_rec(n).id for n in range(40)], {"tenant": "acme"})),
        lambda: len(store.scan(name, {"tenant": "acme"}, 100, order_by="ts")),
        lambda: store.upsert(name, [_rec(1000)]),
        lambda: store.set_fields(name, _rec(3).id, {"seen": True}, {"tenant": "acme"}),
        lambda: store.delete(name, [_rec(39, "other").id], {"tenant": "other"}),
        lambda: len(store.search(FIRST.name, [1, 0, 0, 0], {"tenant": "acme"}, 100)),  # the open one, meanwhile
    ]


def test_concurrent_first_uses_open_it_once_and_are_all_answered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _filled(tmp_path / "store")
    opened = _opens(monkeypatch, pause_s=0.2)  # every call below arrives while the open is under way
    store = EdgeStore(tmp_path / "store", open_first={FIRST.name})
    store.ensure(FIRST)
    store.ensure(LATER)
    calls = _first_uses(store)
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert opened == [FIRST.name, LATER.name]  # once, whatever the number of first uses
    search, count, got, scanned, _, _, _, first = results
    # Reads ran before or after the write of record 1000, never against a half-open collection.
    assert search in (40, 41) and count in (40, 41) and got == 40 and scanned in (40, 41) and first == 40
    assert store.count(LATER.name, {"tenant": "acme"}) == 41
    assert store.count(LATER.name, {"tenant": "other"}) == 5  # the delete named an id that is not there
    (seen,) = store.get(LATER.name, [_rec(3).id], {"tenant": "acme"})
    assert seen.payload["seen"] is True
    store.close()


def test_a_collection_never_used_closes_untouched_and_reopens_whole(tmp_path: Path) -> None:
    written = _filled(tmp_path / "store")
    store = EdgeStore(tmp_path / "store", open_first=set())
    store.ensure(FIRST)
    store.ensure(LATER)
    store.flush()
    store.close()
    again = EdgeStore(tmp_path / "store")
    again.ensure(LATER)
    assert again.count(LATER.name, {}) == len(written[LATER.name])
    again.close()


def test_status_and_compact_see_the_deferred_collections(tmp_path: Path) -> None:
    written = _filled(tmp_path / "store")
    store = EdgeStore(tmp_path / "store", open_first={FIRST.name})
    store.ensure(FIRST)
    store.ensure(LATER)
    assert store.describe()["points"] == {FIRST.name: len(written[FIRST.name]), LATER.name: len(written[LATER.name])}
    store.close()
    store = EdgeStore(tmp_path / "store", open_first={FIRST.name})
    store.ensure(FIRST)
    store.ensure(LATER)
    assert set(store.compact()) == {FIRST.name, LATER.name}
    store.close()


def test_a_deferred_collection_of_another_model_fails_at_ensure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _filled(tmp_path / "store")
    opened = _opens(monkeypatch)
    store = EdgeStore(tmp_path / "store", open_first={FIRST.name})
    with pytest.raises(Unavailable, match="another-model"):
        store.ensure(dataclasses.replace(LATER, model="another-model", dim=8))
    assert opened == []
    store.close()


def test_a_new_collection_is_created_at_first_use(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "store", open_first=set())
    store.ensure(LATER)
    assert not (tmp_path / "store" / LATER.name).exists()
    store.upsert(LATER.name, [_rec(1)])
    assert [r.id for r in store.scan(LATER.name, {}, 10, order_by="ts")] == [_rec(1).id]  # the range index made at creation
    store.close()


def test_a_sparse_collection_in_the_current_layout_is_not_opened_by_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def sparse_rec(n: int) -> Record:
        return Record(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"s/{n}")), vector=[1.0, 0.0, float(n), 0.0],
                      payload=SCOPE.fields(), sparse={7 + n: 1.0})

    first = EdgeStore(tmp_path / "store")
    stores = Stores(first)
    stores.ensure(SPARSE)  # a new collection: made in the current layout
    stores.of(SCOPE).upsert(SPARSE.name, [sparse_rec(n) for n in range(5)])
    first.close()
    opened = _opens(monkeypatch)
    store = EdgeStore(tmp_path / "store", open_first=set())
    Stores(store).ensure(SPARSE)  # reads the term layout from the collection's state file only
    assert opened == []
    hits = Stores(store).of(SCOPE).sparse_search(SPARSE.name, {9: 1.0}, limit=1)
    assert opened == [SPARSE.name] and [h.id for h in hits] == [sparse_rec(2).id]
    store.close()


def test_a_new_sparse_collection_is_made_by_the_term_check(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "store", open_first=set())
    stores = Stores(store)
    stores.ensure(SPARSE)  # the term key lives in the collection's state file: made with it
    assert (tmp_path / "store" / SPARSE.name).is_dir()
    record = Record(id=str(uuid.uuid4()), vector=[1.0, 0.0, 0.0, 0.0], payload=SCOPE.fields(), sparse={3: 1.0})
    stores.of(SCOPE).upsert(SPARSE.name, [record])
    assert [h.id for h in stores.of(SCOPE).sparse_search(SPARSE.name, {3: 1.0}, limit=1)] == [record.id]
    store.close()
