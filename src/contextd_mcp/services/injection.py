"""What session_start puts in the agent's context: a few trusted lessons, always small.

Rules (documented in the README and the tool's description):
- at most ``INJECTED_MEMORIES_MAX`` (3) memories of the caller's project;
- only memories whose confidence is at least ``CONFIDENCE_FLOOR`` (0.55). Fresh memories
  start at 0.67 (stored) and 0.60 (distilled); one unhelpful rating with no helpful one
  brings either below 0.55 (2/4 = 0.50, 1.5/3.5 = 0.43). Search hides only below 0.30;
  an injection nobody asked for should be held to a higher standard than a search;
- with a task: the memories most relevant to it, and only those at least
  ``RELEVANCE_FLOOR`` (0.25 cosine) relevant: MiniLM scores unrelated engineering
  sentences 0.0-0.2 and related ones 0.4 and up;
- without a task: the memories relevant to the project's recent work (the latest
  checkpoint's summary, else the last ended session's task and summary); with neither,
  the most confident of the 30 newest memories;
- the whole text stays under ``limits.INJECTION_MAX_TOKENS`` (490 < 500) tokens counted
  with the WordPiece counter every cap uses; each memory gets an equal share of what the
  fixed lines leave, unused share passes on, and text is cut at a word boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from contextd_mcp import limits
from contextd_mcp.models.checkpoint import CheckpointInfo
from contextd_mcp.models.memory import Memory, Outcome
from contextd_mcp.models.requests import GetMemory, SearchMemories
from contextd_mcp.models.scope import Scope
from contextd_mcp.models.session import CheckpointRef, InjectedMemory
from contextd_mcp.ports.embedder import TokenCounter
from contextd_mcp.ports.scoped_store import Stores
from contextd_mcp.ports.vector_store import Range
from contextd_mcp.services.checkpoints import CheckpointService
from contextd_mcp.services.memory import COLLECTION as MEMORIES
from contextd_mcp.services.memory import MemoryService, session_origin

CONFIDENCE_FLOOR = 0.55
RELEVANCE_FLOOR = 0.25
RECENT_CANDIDATES = 30
HEADER = "## Lessons from earlier sessions (contextd)"
TITLE_TOKENS = 32
CHECKPOINT_TOKENS = 60
ELLIPSIS = "…"


@dataclass
class Injection:
    text: str
    tokens: int
    memories: list[InjectedMemory]
    checkpoint: CheckpointRef | None


class Injector:
    def __init__(
        self, memory: MemoryService, checkpoints: CheckpointService, stores: Stores, counter: TokenCounter
    ) -> None:
        self._memory = memory
        self._checkpoints = checkpoints
        self._stores = stores
        self._counter = counter

    def _cut(self, text: str, max_tokens: int) -> str:
        if self._counter.count(text) <= max_tokens:
            return text
        return self._counter.truncate(text, max(0, max_tokens - 1)) + ELLIPSIS

    def _pick(
        self, scope: Scope, query: str | None, needs_relevance: bool, session_id: str = ""
    ) -> list[tuple[Memory, float | None]]:
        if query:
            # Logged under the session: its outcome reinforces what was injected (MemoryService.session_outcome).
            _, hits = self._memory.search_logged(
                scope,
                SearchMemories(
                    query=query[: limits.QUERY_MAX], limit=limits.INJECTED_MEMORIES_MAX, min_confidence=CONFIDENCE_FLOOR
                ),
                session_origin(session_id),
            )
            if needs_relevance:
                hits = [h for h in hits if h.relevance >= RELEVANCE_FLOOR]
            if hits or needs_relevance:
                return [(self._memory.get(scope, GetMemory(memory_id=h.id)), h.relevance) for h in hits]
        recent = self._stores.of(scope).scan(
            MEMORIES, RECENT_CANDIDATES, match={"confidence": Range(gte=CONFIDENCE_FLOOR)}, order_by="created_ts"
        )
        recent.sort(key=lambda r: (float(r.payload["confidence"]), float(r.payload["created_ts"])), reverse=True)
        chosen = recent[: limits.INJECTED_MEMORIES_MAX]
        return [(self._memory.get(scope, GetMemory(memory_id=r.id)), None) for r in chosen]

    def _line(self, number: int, memory: Memory, budget: int) -> str:
        anti = memory.outcome is Outcome.failure
        title = self._cut(memory.title, TITLE_TOKENS)
        if anti and not title.lower().startswith(("avoid", "don't", "do not", "never")):
            title = f"Avoid: {title}"
        kind = "anti-pattern" if anti else "strategy"
        head = f"{number}. **{title}** — "
        tail = f" _({kind}, confidence {memory.confidence:.2f})_"
        room = budget - self._counter.count(head) - self._counter.count(tail)
        content = self._cut(memory.content, room) if room > 0 else ""
        return head + content + tail if content else head.rstrip(" —") + tail

    def build(self, scope: Scope, session_id: str, task: str | None, recent_work: str | None) -> Injection:
        latest: CheckpointInfo | None = self._checkpoints.latest(scope)
        if task:
            picked = self._pick(scope, task, needs_relevance=True, session_id=session_id)
        else:
            hint = latest.summary if latest else recent_work
            picked = self._pick(scope, hint, needs_relevance=False)
        footer = [f"contextd session: `{session_id}`"]
        checkpoint = None
        if latest is not None:
            checkpoint = CheckpointRef(id=latest.id, summary=latest.summary, created_at=latest.created_at)
            preview = self._cut(latest.summary, CHECKPOINT_TOKENS)
            footer.insert(0, f"Latest checkpoint ({latest.created_at}): {preview} — `checkpoint_resume` id `{latest.id}`")
        budget = limits.INJECTION_MAX_TOKENS
        fixed = "\n".join(([HEADER] if picked else []) + footer)
        room = budget - self._counter.count(fixed) - 2 * len(picked)  # the joining newlines, generously
        lines = []
        for index, (memory, _) in enumerate(picked):
            share = room // (len(picked) - index)
            line = self._line(index + 1, memory, share)
            room -= self._counter.count(line)
            lines.append(line)
        text = "\n".join(([HEADER, *lines] if picked else []) + footer)
        if self._counter.count(text) > budget:  # a guarantee, whatever the estimates above missed
            text = self._counter.truncate(text, budget)
        memories = [
            InjectedMemory(
                id=m.id, title=m.title, outcome=m.outcome, confidence=m.confidence,
                relevance=round(r, 4) if r is not None else None,
            )
            for m, r in picked
        ]
        return Injection(text=text, tokens=self._counter.count(text), memories=memories, checkpoint=checkpoint)
