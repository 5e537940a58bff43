"""Preferences learned from a rating in context (services/memory_preferences.py): a memory rated
helpful over those the agent passed over ranks above them for another phrasing of the need, in
its own scope only (real store, real model)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from contextd_mcp import limits
from contextd_mcp.container import Container
from contextd_mcp.models.requests import MemoryFeedback, SearchMemories, StoreMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.ports.scoped_store import Stores
from contextd_mcp.services import memory_preferences as prefer

A = Scope(tenant="acme", team="core", project="api")
OTHER_TENANT = Scope(tenant="other", team="core", project="api")
OTHER_PROJECT = Scope(tenant="acme", team="core", project="web")

LESSON = StoreMemory(
    title="Give each pytest-asyncio test its own event loop",
    content="Tests hung with 'attached to a different loop' because a session-scoped async fixture created "
    "an aiohttp session on one loop and tests ran on another. Set loop_scope='session' on both the fixture "
    "and the tests (asyncio_default_fixture_loop_scope).",
)
# Hard negatives: same library, same symptom, another cause.
COMPETITORS = [
    StoreMemory(
        title="pytest-asyncio tests hang when an async fixture never yields",
        content="An async generator fixture awaited a server that never started, so the test hung forever. "
        "Add a timeout to the startup await and fail fast.",
    ),
    StoreMemory(
        title="pytest-asyncio strict mode skips unmarked async tests",
        content="Async tests were silently skipped: in strict mode they need @pytest.mark.asyncio. "
        "Set asyncio_mode = auto in pytest.ini.",
    ),
    StoreMemory(
        title="Async tests hang on a blocking call inside the event loop",
        content="A test called requests.get inside a coroutine and blocked the loop; the test hung. "
        "Use an async HTTP client or run_in_executor.",
    ),
    StoreMemory(
        title="aiohttp ClientSession left open warns at the end of tests",
        content="Unclosed client session warnings after tests: the fixture never closed the aiohttp session. "
        "Close it in the fixture teardown with async with.",
    ),
]
PHRASING_A = "my async tests hang with a RuntimeError about a different event loop"
# Far from phrasing A for the model. The lesson ranks third, a near-tie behind two competitors;
# for FAR_AHEAD one competitor leads it by more than PREFER_MARGIN.
PHRASING_B = "after upgrading pytest-asyncio the async tests never complete"
FAR_AHEAD = "pytest-asyncio tests hang"


@pytest.fixture
def container(container: Container) -> Container:
    # Learned keys off: the rated query A would lift the lesson for B too, hiding what the
    # preference alone does (the protocol measures them together: BENCHMARKS.md "Session 6").
    container.memory.flags = replace(container.memory.flags, learned=False)
    return container


def store(container: Container, scope: Scope) -> tuple[str, list[str]]:
    lesson = container.memory.store(scope, LESSON).id
    return lesson, [m.id for m in container.memory.store_many(scope, COMPETITORS)]


def ranking(container: Container, scope: Scope, query: str) -> list[str]:
    return [h.id for h in container.memory.search(scope, SearchMemories(query=query, limit=10, min_confidence=0.0))]


def rate_in_context(container: Container, scope: Scope, lesson: str, competitors: list[str]) -> list[str]:
    """Phrasing A searched; two competitors read and rated unhelpful, the lesson rated helpful.
    Returns the ranking of that search."""
    _, hits = container.memory.search_logged(scope, SearchMemories(query=PHRASING_A, limit=10), "conn-1")
    for other in competitors[:2]:
        container.memory.feedback(scope, MemoryFeedback(memory_id=other, helpful=False), "conn-1")
    container.memory.feedback(scope, MemoryFeedback(memory_id=lesson, helpful=True), "conn-1")
    return [h.id for h in hits]


def preferences_of(container: Container, scope: Scope, memory_id: str) -> dict[str, float]:
    record = Stores(container.store).of(scope).get("memories", [memory_id])[0]
    return dict(record.payload.get(prefer.FIELD) or {})


def test_a_rating_in_context_lifts_the_memory_over_the_ones_passed_over_for_another_phrasing(
    container: Container,
) -> None:
    # The first stage's order is the premise (the lesson third, two it is preferred over just ahead):
    # the second stage (services/memory_rerank.py, its own tests) reorders those near ties.
    container.memory.flags = replace(container.memory.flags, rerank=False)
    lesson, competitors = store(container, A)
    searched = rate_in_context(container, A, lesson, competitors)
    # What it was preferred over: what ranked above it in that search, and what was rated unhelpful.
    passed = {*searched[: searched.index(lesson)], *competitors[:2]}
    assert len(passed) >= prefer.PREFER_CONTEXT
    assert set(preferences_of(container, A, lesson)) == passed
    after, far = ranking(container, A, PHRASING_B), ranking(container, A, FAR_AHEAD)
    # The same store with preferences off: the ratings' other effects (confidence, negative keys)
    # alone leave the lesson third, behind two memories it was preferred over.
    flags = container.memory.flags
    container.memory.flags = replace(flags, preferences=False)
    try:
        without, far_without = ranking(container, A, PHRASING_B), ranking(container, A, FAR_AHEAD)
    finally:
        container.memory.flags = flags
    assert without.index(lesson) == 2 and set(without[:2]) <= passed
    assert after[0] == lesson and after[1:3] == without[:2]
    # A competitor ahead by more than PREFER_MARGIN stays ahead.
    assert far == far_without and far.index(lesson) == 1


def test_preferences_stay_in_the_scope_of_the_memory(container: Container) -> None:
    lesson, competitors = store(container, A)
    in_other_tenant, _ = store(container, OTHER_TENANT)
    in_other_project, _ = store(container, OTHER_PROJECT)
    before = {s: ranking(container, s, PHRASING_B) for s in (OTHER_TENANT, OTHER_PROJECT)}
    rate_in_context(container, A, lesson, competitors)
    assert ranking(container, A, PHRASING_B)[0] == lesson
    for scope, memory_id in ((OTHER_TENANT, in_other_tenant), (OTHER_PROJECT, in_other_project)):
        assert ranking(container, scope, PHRASING_B) == before[scope]
        assert before[scope].index(memory_id) == 2
        assert preferences_of(container, scope, memory_id) == {}


def test_a_helpful_rating_before_the_unhelpful_ones_of_the_same_search_counts_them_too(
    container: Container,
) -> None:
    lesson, competitors = store(container, A)
    _, hits = container.memory.search_logged(A, SearchMemories(query=PHRASING_A, limit=10), "conn-1")
    container.memory.feedback(A, MemoryFeedback(memory_id=lesson, helpful=True), "conn-1")
    above = {h.id for h in hits[: [h.id for h in hits].index(lesson)]}
    assert set(preferences_of(container, A, lesson)) == above
    container.memory.feedback(A, MemoryFeedback(memory_id=competitors[3], helpful=False), "conn-1")
    assert set(preferences_of(container, A, lesson)) == above | {competitors[3]}
    # A rating without a search to read it beside teaches no preference.
    container.memory.feedback(A, MemoryFeedback(memory_id=competitors[1], helpful=True), "no-such-connection")
    assert preferences_of(container, A, competitors[1]) == {}


def test_a_later_contrary_preference_wins_and_preferences_are_capped() -> None:
    prefs = {"l": {"n": 1.0}, "n": {"l": 2.0}}
    # n was preferred over l after l over n: n keeps its lead, l does not overtake it.
    assert prefer.adjusted({"n": 0.50, "l": 0.49, "x": 0.1, "y": 0.1}, {**prefs, "n": {"l": 2.0, "x": 2.0, "y": 2.0}}) == {
        "n": 0.50, "l": 0.49, "x": 0.1, "y": 0.1
    }
    prefs = {"l": {"n": 3.0, "x": 3.0, "y": 3.0}, "n": {"l": 2.0}}
    assert prefer.adjusted({"n": 0.50, "l": 0.49, "x": 0.1, "y": 0.1}, prefs)["l"] > 0.50
    # Fewer than PREFER_CONTEXT of its competitors among the candidates: another need, no move.
    assert prefer.adjusted({"n": 0.50, "l": 0.49}, prefs) == {"n": 0.50, "l": 0.49}
    many = prefer.recorded({}, [f"m{i}" for i in range(limits.MEMORY_PREFERENCES_MAX)], 1.0)
    newer = prefer.recorded(many, ["new"], 2.0)
    assert len(newer) == limits.MEMORY_PREFERENCES_MAX and "new" in newer
    assert prefer.passed_over(["a", "b", "c"], "c", ["d", "c"]) == ["a", "b", "d"]
    assert prefer.passed_over(["a", "b"], "z") == []
