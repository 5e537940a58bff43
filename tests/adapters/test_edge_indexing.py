"""Indexing a live collection off the request path (adapters/edge_indexing.py): a child process
builds a copy while the store keeps serving, the writes made meanwhile are replayed onto the copy,
the copy is swapped in, and a store killed at any step reopens with every acknowledged write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contextd_mcp.adapters import edge_generations as gen
from contextd_mcp.adapters import qdrant_edge_store as edge
from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
from contextd_mcp.ports import tenant_terms
from contextd_mcp.ports.scoped_store import Stores
from tests.adapters._index_proc import INDEX_AFTER, SPEC, records

ROOT = Path(__file__).parents[2]


def _job(store: EdgeStore) -> dict[str, Any]:
    return store.describe()["indexing"]["keys"].get("job", {})


def _wait_done(store: EdgeStore, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _job(store)
        if state.get("stage") in ("done", "failed"):
            return state
        time.sleep(0.05)
    raise AssertionError(f"indexing did not finish: {_job(store)}")


def _placements(store: EdgeStore) -> dict[str, Any]:
    """Where each payload index of the collection lives (heap or memory-mapped)."""
    return {name: info.params.memory for name, info in store._shards["keys"].info().payload_schema.items()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    # 3,000 points of 32 dims make an indexed segment (the daemon's threshold is ≈ 5k of 384).
    monkeypatch.setattr(edge, "INDEXING_THRESHOLD_KB", 50)


@pytest.mark.usefixtures("small_segments")
def test_every_write_made_while_the_child_builds_is_in_the_swapped_generation(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    building, release = threading.Event(), threading.Event()

    def at(collection: str, stage: str) -> None:
        if stage == "build":
            building.set()
            release.wait(60)

    store = EdgeStore(tmp_path, index_after=INDEX_AFTER, on_stage=at, index_nice=0)
    store.ensure(SPEC)
    first = records(rng, 3000)
    for i in range(0, len(first), 100):
        store.upsert("keys", first[i : i + 100])
    assert building.wait(30), _job(store)
    child = int(_job(store)["child_pid"])
    os.kill(child, signal.SIGSTOP)  # a build that takes as long as the test needs
    try:
        during = records(rng, 50, project="during")
        store.upsert("keys", during)
        store.set_fields("keys", first[0].id, {"learned": ["a query"]}, {"tenant": "t"})
        store.delete("keys", [first[1].id, first[2].id], {"tenant": "t"})
        hits = store.search("keys", during[0].vector or [], {"project": "during"}, 1)
        assert _alive(child) and _job(store)["stage"] == "build"
        assert [h.id for h in hits] == [during[0].id]  # served by the live shard meanwhile
    finally:
        os.kill(child, signal.SIGCONT)
        release.set()
    state = _wait_done(store)

    assert state["stage"] == "done", state
    # Each step that stalls requests is timed in the status (the open holds the GIL).
    assert state["open_s"] > 0 and state["replay_s"] >= 0 and state["replayed_ops"] == 0, state
    assert not _alive(child)
    live = tmp_path / "keys"
    # The copy holds what was written before it (the writes after it: replayed, not indexed yet).
    copied = int(state["points"])
    assert INDEX_AFTER <= copied <= 3000
    assert live.is_symlink() and gen.read_marker(live.resolve())["indexed_points"] == copied
    assert [p.name for p in gen.generations_dir(tmp_path, "keys").iterdir()] == [live.resolve().name]
    # The copy was built (dense vectors in an HNSW segment besides the sparse ones), and the
    # writes logged during the build were replayed onto it.
    assert store._shards["keys"].info().indexed_vectors_count >= 2 * copied
    assert store.count("keys", {"tenant": "t"}) == 3000 + 50 - 2
    assert store.get("keys", [first[0].id], {"tenant": "t"})[0].payload["learned"] == ["a query"]
    assert store.get("keys", [first[1].id, first[2].id], {"tenant": "t"}) == []
    assert [h.id for h in store.search("keys", during[7].vector or [], {"project": "during"}, 1)] == [during[7].id]
    store.close()
    reopened = EdgeStore(tmp_path)
    reopened.ensure(SPEC)
    assert reopened.count("keys", {"tenant": "t"}) == 3048
    assert reopened.describe()["indexing"]["keys"]["unindexed_points"] == 3048 - copied
    reopened.close()


@pytest.mark.usefixtures("small_segments")
def test_writes_made_while_the_files_are_copied_are_in_the_swapped_generation(tmp_path: Path) -> None:
    """The copy runs while writes go on (at 1M memories it stalled every write ~19 s); what they
    changed is copied again with writes held, and none of it is in the replayed log."""
    rng = np.random.default_rng(3)
    made: dict[str, Any] = {}

    def at(collection: str, stage: str) -> None:
        if stage == "catch_up":  # the pre-copy is done; the job holds nothing
            during = records(rng, 40, project="during")
            store.upsert("keys", during)
            store.set_fields("keys", first[0].id, {"learned": ["while copying"]}, {"tenant": "t"})
            store.delete("keys", [first[1].id], {"tenant": "t"})
            made["during"] = during

    filling = EdgeStore(tmp_path)  # no indexing: nothing else writes while the job runs below
    filling.ensure(SPEC)
    first = records(rng, 3000)
    for i in range(0, len(first), 100):
        filling.upsert("keys", first[i : i + 100])
    filling.close()
    store = EdgeStore(tmp_path, index_after=INDEX_AFTER, on_stage=at, index_nice=0)
    store.ensure(SPEC)
    store.upsert("keys", records(rng, 64))  # the store looks at its size every 64 writes: the job starts
    state = _wait_done(store)

    assert state["stage"] == "done", state
    assert state["precopy_s"] > 0 and state["copy_s"] > 0 and state["caught_up_bytes"] > 0, state
    assert state["replayed_ops"] == 0, state  # the writes above came with the files, not the log
    during = made["during"]
    assert int(state["points"]) == 3064 + 40 - 1  # counted after them
    assert store.count("keys", {"tenant": "t"}) == 3064 + 40 - 1
    assert store.get("keys", [first[0].id], {"tenant": "t"})[0].payload["learned"] == ["while copying"]
    assert store.get("keys", [first[1].id], {"tenant": "t"}) == []
    assert [h.id for h in store.search("keys", during[5].vector or [], {"project": "during"}, 1)] == [during[5].id]
    store.close()
    reopened = EdgeStore(tmp_path)
    reopened.ensure(SPEC)
    assert reopened.count("keys", {"project": "during"}) == 40
    reopened.close()


@pytest.mark.usefixtures("small_segments")
def test_searches_are_answered_while_the_child_is_building(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    store = EdgeStore(tmp_path, index_after=6000)
    store.ensure(SPEC)
    points = records(rng, 6000)
    queries = [p.vector or [] for p in points[:50]]
    for i in range(0, len(points), 500):
        store.upsert("keys", points[i : i + 500])
    deadline = time.monotonic() + 30
    while "child_pid" not in _job(store) and time.monotonic() < deadline:
        time.sleep(0.01)
    child = int(_job(store)["child_pid"])
    niceness = set()
    inherited = os.getpriority(os.PRIO_PROCESS, 0)  # the child's until it renices itself
    answered_while_alive = 0
    while _alive(child):
        try:
            niceness.add(os.getpriority(os.PRIO_PROCESS, child))
        except ProcessLookupError:
            break
        hits = store.search("keys", queries[answered_while_alive % 50], {"project": "p"}, 10)
        if _alive(child):  # the child was alive when the search had its answer
            answered_while_alive += 1
            assert hits
    state = _wait_done(store)
    store.close()
    assert state["stage"] == "done", state
    assert answered_while_alive >= 3, (answered_while_alive, state)
    assert 19 in niceness and niceness <= {inherited, 19}, niceness
    print(f"{answered_while_alive} searches answered during a {state['build_s']} s build")


def _run_until(root: Path, stage: str) -> tuple[subprocess.Popen[bytes], dict[str, Any], int]:
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.adapters._index_proc", str(root), stage, str(write_end)],
        cwd=ROOT, pass_fds=(write_end,),
    )
    os.close(write_end)
    acked: dict[str, Any] = {"upserted": []}
    child: int | None = None
    filled = False
    with os.fdopen(read_end, encoding="utf-8") as lines:
        # The indexing thread stops at early stages before the main thread reports the fill.
        for line in lines:
            word, _, rest = line.strip().partition(" ")
            if word in ("acked", "filled"):
                got = json.loads(rest)
                acked["upserted"] += got.pop("upserted")
                acked.update(got)
                filled = filled or word == "filled"
            elif word == "ready":
                child = int(rest)
            if filled and child is not None:
                return proc, acked, child
    raise AssertionError(f"the store process ended: {proc.wait()}")


@pytest.mark.parametrize("stage", ["copy", "catch_up", "build", "swap", "swapped"])
def test_a_store_killed_at_each_step_of_indexing_reopens_with_every_acknowledged_write(
    tmp_path: Path, stage: str
) -> None:
    proc, acked, child = _run_until(tmp_path, stage)
    proc.kill()  # SIGKILL: no close, no flush
    proc.wait(timeout=30)
    if child:  # the indexer dies with the daemon (PR_SET_PDEATHSIG)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)

    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    found = {r.id for r in store.get("keys", acked["upserted"], {"tenant": "t"})}
    missing = set(acked["upserted"]) - found - {acked.get("deleted")}
    assert not missing, f"{len(missing)} acknowledged points lost at {stage}"
    if "deleted" in acked:
        assert acked["deleted"] not in found
        assert store.get("keys", [acked["set"]], {"tenant": "t"})[0].payload["learned"] == "yes"
    # Only the authoritative generation is left on disk.
    live = tmp_path / "keys"
    leftovers = sorted(p.name for p in gen.generations_dir(tmp_path, "keys").glob("*"))
    assert leftovers == ([live.resolve().name] if live.is_symlink() else []), leftovers
    assert live.is_symlink() == (stage == "swapped")
    store.close()


def test_a_crash_between_retiring_the_first_directory_and_linking_its_successor_is_finished_at_open(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    points = records(rng, 200)
    store.upsert("keys", points)
    store.close()
    # What link() leaves if the process dies between its two renames.
    successor = gen.next_generation(tmp_path, "keys")
    gen.copy_shard(tmp_path / "keys", successor)
    gen.write_marker(successor, {"indexed_points": 200})
    os.rename(tmp_path / "keys", gen.generations_dir(tmp_path, "keys") / gen.RETIRED)

    reopened = EdgeStore(tmp_path)
    reopened.ensure(SPEC)
    assert (tmp_path / "keys").resolve() == successor.resolve()
    assert reopened.count("keys", {"tenant": "t"}) == 200
    assert [p.name for p in gen.generations_dir(tmp_path, "keys").iterdir()] == [successor.name]
    reopened.close()


@pytest.mark.usefixtures("small_segments")
def test_closing_the_store_kills_the_indexer_and_keeps_the_live_generation(tmp_path: Path) -> None:
    building = threading.Event()
    store = EdgeStore(tmp_path, index_after=INDEX_AFTER, on_stage=lambda _c, s: building.set() if s == "build" else None,
                      index_nice=0)
    store.ensure(SPEC)
    points = records(np.random.default_rng(4), 3000)
    for i in range(0, len(points), 100):
        store.upsert("keys", points[i : i + 100])
    assert building.wait(30)
    child = int(_job(store)["child_pid"])
    os.kill(child, signal.SIGSTOP)  # still building when the store closes
    store.close()
    assert not _alive(child)
    assert not (tmp_path / "keys").is_symlink()
    reopened = EdgeStore(tmp_path)
    reopened.ensure(SPEC)
    assert reopened.count("keys", {"tenant": "t"}) == 3000
    assert list(gen.generations_dir(tmp_path, "keys").iterdir()) == []
    reopened.close()


@pytest.mark.usefixtures("small_segments")
def test_writes_past_the_log_bound_drop_the_build_and_keep_every_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextd_mcp import limits

    monkeypatch.setattr(limits, "INDEX_OPLOG_MAX_POINTS", 30)
    building, release = threading.Event(), threading.Event()

    def at(collection: str, stage: str) -> None:
        if stage == "build":
            building.set()
            release.wait(60)

    rng = np.random.default_rng(5)
    store = EdgeStore(tmp_path, index_after=INDEX_AFTER, on_stage=at, index_nice=0)
    store.ensure(SPEC)
    first = records(rng, 3000)
    for i in range(0, len(first), 100):
        store.upsert("keys", first[i : i + 100])
    assert building.wait(30)
    copied = int(_job(store)["points"])
    store.upsert("keys", records(rng, 3000 - copied + 40, project="during"))  # past the bound
    release.set()
    state = _wait_done(store)

    assert state["stage"] == "failed" and "overflowed" in state["error"], state
    assert not (tmp_path / "keys").is_symlink()
    assert list(gen.generations_dir(tmp_path, "keys").iterdir()) == []
    assert store.count("keys", {"tenant": "t"}) == 3000 + 3000 - copied + 40
    store.close()


@pytest.mark.usefixtures("small_segments")
def test_a_store_indexed_in_plain_terms_is_indexed_again_after_its_one_time_rewrite(tmp_path: Path) -> None:
    """The move to per-tenant term indexes rewrites every sparse vector, and the engine copies
    each rewritten point out of its indexed segment: the store must index itself again (a job
    starts), not go on scanning every point while its record says they are indexed."""
    rng = np.random.default_rng(3)
    store = EdgeStore(tmp_path, index_after=INDEX_AFTER, index_nice=0)
    store.ensure(SPEC)  # the raw store: plain term indexes, as the code before the move wrote
    first = records(rng, 3000)
    for i in range(0, len(first), 100):
        store.upsert("keys", first[i : i + 100])
    assert _wait_done(store)["stage"] == "done"
    indexed = store._shards["keys"].info().indexed_vectors_count
    assert indexed >= 3000
    store.close()

    reopened = EdgeStore(tmp_path, index_after=INDEX_AFTER, index_nice=0)
    try:
        Stores(reopened).ensure(SPEC)  # as every service's first call does: the one-time rewrite
        assert reopened.describe()["indexing"]["keys"]["unindexed_points"] >= 3000 - INDEX_AFTER
        assert "keys" in reopened._jobs, "no indexing job after the rewrite: the store would be scanned whole"
        assert _wait_done(reopened)["stage"] == "done"
        assert reopened._shards["keys"].info().indexed_vectors_count >= indexed
        assert reopened.describe()["indexing"]["keys"]["unindexed_points"] == 0
        assert gen.read_marker((tmp_path / "keys").resolve())["indexed_points"] == 3000
        term = tenant_terms.for_tenant({7: 1.0}, "t", reopened.term_key("keys"))
        hits = reopened.sparse_search("keys", term, {"tenant": "t"}, 100)
        assert {h.id for h in hits} == {r.id for n, r in enumerate(first) if n % 50 == 7}  # the rewritten terms, indexed
    finally:
        reopened.close()


@pytest.mark.usefixtures("small_segments")
def test_pinned_indexes_stay_on_the_heap_in_the_generation_the_child_builds(tmp_path: Path) -> None:
    import dataclasses

    import qdrant_edge as qe

    pinned = dataclasses.replace(SPEC, pinned_fields=("tenant", "project"))
    store = EdgeStore(tmp_path, index_after=INDEX_AFTER, index_nice=0)
    store.ensure(pinned)
    rng = np.random.default_rng(9)
    # One tenant, two projects from the first writes (a placement follows the owners at an open).
    rows = records(rng, 100, project="q") + records(rng, 2900)
    for i in range(0, len(rows), 100):
        store.upsert("keys", rows[i : i + 100])
    state = _wait_done(store)
    placements = _placements(store)
    hits = store.search("keys", rows[105].vector or [], {"tenant": "t", "project": "p"}, 1)
    store.close()

    assert state["stage"] == "done", state
    # The tenant, which every point shares, is in no filter and not pinned (adapters/uniform_fields.py).
    assert placements["tenant"] == qe.Memory.Cold and placements["project"] == qe.Memory.Pinned, placements
    assert [h.id for h in hits] == [rows[105].id]


def test_a_compacted_store_records_every_point_as_indexed(tmp_path: Path) -> None:
    """``compact`` (the bench's, and any caller's under a held store) indexes every point: the
    generation's record must say so, or the next daemon opening it indexes the whole collection
    again at its first writes."""
    rng = np.random.default_rng(5)
    store = EdgeStore(tmp_path)  # no indexing job of its own: a command's store
    store.ensure(SPEC)
    for batch in (records(rng, 3000)[i : i + 500] for i in range(0, 3000, 500)):
        store.upsert("keys", batch)
    store.compact()
    assert store.describe()["indexing"]["keys"]["unindexed_points"] == 0
    store.close()
    assert gen.read_marker((tmp_path / "keys").resolve())["indexed_points"] == 3000
    reopened = EdgeStore(tmp_path, index_after=INDEX_AFTER, index_nice=0)
    try:
        reopened.ensure(SPEC)
        reopened.upsert("keys", records(rng, 64))
        assert reopened.describe()["indexing"]["keys"]["unindexed_points"] <= 64
        assert "keys" not in reopened._jobs, "an indexing job of a collection compacted a moment ago"
    finally:
        reopened.close()


def test_a_store_that_gains_a_second_owner_has_its_index_pinned_by_the_next_build_without_a_reopen(tmp_path: Path) -> None:
    import dataclasses

    import qdrant_edge as qe

    pinned = dataclasses.replace(SPEC, pinned_fields=("tenant", "project"))
    store = EdgeStore(tmp_path, index_after=INDEX_AFTER, index_nice=0)
    store.ensure(pinned)
    rng = np.random.default_rng(19)
    rows = records(rng, INDEX_AFTER - 100) + records(rng, 100, project="q")

    for i in range(0, INDEX_AFTER - 100, 100):
        store.upsert("keys", rows[i : i + 100])
    # One project: no search filters on it (adapters/uniform_fields.py), so its index is mapped.
    assert _placements(store)["project"] == qe.Memory.Cold
    store.upsert("keys", rows[-100:])  # a second project, and the job starts
    state = _wait_done(store)
    after = _placements(store)
    hits = store.search("keys", rows[-1].vector or [], {"tenant": "t", "project": "q"}, 200)
    store.close()

    assert state["stage"] == "done", state
    # Before, it stayed mapped until the store was opened again.
    assert after["project"] == qe.Memory.Pinned and after["tenant"] == qe.Memory.Cold, after
    assert hits[0].id == rows[-1].id and {h.id for h in hits} == {r.id for r in rows[-100:]}


@pytest.mark.usefixtures("small_segments")
def test_renamed_points_are_indexed_again_and_the_store_settles_meanwhile(tmp_path: Path) -> None:
    """Moving keys to new ids (memory_keys' slot ids) rewrites points without changing their
    count: counted as new writes they start the indexing job, and ``settling`` holds a bulk
    rewrite back while the job runs. Before, no job ever started (the count was unchanged) and
    100k memories' moved keys piled up unindexed: 2.7 GiB of daemon heap."""
    rng = np.random.default_rng(3)
    store = EdgeStore(tmp_path, index_after=INDEX_AFTER, index_nice=0)
    store.ensure(SPEC)
    first = records(rng, 3000)
    for i in range(0, len(first), 100):
        store.upsert("keys", first[i : i + 100])
    assert _wait_done(store)["stage"] == "done"
    assert not store.settling("keys")
    indexed = store._shards["keys"].info().indexed_vectors_count
    moves = {r.id: str(uuid.uuid4()) for r in first}
    store.rename("keys", moves, {"tenant": "t"})
    assert store.settling("keys")  # a job was started for the moved points
    assert _job(store)["stage"] not in ("done", "failed")
    assert _wait_done(store)["stage"] == "done"
    assert not store.settling("keys")
    assert store._shards["keys"].info().indexed_vectors_count >= indexed
    assert store.describe()["indexing"]["keys"]["unindexed_points"] == 0
    assert store.get("keys", list(moves), {"tenant": "t"}) == []
    assert store.count("keys", {"tenant": "t"}) == 3000
    store.close()
