"""Remediations: record an error's fix, find it again from a reworded occurrence of the error.

Retrieval is hybrid. Each record keeps a dense vector of its title and normalised error and a
sparse vector of the normalised error's exact terms (error classes, codes, package names);
the store ranks by both and fuses the rankings (``ScopedStore.hybrid_search``). The sparse
list weighs 1.5x the dense one: on the labelled set (tests/data/remediation_errors.json,
BENCHMARKS.md) exact terms decide which of several look-alike errors a query is.

The texts (title, error, fix, diff...) live in a second collection, by the same id: a search
filters and ranks on a small payload (scope, category, confidence, signature), since filtering
costs grow with payload size (measured: 4x from 0.3 to 1.5 KB, 15x to 12 KB, on an edge
collection below its keyword-index threshold), then reads the texts of the top hits only.

A second stage (services/remediation_rerank.py) scores the top candidates again on what tells
look-alike errors apart (the error lines' rarer terms, the failing command, the call's context):
on the near-miss set it lifts R@1 where every first-stage miss was a same-class near-miss.

Confidence follows the memory model (models/confidence.py): helpful / unhelpful feedback moves
a Beta posterior, and ranking weighs relevance by it. Records of the same error (same normalised
signature) share their best relevance, so among alternative fixes for one error the one that
has worked ranks first.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from contextd_mcp import limits
from contextd_mcp.errors import NotFound
from contextd_mcp.models.confidence import FEEDBACK_WEIGHT, HIDE_BELOW, Belief, Origin, rank_score
from contextd_mcp.models.remediation import (
    PROBLEM_PREVIEW,
    SOLUTION_PREVIEW,
    Category,
    GetRemediation,
    RecordedRemediation,
    RecordRemediation,
    Remediation,
    RemediationConfidence,
    RemediationFeedback,
    RemediationHit,
    SearchRemediations,
)
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.ports import vector_store as port
from contextd_mcp.ports.embedder import Embedder
from contextd_mcp.ports.vector_store import Range, Record
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.content_ids import content_id, digest
from contextd_mcp.services.error_text import dense_text, infer_category, normalise, sparse_vector
from contextd_mcp.services.remediation_rerank import Candidate, RerankSettings, rerank
from contextd_mcp.services.record_fields import iso, preview, relative_level

COLLECTION = "remediations"
TEXTS = "remediation_texts"
# Fusion weights (dense, sparse) and candidates per list; measured in bench/bench_remediation.py.
WEIGHTS = (1.0, 1.5)
CANDIDATES = 50
CONTEXT_TERM_WEIGHT = 0.5
# What a search reads back for ranking (a payload costs ~0.4 µs a byte to fetch).
HIT_FIELDS = ("tenant", "team", "project", "category", "confidence", "tags", "signature")


def _best_fused_score(weights: tuple[float, float]) -> float:
    """The fused score of a record ranked first by both lists (the port's formula at rank 0)."""
    return sum(1.0 / (1.0 / w + port.RRF_K - 1) for w in weights if w > 0)


def _shared(hits: Sequence[port.Hit], relevance: list[float]) -> list[float]:
    """Alternative fixes of one error (one signature) share its best relevance, so confidence orders them."""
    best: dict[str, float] = {}
    for hit, rel in zip(hits, relevance, strict=True):
        sig = hit.payload.get("signature", hit.id)
        best[sig] = max(best.get(sig, 0.0), rel)
    return [best[hit.payload.get("signature", hit.id)] for hit in hits]


class RemediationService:
    def __init__(
        self,
        backing: Backing,
        embedder: Embedder,
        rerank: RerankSettings = RerankSettings(),
    ) -> None:
        self._stores = backing.stores
        self._rerank = rerank
        self._embedder = embedder
        self._scrubber = backing.scrubber
        self._now = backing.now
        self._lock = threading.Lock()  # feedback is read-modify-write
        backing.stores.ensure(
            backing.spec(
                COLLECTION,
                keyword_fields=("tenant", "team", "project", "category", "tags", "signature"),
                float_fields=("confidence", "created_ts"),
                hot_fields=("tenant", "team", "project"),
                sparse=True,
            )
        )
        backing.stores.ensure(backing.spec(TEXTS))

    def _scrub(self, text: str | None) -> str | None:
        return None if text is None else self._scrubber.scrub(text).text

    def record(self, scope: Scope, request: RecordRemediation) -> RecordedRemediation:
        return self.record_many(scope, [request])[0]

    def record_many(self, scope: Scope, requests: Sequence[RecordRemediation]) -> list[RecordedRemediation]:
        """Record several fixes with one batched embedding call (imports, benches)."""
        results: list[RecordedRemediation] = []
        fresh: list[tuple[Record, str]] = []
        texts: list[Record] = []
        seen: dict[str, RecordedRemediation] = {}
        belief = Belief.prior(Origin.stored)
        now = self._now()
        for request in requests:
            title, problem, solution = (self._scrub(t) or "" for t in (request.title, request.problem, request.solution))
            root_cause = self._scrub(request.root_cause)
            symptoms = [self._scrub(s) or "" for s in request.symptoms]
            content_digest = digest(title, problem, solution)
            ident = content_id("remediation", scope, content_digest)
            existing = seen.get(ident) or self._existing(scope, ident)
            if existing is not None:
                results.append(existing.model_copy(update={"duplicate_of_existing": True}))
                continue
            category = request.category or Category(infer_category(f"{title}\n{problem}\n{root_cause or ''}"))
            signature = normalise(problem)
            full = {
                "title": title,
                "problem_preview": preview(problem, PROBLEM_PREVIEW),
                "solution_preview": preview(solution, SOLUTION_PREVIEW),
                "problem": problem,
                "solution": solution,
                "root_cause": root_cause,
                "symptoms": symptoms,
                "code_diff": self._scrub(request.code_diff),
                "affected_files": [self._scrub(f) or "" for f in request.affected_files],
            }
            texts.append(Record(id=ident, payload={**scope.fields(), **full}))
            payload: dict[str, Any] = {
                **scope.fields(),
                "category": category.value,
                "category_inferred": request.category is None,
                "tags": list(request.tags),
                "alpha": belief.alpha,
                "beta": belief.beta,
                "confidence": belief.confidence,
                "helpful_count": 0,
                "unhelpful_count": 0,
                "content_hash": content_digest,
                "signature": digest(signature),
                "created_ts": now,
                "updated_ts": now,
            }
            lexical = normalise("\n".join([title, problem, *symptoms]))
            record = Record(id=ident, payload=payload, sparse=sparse_vector(lexical, unit=True))
            fresh.append((record, f"{title}\n{dense_text(signature)}"))
            recorded = RecordedRemediation(
                id=record.id,
                category=category,
                category_inferred=request.category is None,
                confidence=round(belief.confidence, 4),
            )
            seen[ident] = recorded
            results.append(recorded)
        if fresh:
            vectors = self._embedder.embed_documents([text for _, text in fresh])
            records = [
                Record(id=r.id, payload=r.payload, vector=v, sparse=r.sparse)
                for (r, _), v in zip(fresh, vectors, strict=True)
            ]
            # Texts first: a record that search can find always has its texts.
            store = self._stores.of(scope)
            store.upsert(TEXTS, texts)
            store.upsert(COLLECTION, records)
        return results

    def _existing(self, scope: Scope, ident: str) -> RecordedRemediation | None:
        found = self._stores.of(scope).get(COLLECTION, [ident])
        if not found:
            return None
        p = found[0].payload
        return RecordedRemediation(
            id=found[0].id,
            category=Category(p["category"]),
            category_inferred=bool(p["category_inferred"]),
            confidence=round(float(p["confidence"]), 4),
        )

    def search(self, scope: Scope, request: SearchRemediations, weights: tuple[float, float] = WEIGHTS) -> list[RemediationHit]:
        where: dict[str, Any] = {"confidence": Range(gte=HIDE_BELOW)}
        if request.category is not None:
            where["category"] = request.category.value
        signature = normalise(request.error)
        query_text = dense_text(signature)
        sparse = sparse_vector(signature)
        if request.context:
            query_text = f"{query_text}\n{request.context}"
            for index, value in sparse_vector(normalise(request.context)).items():
                sparse[index] = sparse.get(index, 0.0) + CONTEXT_TERM_WEIGHT * value
        vector = self._embedder.embed_query(query_text)
        store = self._stores.of(scope)
        candidates = store.hybrid_search(
            COLLECTION, vector, sparse, request.limit * limits.RERANK_FACTOR, request.scope, where,
            candidates=CANDIDATES, weights=weights, fields=HIT_FIELDS,
        )
        best = _best_fused_score(weights)
        relevance = [min(1.0, hit.score / best) for hit in candidates]
        confidence = [float(hit.payload["confidence"]) for hit in candidates]
        first = _shared(candidates, relevance)
        order = sorted(range(len(candidates)), key=lambda i: rank_score(first[i], confidence[i]), reverse=True)
        # Second stage (services/remediation_rerank.py) over the first stage's top: one read of
        # their texts, which the answer needs anyway.
        head = order[: max(request.limit, self._rerank.top if self._rerank.enabled else 0)]
        texts = {r.id: r.payload for r in store.get(TEXTS, [candidates[i].id for i in head], request.scope)}
        head = [i for i in head if candidates[i].id in texts]  # written between the two reads, or half-deleted
        if self._rerank.enabled:
            found = [Candidate(texts[candidates[i].id]["title"], texts[candidates[i].id]["problem"]) for i in head]
            for i, value in zip(head, rerank(self._rerank, request.error, request.context, [relevance[i] for i in head], found), strict=True):
                relevance[i] = value
        shared = _shared([candidates[i] for i in head], [relevance[i] for i in head])
        ranked = sorted(
            ((rank_score(rel, confidence[i]), rel, confidence[i], candidates[i]) for i, rel in zip(head, shared, strict=True)),
            key=lambda r: r[0], reverse=True,  # stable: equal scores keep the first stage's order
        )
        top = ranked[: request.limit]
        hits = []
        for score, rel, conf, hit in top:
            text = texts[hit.id]
            hits.append(
                RemediationHit(
                    id=hit.id,
                    title=text["title"],
                    category=Category(hit.payload["category"]),
                    problem=text["problem_preview"],
                    solution=text["solution_preview"],
                    confidence=round(conf, 4),
                    relevance=round(rel, 4),
                    score=round(score, 4),
                    tags=list(hit.payload.get("tags", [])),
                    scope=relative_level(hit.payload, scope),
                )
            )
        return hits

    def _load(self, scope: Scope, remediation_id: str, level: ScopeLevel) -> Record:
        found = self._stores.of(scope).get(COLLECTION, [remediation_id], level)
        if not found:
            raise NotFound("remediation", remediation_id)
        return found[0]

    def get(self, scope: Scope, request: GetRemediation) -> Remediation:
        record = self._load(scope, request.remediation_id, request.scope)
        p = record.payload
        found = self._stores.of(scope).get(TEXTS, [record.id], request.scope)
        full = found[0].payload if found else {}
        return Remediation(
            id=record.id,
            title=full.get("title", ""),
            category=Category(p["category"]),
            problem=full.get("problem", ""),
            solution=full.get("solution", ""),
            root_cause=full.get("root_cause"),
            symptoms=list(full.get("symptoms", [])),
            code_diff=full.get("code_diff"),
            affected_files=list(full.get("affected_files", [])),
            tags=list(p.get("tags", [])),
            confidence=round(float(p["confidence"]), 4),
            helpful_count=int(p["helpful_count"]),
            unhelpful_count=int(p["unhelpful_count"]),
            scope=relative_level(p, scope),
            created_at=iso(p["created_ts"]),
            updated_at=iso(p["updated_ts"]),
        )

    def feedback(self, scope: Scope, request: RemediationFeedback) -> RemediationConfidence:
        counter = "helpful_count" if request.helpful else "unhelpful_count"
        with self._lock:
            record = self._load(scope, request.remediation_id, request.scope)
            p = record.payload
            belief = Belief(float(p["alpha"]), float(p["beta"])).observe(request.helpful, FEEDBACK_WEIGHT)
            self._stores.of(scope).set_fields(
                COLLECTION,
                record.id,
                {
                    "alpha": belief.alpha,
                    "beta": belief.beta,
                    "confidence": belief.confidence,
                    counter: int(p[counter]) + 1,
                    "updated_ts": self._now(),
                },
                request.scope,
            )
        return RemediationConfidence(
            id=record.id, confidence=round(belief.confidence, 4), hidden_from_search=belief.confidence < HIDE_BELOW
        )

    def counts(self, scope: Scope) -> int:
        return self._stores.of(scope).count(COLLECTION)
