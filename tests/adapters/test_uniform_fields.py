"""A condition every point of a collection meets is left out of the engine's filter (a store of
one tenant's one project); every write that could make it false for some point puts it back
first. Real embedded Qdrant; the attacks are another owner's writes after the store has learned
that it holds one owner only."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from contextd_mcp.adapters import uniform_fields
from contextd_mcp.adapters.qdrant_edge_store import HOT_INDEX_AT, EdgeStore
from contextd_mcp.ports.vector_store import CollectionSpec, Range, Record

DIM = 16
SPEC = CollectionSpec(name="keys", dim=DIM, model="test-model", keyword_fields=("tenant", "project", "kind"),
                      hot_fields=("tenant", "project", "kind"), float_fields=("created_ts",), sparse=True)
MINE = {"tenant": "a", "project": "p"}
WIDE = max(HOT_INDEX_AT, 250)  # past the hot fields' index: what an open asks is the index


def _records(n: int, owner: dict[str, str], seed: int = 0, vector: list[float] | None = None) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        v = vector or (rng.standard_normal(DIM) / 4).tolist()
        payload = {**owner, "kind": "doc" if i % 2 else "title", "created_ts": float(i)}
        out.append(Record(str(uuid.uuid4()), payload, v, {i % 7: 1.0}))
    return out


def _reopened(root: Path, *batches: list[Record]) -> EdgeStore:
    store = EdgeStore(root)
    store.ensure(SPEC)
    for batch in batches:
        store.upsert(SPEC.name, batch)
    store.close()
    store = EdgeStore(root)
    store.ensure(SPEC)
    return store


def _owners(hits: list) -> set[tuple[str, str]]:
    return {(h.payload["tenant"], h.payload["project"]) for h in hits}


def test_a_store_of_one_owner_searches_without_the_owner_filter_and_finds_the_same(tmp_path: Path) -> None:
    store = _reopened(tmp_path, _records(WIDE, MINE))
    where = {**MINE, "kind": "doc"}
    # The owner's conditions are met by every point; the kind's is not.
    assert store._uniform.needed(SPEC.name, where) == {"kind": "doc"}
    assert store._uniform.needed(SPEC.name, {"tenant": ["a", "z"]}) == {}
    assert store._uniform.needed(SPEC.name, {"tenant": "b"}) == {"tenant": "b"}  # matches nothing: kept
    assert store._uniform.needed(SPEC.name, {"created_ts": Range(gte=0)}) == {"created_ts": Range(gte=0)}
    hits = store.search(SPEC.name, [1.0] * DIM, where, 50, ["tenant", "project", "kind"])
    assert len(hits) == 50 and {h.payload["kind"] for h in hits} == {"doc"} and _owners(hits) == {("a", "p")}
    assert store.count(SPEC.name, MINE) == WIDE
    assert store.describe()["shared_by_every_point"] == {SPEC.name: ["tenant", "project"]}  # kind has two values
    store.close()


@pytest.mark.parametrize(("foreign", "still_shared"), [({"tenant": "b", "project": "p"}, ["project"]),
                                                      ({"tenant": "a", "project": "q"}, ["tenant"])])
def test_another_owners_write_after_the_open_is_never_found_by_the_first_owner(
    tmp_path: Path, foreign: dict, still_shared: list[str]
) -> None:
    store = _reopened(tmp_path, _records(WIDE, MINE))
    assert store._uniform.needed(SPEC.name, MINE) == {}
    target = [0.0] * DIM
    target[3] = 1.0
    store.upsert(SPEC.name, _records(20, foreign, seed=1, vector=target))  # nearest to the query below
    fields = ["tenant", "project", "kind"]
    assert _owners(store.search(SPEC.name, target, MINE, 30, fields)) == {("a", "p")}
    assert _owners(store.sparse_search(SPEC.name, {3: 1.0}, MINE, 30, fields)) == {("a", "p")}
    dense, lexical = store.dense_and_sparse(SPEC.name, target, {3: 1.0}, MINE, 30, fields)
    assert _owners(dense) == _owners(lexical) == {("a", "p")}
    assert _owners(store.hybrid_search(SPEC.name, target, {3: 1.0}, MINE, 30, fields=fields)) == {("a", "p")}
    assert store.count(SPEC.name, MINE) == WIDE
    assert _owners([*store.scan(SPEC.name, MINE, 500, fields=fields)]) == {("a", "p")}
    assert store._uniform.needed(SPEC.name, MINE) != {}
    assert store.describe()["shared_by_every_point"][SPEC.name] == still_shared
    store.close()


def test_an_owner_field_set_on_a_point_puts_the_filter_back(tmp_path: Path) -> None:
    records = _records(WIDE, MINE)
    store = _reopened(tmp_path, records)
    moved = records[0]
    store.set_fields(SPEC.name, moved.id, {"tenant": "b"}, MINE)
    hits = store.search(SPEC.name, moved.vector or [], MINE, 5, ["tenant"])
    assert moved.id not in {h.id for h in hits} and {h.payload["tenant"] for h in hits} == {"a"}
    store.close()


def test_a_store_holding_two_owners_keeps_the_filter_from_its_open(tmp_path: Path) -> None:
    target = [0.0] * DIM
    target[5] = 1.0
    store = _reopened(tmp_path, _records(WIDE, MINE), _records(10, {"tenant": "a", "project": "q"}, vector=target))
    assert store._uniform.needed(SPEC.name, MINE) == {"project": "p"}  # one tenant, two projects
    assert _owners(store.search(SPEC.name, target, MINE, 20, ["tenant", "project"])) == {("a", "p")}
    store.close()


def test_a_point_without_an_owner_field_keeps_that_condition(tmp_path: Path) -> None:
    bare = Record(str(uuid.uuid4()), {"tenant": "a", "kind": "doc"}, [0.5] * DIM, {1: 1.0})  # no project
    store = _reopened(tmp_path, _records(WIDE, MINE), [bare])
    assert "project" in store._uniform.needed(SPEC.name, MINE)
    assert bare.id not in {h.id for h in store.search(SPEC.name, [0.5] * DIM, MINE, 10)}
    store.close()


def test_a_new_collection_learns_its_owner_from_its_writes(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    assert store._uniform.needed(SPEC.name, MINE) == MINE  # empty: nothing to leave out yet
    store.upsert(SPEC.name, _records(5, MINE))
    target = [0.0] * DIM
    target[0] = 1.0
    store.upsert(SPEC.name, _records(5, {"tenant": "b", "project": "p"}, vector=target))
    assert _owners(store.search(SPEC.name, target, MINE, 10, ["tenant", "project"])) == {("a", "p")}
    store.close()


@pytest.mark.parametrize("recorded", [True, False])
def test_a_clean_close_records_the_shared_fields_and_the_next_open_takes_them_without_asking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: bool
) -> None:
    """Asking the engine cost 3.8 s of every start at 1M memories; the record answers instead.
    Without it (a crash since the last clean close), the engine is asked, with the same answer."""
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    store.upsert(SPEC.name, _records(WIDE, MINE))
    store.close()
    record = tmp_path / SPEC.name / uniform_fields.RECORD
    assert json.loads(record.read_text()) == {"points": WIDE, "values": MINE}  # kind has two values
    asked: list[str] = []
    ask = uniform_fields._only_value

    def asking(shard: object, name: str, every: int) -> object:
        asked.append(name)
        return ask(shard, name, every)  # type: ignore[arg-type]

    monkeypatch.setattr(uniform_fields, "_only_value", asking)
    if not recorded:
        record.unlink()
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    # Only what the record does not say is asked (kind, which has two values).
    assert asked == (["kind"] if recorded else ["tenant", "project", "kind"])
    assert not record.exists()  # taken at the open: a crash from here on leaves none behind
    assert store._uniform.needed(SPEC.name, {**MINE, "kind": "doc"}) == {"kind": "doc"}
    assert store.describe()["shared_by_every_point"] == {SPEC.name: ["tenant", "project"]}
    store.close()


def test_a_record_from_another_count_of_points_is_not_believed(tmp_path: Path) -> None:
    """The attack: a record left from before other owners' points were written (a copied-back
    file, or a writer that never closed) must not drop the owner filter."""
    target = [0.0] * DIM
    target[2] = 1.0
    store = _reopened(tmp_path, _records(WIDE, MINE), _records(10, {"tenant": "b", "project": "p"}, vector=target))
    store.close()
    record = tmp_path / SPEC.name / uniform_fields.RECORD
    record.write_text(json.dumps({"points": WIDE, "values": MINE}))  # says one owner, at the older count
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    assert store._uniform.needed(SPEC.name, MINE) == {"tenant": "a"}
    assert _owners(store.search(SPEC.name, target, MINE, 20, ["tenant", "project"])) == {("a", "p")}
    store.close()
    record.write_text("{not json")
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    assert store._uniform.needed(SPEC.name, MINE) == {"tenant": "a"} and not record.exists()
    store.close()


def test_an_open_without_a_record_sees_a_point_moved_to_another_owner_and_not_a_deleted_one(tmp_path: Path) -> None:
    """After a crash the engine is asked. The attack: one point rewritten under another owner
    (its older version still on disk in an older segment) must keep the filter; a point of
    another owner that was deleted must not be counted against the one owner left."""
    mine = _records(WIDE, MINE)
    moved = Record(mine[0].id, {**mine[0].payload, "tenant": "b"}, mine[0].vector, mine[0].sparse)
    store = _reopened(tmp_path, mine, [moved])
    store.close()
    (tmp_path / SPEC.name / uniform_fields.RECORD).unlink()  # as after a crash
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    assert store._uniform.needed(SPEC.name, MINE) == {"tenant": "a"}
    assert _owners(store.search(SPEC.name, list(mine[0].vector or []), MINE, 5, ["tenant", "project"])) == {("a", "p")}
    store.delete(SPEC.name, [mine[0].id], {"tenant": "b", "project": "p"})
    store.close()
    (tmp_path / SPEC.name / uniform_fields.RECORD).unlink(missing_ok=True)
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    assert store._uniform.needed(SPEC.name, MINE) == {}  # every point left is the one owner's
    store.close()
