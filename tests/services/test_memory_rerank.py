"""The second stage of memory_search (services/memory_rerank.py): the query's distinctive words."""

from __future__ import annotations

from dataclasses import replace

from contextd_mcp.container import Container
from contextd_mcp.models.requests import SearchMemories, StoreMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.services import memory_rerank as rerank

A = Scope(tenant="acme", team="core", project="api")


def test_a_word_only_one_candidate_holds_decides_and_a_shared_word_does_not() -> None:
    texts = ["pytest fixture leaked rows", "pytest fixture ran twice", "pytest fixture kept schema"]
    got = rerank.shares("pytest fixture schema", texts)
    # "pytest" and "fixture" are in all three: they weigh nothing; "schema" is the whole share.
    assert got == [0.0, 0.0, 1.0]
    assert rerank.shares("pytest fixture", texts) == [0.0, 0.0, 0.0]


def test_endings_meet_and_stop_words_do_not_count() -> None:
    assert rerank.words("The tests were tested; it builds the libraries") == {"test", "build", "library"}
    assert rerank.words("it copied what the others copies") == {"copy", "other"}
    got = rerank.shares("a failing test", ["two tests failed", "one fail too", "nothing here now"])
    # "failing", "failed" and "fail" meet, as "test" and "tests" do: the first text holds both words.
    assert got[0] == 1.0 and 0.0 < got[1] < 0.5 and got[2] == 0.0


def test_a_longer_text_holding_the_same_words_gets_less() -> None:
    """Every text here holds "schema" once; the longer ones hold more other words too, which a
    query of other words would also find: the share is levelled by length, the short text keeps it."""
    short, long = "schema kept", "schema kept " + " ".join(f"word{i}" for i in range(30))
    got = rerank.shares("schema", [short, long, "other", "other too"])
    assert got[0] == 1.0 and 0.0 < got[1] < 0.3
    assert rerank.shares("schema", [short, short + " x", "other", "other too"])[1] > got[1]


def test_the_rescored_stay_above_those_past_the_top() -> None:
    fused = [0.9 - 0.01 * i for i in range(rerank.TOP + 5)]
    texts = ["schema"] + ["other"] * (len(fused) - 1)
    scores = rerank.rescored("schema", fused, texts)
    assert scores[0] == (1 - rerank.WEIGHT) * fused[0] + rerank.WEIGHT
    # Past TOP nothing is read: those keep their order, under every rescored candidate.
    tail = scores[rerank.TOP :]
    assert tail == sorted(tail, reverse=True) and max(tail) < min(scores[: rerank.TOP])
    # Nothing in the query tells the candidates apart: the order is the first stage's.
    same = rerank.rescored("unrelated words", fused, texts)
    assert same == sorted(same, reverse=True)


LESSON = StoreMemory(
    title="Attach a request id to every log line with contextvars",
    description="A middleware sets a ContextVar and a logging filter copies it onto every record.",
    content="Passing `request_id` to each log call was forgotten in half the code. A middleware stores it in a "
    "`contextvars.ContextVar` and a `logging.Filter` copies it onto every record.",
)


def test_the_service_reads_the_memorys_own_text_for_the_second_stage(container: Container) -> None:
    """The words come from the stored memory (its content too), not from a key: a query that shares
    a word with one memory's content only moves that memory, and only with the stage on."""
    lesson = container.memory.store(A, LESSON).id
    other = container.memory.store(A, LESSON.model_copy(update={
        "title": "Attach a trace id to every log line with contextvars",
        "description": "A middleware sets a ContextVar that the formatter reads.",
        "content": "Passing `trace_id` to each log call was forgotten in half the code. A middleware stores it.",
    })).id
    query = SearchMemories(query="log records carry an id copied by a filter", min_confidence=0.0)
    on = {h.id: h.score for h in container.memory.search(A, query)}
    flags = container.memory.flags
    container.memory.flags = replace(flags, rerank=False)
    try:
        off = {h.id: h.score for h in container.memory.search(A, query)}
    finally:
        container.memory.flags = flags
    # "filter" and "record" are in the lesson's text alone: its lead grows with the stage.
    assert on[lesson] - on[other] > off[lesson] - off[other] + 0.05
