"""Lesson by lesson: what the learning protocol did to each lesson's phrasing-B rank, and why.

    .venv/bin/python -m bench.memory_tune --diagnose [--lessons N] [--set NAME=VALUE ...] [--json FILE]

The protocol of bench.bench_memory_learning, in-process (memory_tune's cached embedder), with
every key search traced: for each memory ranked, the best score of each key group (doc, other
keys, learned, negative), the lexical score, the fused score, the hit's confidence and final
score. Per lesson: cold rank of B, rank of the lesson for A (rated or not), rank of B after;
for each lesson that fell or stays out of the top 3 after, the memories above it and what lifts
each one (its learned key, its confidence, a preference, a static key, sparse), with sim(B, A)
and sim(B, the winner's best learned key). Dev only (never tune on held-out).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from bench.bench_memory_learning import SEARCH_LIMIT, Run, _data

TOP = 3


class Tracer:
    """Wraps ``memory_keys.find``: the last search's per-memory key scores, by group."""

    def __init__(self) -> None:
        from contextd_mcp.services import memory_keys

        self.keys = memory_keys
        self.original = memory_keys.find
        self.last: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> Tracer:
        self.keys.find = self._find  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        self.keys.find = self.original  # type: ignore[assignment]

    def _find(self, store: Any, vector: Any, query: str, reach: Any, match: Any, flags: Any) -> Any:
        k = self.keys
        sparse = k.query_sparse(query) if flags.sparse else {}
        fields = ("memory_id", "kind", "text")
        narrowed = {"kind": k.KeyKind.learned.value}
        dense, lexical, learned = store.dense_sparse_narrowed(
            k.KEYS, vector, sparse, k.CANDIDATES, narrowed, k.LEARNED_NEAREST, reach, dict(match), fields=fields
        ) if flags.learned else (*store.dense_and_sparse(k.KEYS, vector, sparse, k.CANDIDATES, reach, dict(match), fields=fields), [])
        per: dict[str, dict[str, Any]] = {}
        for hit in (*dense, *learned):
            group = k._GROUP[hit.payload["kind"]]
            mine = per.setdefault(hit.payload["memory_id"], {})
            if hit.score > mine.get(group, (-1.0,))[0]:
                mine[group] = (hit.score, hit.payload["kind"], hit.payload.get("text", ""))
        for hit in lexical:
            if hit.payload["kind"] == "negative":
                continue
            mine = per.setdefault(hit.payload["memory_id"], {})
            if hit.score > mine.get("lexical", (0.0,))[0]:
                mine["lexical"] = (hit.score, hit.payload["kind"], hit.payload.get("text", ""))
        ranked = k.rank(dense, lexical, flags, learned)
        for r in ranked:
            per.setdefault(r.memory_id, {})["fused"] = r.fused
        self.last = per
        return ranked


class TracedRun(Run):
    """The protocol's run, every search's hits and key scores kept by phase."""

    def __init__(self, client: Any, data: dict[str, Any], tracer: Tracer) -> None:
        super().__init__(client, data)
        self.tracer = tracer
        self.phase = ""
        self.trace: dict[str, dict[str, Any]] = {}

    async def search(self, query: str) -> tuple[str, list[str]]:
        found = _data(
            await self.client.call_tool("memory_search", {"query": query, "limit": SEARCH_LIMIT, "min_confidence": 0.0})
        )
        ids = [m["id"] for m in found["memories"]]
        self.trace[f"{self.phase}\x00{query}"] = {
            "hits": {m["id"]: {"score": m["score"], "confidence": m["confidence"]} for m in found["memories"]},
            "ids": ids,
            "keys": dict(self.tracer.last),
        }
        return found["search_id"], ids


async def diagnose(client: Any, data: dict[str, Any], embedder: Any) -> dict[str, Any]:
    with Tracer() as tracer:
        run = TracedRun(client, data, tracer)
        await run.store_all()
        run.phase = "cold"
        cold = await run.recall("phrasing_b")
        run.phase = "cold_a"  # as protocol() does: the searches it logs can attribute a rating
        cold_a = await run.recall("phrasing_a")
        run.phase = "learn"
        counts = await run.learn()
        run.phase = "after"
        after = await run.recall("phrasing_b")
    confidence = {}
    for key, ident in run.ids.items():
        got = _data(await client.call_tool("memory_get", {"memory_id": ident}))
        confidence[key] = got["confidence"]
    return {
        "cold_b": cold, "cold_a": cold_a, "after_b": after, "learning": counts, **_analyse(run, embedder),
        "confidence": confidence, "features": _features(run),
    }


def _features(run: TracedRun) -> dict[str, Any]:
    """Per lesson and phase (cold, after), every candidate's best score by key group: for fitting
    the ranking offline (what a joint change of the weights could buy, before coding it)."""
    name = {v: k for k, v in run.ids.items()}
    out: dict[str, Any] = {}
    for lesson in run.lessons:
        for phase in ("cold", "after"):
            keys = run.trace[f"{phase}\x00{lesson['phrasing_b']}"]["keys"]
            out[f"{phase}:{lesson['key']}"] = {
                name.get(m, m): {g: (v if isinstance(v, float) else v[0]) for g, v in groups.items()}
                for m, groups in keys.items()
            }
    return out


def _rank(ids: list[str], want: str) -> int | None:
    return ids.index(want) + 1 if want in ids else None


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0)


def _analyse(run: TracedRun, embedder: Any) -> dict[str, Any]:
    name = {v: k for k, v in run.ids.items()}
    lesson_ids = {run.ids[lesson["key"]] for lesson in run.lessons}
    rows, causes, summary = [], Counter(), Counter()
    for lesson in run.lessons:
        want = run.ids[lesson["key"]]
        cold = run.trace[f"cold\x00{lesson['phrasing_b']}"]
        learn = run.trace[f"learn\x00{lesson['phrasing_a']}"]
        after = run.trace[f"after\x00{lesson['phrasing_b']}"]
        c, a, f = _rank(cold["ids"], want), _rank(learn["ids"], want), _rank(after["ids"], want)
        sim_ab = _cos(embedder.embed_query(lesson["phrasing_a"]), embedder.embed_query(lesson["phrasing_b"]))
        row: dict[str, Any] = {
            "lesson": lesson["key"], "cold": c, "a": a, "after": f, "sim_ab": round(sim_ab, 3),
            "own_learned": _score(after["keys"].get(want, {}), "learned"),
        }
        summary[_move(c, f)] += 1
        summary[f"a_{'found' if a else 'missed'}_{_move(c, f)}"] += 1
        if f is None or f > TOP or (c is not None and (f > c)):
            winners = after["ids"][: (f - 1) if f else TOP]
            row["winners"] = []
            for w in winners:
                why = _why(w, want, cold, after, lesson_ids)
                causes[why] += 1
                row["winners"].append({
                    "memory": name.get(w, w), "why": why,
                    "groups": {g: _score(after["keys"].get(w, {}), g) for g in ("doc", "key", "learned", "lexical", "fused")},
                    "confidence": after["hits"][w]["confidence"],
                    "learned_text": (after["keys"].get(w, {}).get("learned") or (0, "", ""))[2][:80],
                })
            row["lesson_groups"] = {g: _score(after["keys"].get(want, {}), g) for g in ("doc", "key", "learned", "lexical", "fused")}
            row["lesson_confidence"] = after["hits"].get(want, {}).get("confidence")
        rows.append(row)
    return {"summary": dict(summary), "winner_causes": dict(causes), "rows": rows}


def _score(groups: dict[str, Any], group: str) -> float | None:
    value = groups.get(group)
    if value is None:
        return None
    return round(value if isinstance(value, float) else value[0], 3)


def _move(cold: int | None, after: int | None) -> str:
    if cold == after:
        return "same"
    if after is None or (cold is not None and after > cold):
        return "worse"
    return "better"


def _why(winner: str, lesson: str, cold: dict[str, Any], after: dict[str, Any], lessons: set[str]) -> str:
    """What puts ``winner`` above ``lesson`` after learning (first cause that explains it)."""
    kind = "lesson" if winner in lessons else "negative"
    was_above = winner in cold["ids"] and (lesson not in cold["ids"] or cold["ids"].index(winner) < cold["ids"].index(lesson))
    if was_above:
        return f"{kind}: already above cold"
    wk, lk = after["keys"].get(winner, {}), after["keys"].get(lesson, {})
    w_fused, l_fused = wk.get("fused", 0.0), lk.get("fused", 0.0)
    cw = cold["keys"].get(winner, {}).get("fused", 0.0)
    if w_fused > l_fused:
        if wk.get("learned") and _score(wk, "learned") > 0.3 and w_fused > cw + 1e-6:  # type: ignore[operator]
            return f"{kind}: its learned key"
        return f"{kind}: fused (lesson lost ground)"
    # Fused says the lesson leads: confidence or a preference turned it.
    w, ll = after["hits"][winner], after["hits"].get(lesson)
    if ll is not None and abs(w["score"] - w_fused * (0.7 + 0.3 * w["confidence"])) > 2e-4:
        return f"{kind}: preference"
    return f"{kind}: confidence"
