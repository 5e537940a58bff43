"""A statistic must not cross tenants: lexical (sparse) weights are per tenant.

The engine weighs a query's terms by their inverse document frequency over what it indexes.
Were the document frequency counted over every tenant's records, tenant B could tell whether
A's memories or fixes hold a word by watching B's own scores. Through the real MCP client, in
two stores alike but for one word: B stores the same records in both and searches; A stores
as many records in both, holding B's query word "zanzibar" in one and another word in the
other. B's results must be the same in both: nothing tells B which word A wrote.

What still crosses (``ports/tenant_terms.py``): the engine's IDF also counts the collection's
records of every tenant (N in ``ln(1 + (N - n + 0.5) / (n + 0.5))``), so the *number* of
records others hold moves B's lexical scores slightly; the last test pins that as known.
"""

from __future__ import annotations

from typing import Any

import pytest

from collections.abc import Iterator
from pathlib import Path

from contextd_mcp.container import Container, build
from contextd_mcp.paths import DataPaths
from tests.memo_embedder import MemoEmbedder
from contextd_mcp.models.scope import Scope
from tests.helpers import connected_as, data

pytestmark = pytest.mark.anyio

A = Scope(tenant="initech", team="core", project="api")
B = Scope(tenant="umbrella", team="core", project="api")

# B's records hold two rare words of the query, "zanzibar" once and "quokka" twice, so in B's
# own statistics "zanzibar" weighs more and its record comes first. A then floods the store
# with "zanzibar": counted over every tenant, "zanzibar" would become the commoner word and
# B's "zanzibar" record would sink under the "quokka" ones.
B_MEMORIES = [
    ("zanzibar notes", "the zanzibar job runs nightly and writes its report to the share"),
    ("quokka notes", "the quokka job runs nightly and writes its report to the share"),
    ("quokka backups", "the quokka backup runs weekly and keeps four copies"),
]
B_FIXES = [
    {"title": "ZanzibarError: job failed", "problem": "ZanzibarError: job failed at step two",
     "solution": "rerun the job"},
    {"title": "QuokkaError: job failed", "problem": "QuokkaError: job failed at step two",
     "solution": "rerun the job"},
    {"title": "QuokkaError: backup failed", "problem": "QuokkaError: backup failed, disk full",
     "solution": "free the disk"},
]
MEMORY_QUERY = "zanzibar quokka job"
FIX_QUERY = "ZanzibarError QuokkaError: job failed at step two"


async def _call(client: Any, tool: str, args: dict[str, Any]) -> Any:
    return data(await client.call_tool(tool, args))


async def _b_results(container: Container) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    async with connected_as(container, B) as client:
        memories = await _call(client, "memory_search", {"query": MEMORY_QUERY, "limit": 10})
        fixes = await _call(client, "remediation_search", {"error": FIX_QUERY, "limit": 10})
    return _ranked(memories), _ranked(fixes)


def _ranked(result: Any) -> list[tuple[str, float]]:
    if isinstance(result, dict):  # {"remediations": [...]} / {"result": [...]}
        result = next(v for v in result.values() if isinstance(v, list))
    return [(item["id"], item["score"]) for item in result]


Results = tuple[list[tuple[str, float]], list[tuple[str, float]]]


@pytest.fixture
def second(tmp_path: Path, embeddings: MemoEmbedder) -> Iterator[Container]:
    """Another store on the same model: the other world of the probe."""
    built = build(DataPaths(tmp_path / "second"), embedder=embeddings)
    yield built
    built.close()


async def _b_stores(container: Container) -> None:
    async with connected_as(container, B) as client:
        for title, content in B_MEMORIES:
            await _call(client, "memory_store", {"title": title, "content": content, "outcome": "success"})
        for fix in B_FIXES:
            await _call(client, "remediation_record", fix)


async def _a_floods(container: Container, word: str, records: int = 40) -> None:
    async with connected_as(container, A) as client:
        for n in range(records):
            await _call(client, "memory_store", {
                "title": f"{word} {n}", "content": f"{word} {word}, variant {n}", "outcome": "success"})
            await _call(client, "remediation_record", {
                "title": f"{word.title()}Error {n}", "problem": f"{word.title()}Error: variant {n}",
                "solution": f"wait {n} s"})


async def test_b_cannot_tell_which_words_another_tenant_wrote(container: Container, second: Container) -> None:
    await _b_stores(container)
    await _b_stores(second)
    assert (await _b_results(container))[0] and (await _b_results(container))[1], "B finds its own records"
    await _a_floods(container, "zanzibar")  # B's rarest query word
    await _a_floods(second, "wombat")  # a word B never asks for
    probed, control = await _b_results(container), await _b_results(second)
    print(f"B when A wrote zanzibar: {probed}\nB when A wrote wombat: {control}")
    assert [i for i, _ in probed[0]] == [i for i, _ in control[0]], "memory order tells A's word"
    assert [i for i, _ in probed[1]] == [i for i, _ in control[1]], "remediation order tells A's word"
    # Scores are shown rounded (memories 2 places, fixes 4): equal to the last digit shown.
    assert [s for _, s in probed[0]] == [s for _, s in control[0]], "memory scores tell A's word"
    assert [s for _, s in probed[1]] == [s for _, s in control[1]], "remediation scores tell A's word"


async def test_ranking_of_b_survives_another_tenants_flood(container: Container) -> None:
    """The order of B's results does not move when A writes many records with B's words."""
    await _b_stores(container)
    before = await _b_results(container)
    await _a_floods(container, "zanzibar")
    after = await _b_results(container)
    assert [i for i, _ in after[0]] == [i for i, _ in before[0]], "memory order moved"
    assert [i for i, _ in after[1]] == [i for i, _ in before[1]], "remediation order moved"
    assert [s for _, s in after[1]] == [s for _, s in before[1]], "remediation scores moved"


@pytest.mark.xfail(strict=True, reason="the engine's IDF counts every tenant's records (N): how many records "
                   "others hold still moves lexical scores slightly (ports/tenant_terms.py)")
async def test_memory_scores_ignore_how_much_another_tenant_stores(container: Container) -> None:
    await _b_stores(container)
    before = await _b_results(container)
    await _a_floods(container, "wombat")
    after = await _b_results(container)
    assert [s for _, s in after[0]] == [s for _, s in before[0]]
