"""The learning protocol (bench/bench_memory_learning.py) through a real MCP client: a small slice
of the dev split in the fast suite, the whole dev split in the slow one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bench.bench_memory_learning import Run, load, naive, protocol
from contextd_mcp.container import Container
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.models.scope import Scope
from tests.helpers import connected, data
from tests.services.test_memory_preferences import COMPETITORS, LESSON, PHRASING_A, PHRASING_B

pytestmark = pytest.mark.anyio

A = Scope(tenant="acme", team="core", project="api")
B = Scope(tenant="globex", team="core", project="api")


def dev_slice(lessons: int) -> dict[str, Any]:
    split = load("dev")
    kept = split["lessons"][:lessons]
    keys = {lesson["key"] for lesson in kept}
    return {"lessons": kept, "negatives": [n for n in split["negatives"] if n["negative_of"] in keys]}


async def test_rating_teaches_the_rated_phrasing_and_never_another_tenant(container: Container) -> None:
    sample = dev_slice(12)
    # One connection at a time: the in-process client acts as the caller of the innermost block.
    caller_a = Caller(scope=A, transport="memory", connection_id="agent-a")
    caller_b = Caller(scope=B, transport="memory", connection_id="agent-b")
    async with connected(container, caller_a) as client:
        run_a = Run(client, sample)
        await run_a.store_all()
        cold_a = await run_a.recall("phrasing_a")
    async with connected(container, caller_b) as client:
        # Tenant B holds the very same memories (same texts) and is never rated.
        run_b = Run(client, sample)
        await run_b.store_all()
        cold_b = await run_b.recall("phrasing_a")
    async with connected(container, caller_a) as client:
        run_a.client = client
        counts = await run_a.learn()
        after_a = await run_a.recall("phrasing_a")
    async with connected(container, caller_b) as client:
        run_b.client = client
        after_b = await run_b.recall("phrasing_a")
    assert counts["rated_helpful"] >= counts["lesson_found_by_a"] > 0
    # The query a lesson was rated helpful for now finds it first, where it was found at all.
    assert after_a["r1"] >= counts["lesson_found_by_a"] / len(sample["lessons"]) - 1e-9
    assert after_a["r1"] > cold_a["r1"] and after_a["mrr"] > cold_a["mrr"]
    # Tenant B's identical store learned nothing from A's ratings.
    assert after_b == cold_b


async def test_feedback_names_its_search_or_is_refused(client: Any) -> None:
    stored = data(await client.call_tool("memory_store", {"title": "Pin the image tag", "content": "Pin postgres:16.4."}))
    found = data(await client.call_tool("memory_search", {"query": "database image upgrade broke CI"}))
    assert len(found["search_id"]) == 32 and found["memories"][0]["id"] == stored["id"]
    ok = await client.call_tool(
        "memory_feedback", {"memory_id": stored["id"], "helpful": True, "search_id": found["search_id"]}
    )
    assert not ok.is_error
    bad = await client.call_tool("memory_feedback", {"memory_id": stored["id"], "helpful": True, "search_id": "f" * 32})
    assert bad.is_error and "search_id" in bad.content[0].text
    # The server keeps serving.
    assert not (await client.call_tool("memory_search", {"query": "image tag"})).is_error


@pytest.mark.slow
@pytest.mark.timeout(1200)  # ~4 min quiet; the default 300 s failed at load 15
async def test_dev_split_goals(container: Container) -> None:
    """Figures reached on the dev split (BENCHMARKS.md, Session 4), a little under, as floors."""
    split = load("dev")
    async with connected(container, Caller(scope=A, transport="memory", connection_id="agent")) as client:
        figures = await protocol(client, split)
    baseline = naive(split)
    print("dev:", figures, "naive:", baseline)
    # Measured with the 7-bit weights, whose vectors are the same on every x86 CPU, and the second
    # stage (services/memory_rerank.py); R@1 / R@3 / MRR, BENCHMARKS.md "Session 11": naive 0.373 /
    # 0.633 / 0.514, cold 0.447 / 0.740 / 0.600, after 0.540 / 0.800 / 0.680. Without the second
    # stage cold is 0.413 / 0.680 / 0.566: the cold R@3 floor (the goal, +0.10) asks for it.
    # With the second stage the learned floor at 0.3 (before session 9) gives after 0.533 / 0.780 /
    # 0.661, which the R@3 and MRR floors refuse; the lift a loosely similar rated phrasing gives is
    # held on unrounded scores by tests/services/test_memory_keys.py, and what session 10 added
    # over session 9 by the crowded-out test below.
    assert figures["cold_b"]["r3"] >= baseline["r3"] + 0.10
    assert figures["cold_b"]["r1"] >= baseline["r1"] + 0.05
    assert figures["after_b"]["r3"] >= figures["cold_b"]["r3"] + 0.05
    assert figures["after_b"]["r1"] >= figures["cold_b"]["r1"] + 0.08
    assert figures["after_b"]["mrr"] >= figures["cold_b"]["mrr"] + 0.07


async def test_a_rating_after_a_search_ranks_the_memory_above_those_passed_over_for_another_phrasing(
    container: Container,
) -> None:
    """Preferences (services/memory_preferences.py) through the real MCP client, rated with the
    search_id a search returns; another project and another tenant see nothing of them."""
    # Learned keys off: the rated phrasing would lift the lesson too; here only the preference acts.
    container.memory.flags = replace(container.memory.flags, learned=False)
    scopes = {"rated": A, "other tenant": B, "other project": Scope(tenant="acme", team="core", project="web")}
    ids: dict[str, list[str]] = {}
    cold: dict[str, list[str]] = {}
    for name, scope in scopes.items():
        async with connected(container, Caller(scope=scope, transport="memory", connection_id=name)) as client:
            ids[name] = [
                data(await client.call_tool("memory_store", item.model_dump(mode="json")))["id"]
                for item in [LESSON, *COMPETITORS]
            ]
            cold[name] = await _ranking(client, PHRASING_B)
    lesson, competitors = ids["rated"][0], ids["rated"][1:]
    async with connected(container, Caller(scope=A, transport="memory", connection_id="rated")) as client:
        found = data(await client.call_tool("memory_search", {"query": PHRASING_A, "min_confidence": 0.0}))
        hits = [m["id"] for m in found["memories"]]
        for memory_id, helpful in ((competitors[0], False), (competitors[1], False), (lesson, True)):
            rated = {"memory_id": memory_id, "helpful": helpful, "search_id": found["search_id"]}
            assert not (await client.call_tool("memory_feedback", rated)).is_error
        after = await _ranking(client, PHRASING_B)
    passed = {*hits[: hits.index(lesson)], *competitors[:2]}
    # Cold, two memories the agent then passed over ranked above the lesson; after, it leads them.
    assert cold["rated"].index(lesson) == 2 and set(cold["rated"][:2]) <= passed
    assert after[0] == lesson and set(after[1:3]) == set(cold["rated"][:2])
    for name in ("other tenant", "other project"):
        scope = scopes[name]
        async with connected(container, Caller(scope=scope, transport="memory", connection_id=name)) as client:
            assert await _ranking(client, PHRASING_B) == cold[name]
        assert cold[name].index(ids[name][0]) == 2


async def _ranking(client: Any, query: str) -> list[str]:
    found = data(await client.call_tool("memory_search", {"query": query, "limit": 10, "min_confidence": 0.0}))
    return [m["id"] for m in found["memories"]]


# Dev lessons whose phrasing B sits just behind one hard negative cold, with phrasings ~0.21-0.23
# apart. Cold, the two are within 0.02, so which of them is second moved with every change of the
# model's vectors: d117 with 8-bit weights on AVX2 machines, d002 and d046 on AVX-512 VNNI ones
# (BENCHMARKS.md, "Session 11"); the vectors are now the same on every CPU. The learned key's lift itself is
# asserted on unrounded scores, CPU-proof, in tests/services/test_memory_keys.py.
NEAR_TIES = ("d117", "d002", "d046")


async def test_a_loosely_similar_rated_phrasing_lifts_the_lesson_through_the_client(container: Container) -> None:
    """A dev lesson among its hard negatives, through the MCP client: its two phrasings are only
    ~0.22 apart (below the learned floor of sessions 4-8, 0.3); cold, a peer leads for phrasing B;
    rated helpful after phrasing A, the lesson leads, above that peer, which the protocol's
    control rated as often (after a search for its own title). The near ties are the first stage's:
    the second stage (services/memory_rerank.py) reorders them, so it is off here; learning with both
    is held by the dev protocol's floors (test_dev_split_goals)."""
    container.memory.flags = replace(container.memory.flags, rerank=False)
    split = load("dev")
    for n, key in enumerate(NEAR_TIES):
        lesson = next(item for item in split["lessons"] if item["key"] == key)
        peers = [item for item in split["negatives"] if item["negative_of"] == key]
        # A tenant each: lexical statistics are a tenant's, so each lesson meets only its peers.
        scope = Scope(tenant=f"near-tie-{n}", team="core", project="api")
        async with connected(container, Caller(scope=scope, transport="memory", connection_id=key)) as client:
            run = Run(client, {"lessons": [lesson], "negatives": peers})
            await run.store_all()
            want = run.ids[key]
            cold = await _ranking(client, lesson["phrasing_b"])
            if cold.index(want) != 1:
                continue
            leader = next(item for item in peers if run.ids[item["key"]] == cold[0])
            for query, memory_id in ((lesson["phrasing_a"], want), (leader["title"], cold[0])):
                found = data(await client.call_tool("memory_search", {"query": query, "limit": 10}))
                assert memory_id in [m["id"] for m in found["memories"]]
                rated = {"memory_id": memory_id, "helpful": True, "search_id": found["search_id"]}
                assert not (await client.call_tool("memory_feedback", rated)).is_error
            after = await _ranking(client, lesson["phrasing_b"])
        assert after[:2] == [want, cold[0]], key
        return
    pytest.fail(f"none of {NEAR_TIES} is second cold on this machine: pick near ties anew (BENCHMARKS.md, Session 11)")


# A need phrased two ways, and a lesson that answers it in other words again.
NEED_B = "pytest hangs forever at the end of the run in CI"
NEED_A = "test process never exits after the last test passes"
LESSON_X = {
    "title": "Join the background threads the fixtures start",
    "description": "A non-daemon thread left running by a fixture keeps the interpreter alive after the session ends.",
    "content": "Stop every thread a fixture starts in its teardown, or start it as a daemon thread.",
}


async def test_a_rated_query_lifts_its_memory_even_when_other_keys_crowd_it_out(container: Container) -> None:
    """Through the MCP client: 112 situations of other memories are nearer to phrasing B than
    anything of the lesson (cosine ~0.9 against ~0.39 for the phrasing A it was rated for), so a
    search's 100 nearest key points are all theirs. The query's nearest learned keys are read by
    a search of their own (memory_keys.LEARNED_NEAREST): rated after A, the lesson is found for B.
    Session 9's search read learned keys only among the 100 and never found it."""
    crowd = [
        {
            "title": f"Rotate the staging certificate, region {i}",
            "content": f"Region {i} renews its certificate by hand every ninety days.",
            "applies_when": [f"pytest hangs at the end of the CI run, runner {i}-{j}" for j in range(8)],
        }
        for i in range(14)
    ]
    ids: dict[str, str] = {}
    cold: dict[str, list[str]] = {}
    for name, scope in (("rated", A), ("other tenant", B)):
        async with connected(container, Caller(scope=scope, transport="memory", connection_id=name)) as client:
            for item in crowd:
                assert not (await client.call_tool("memory_store", item)).is_error
            ids[name] = data(await client.call_tool("memory_store", LESSON_X))["id"]
            cold[name] = await _ranking(client, NEED_B)
    async with connected(container, Caller(scope=A, transport="memory", connection_id="rated")) as client:
        found = data(await client.call_tool("memory_search", {"query": NEED_A, "min_confidence": 0.0}))
        assert ids["rated"] in [m["id"] for m in found["memories"]]
        rated = {"memory_id": ids["rated"], "helpful": True, "search_id": found["search_id"]}
        assert not (await client.call_tool("memory_feedback", rated)).is_error
        after = await _ranking(client, NEED_B)
    async with connected(container, Caller(scope=B, transport="memory", connection_id="other tenant")) as client:
        other_after = await _ranking(client, NEED_B)
    assert ids["rated"] not in cold["rated"] and ids["rated"] in after
    # The other tenant's identical store was never rated: its lesson stays out of reach.
    assert ids["other tenant"] not in cold["other tenant"] and other_after == cold["other tenant"]


async def test_the_query_words_only_the_lesson_holds_put_it_first_through_the_client(container: Container) -> None:
    """Cold, the second stage (services/memory_rerank.py) through the real MCP client: dev lesson
    d094 ("Attach a request id to every log line with contextvars") among its four hard negatives.
    For phrasing B ("stamp every diagnostic line with the id of the web call") the first stage puts
    three of them ahead (logging look-alikes); the words of B only the lesson holds ("line",
    "call"; "every" and "id" are in others too) put it first, with a lead of ~0.03 in score."""
    split = load("dev")
    lesson = next(x for x in split["lessons"] if x["key"] == "d094")
    sample = {"lessons": [lesson], "negatives": [n for n in split["negatives"] if n["negative_of"] == "d094"]}
    async with connected(container, Caller(scope=A, transport="memory", connection_id="agent")) as client:
        run = Run(client, sample)
        await run.store_all()
        _, with_stage = await run.search(lesson["phrasing_b"])
        flags = container.memory.flags
        container.memory.flags = replace(flags, rerank=False)
        try:
            _, first_stage = await run.search(lesson["phrasing_b"])
        finally:
            container.memory.flags = flags
    want = run.ids["d094"]
    assert with_stage[0] == want
    assert first_stage.index(want) >= 2
