"""Distillation without an LLM: a finished session becomes at most 3 ReasoningBank items.

Sources, in priority order: the learnings the calling model handed over; the session's
summary; for Claude Code sessions, the transcript's error → fix pairs and the errors
still unresolved at the end. The session's outcome decides the kind: success → strategy
memories, failure → anti-patterns ("what went wrong, how to avoid it"), partial → both
(a fix found is a strategy, an error left is an anti-pattern). Items have the
ReasoningBank shape: a title, a one-sentence description, 1-3 sentences of content,
built from short derived lines, never a copy of the transcript.

Before storing, an item is compared with the project's memories of the same outcome:
at cosine ≥ ``NEAR_DUPLICATE`` (0.88) it strengthens the existing memory instead of
adding a copy. Measured with the shipped MiniLM: paraphrases of one lesson score
0.90-0.96, a reworded sentence 0.99, two different lessons on one topic 0.67.
Everything is scrubbed of secrets before it is stored.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from contextd_mcp import limits
from contextd_mcp.models.confidence import Origin
from contextd_mcp.models.memory import Outcome
from contextd_mcp.models.remediation import RecordRemediation
from contextd_mcp.models.requests import StoreMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.models.session import SessionOutcome
from contextd_mcp.ports.job_queue import JobQueue
from contextd_mcp.ports.scrubber import Scrubber
from contextd_mcp.services.memory import MemoryService
from contextd_mcp.transcript import Digest, clip, digest, program_of, read_events, sentences

log = logging.getLogger("contextd_mcp")

NEAR_DUPLICATE = 0.88
MAX_ITEMS = limits.LEARNINGS_MAX
TITLE_CHARS = 120
DESCRIPTION_CHARS = 300
CONTENT_CHARS = 1200
TAG = "distilled"

_PROBLEM = re.compile(
    r"\b(fail\w*|error\w*|broke\w*|broken|crash\w*|wrong|couldn't|could not|cannot|can't|didn't work|did not work|"
    r"timed out|timeout|regress\w*|stuck|flaky|mistake\w*|wasted|blocked)\b",
    re.IGNORECASE,
)
_REMEDY = re.compile(
    r"\b(instead|should|must|avoid|don't|do not|never|always|make sure|next time|need to|needs to|fixed by|the fix|"
    r"prefer|check|install\w*|pin\w*|use)\b",
    re.IGNORECASE,
)

# Receives error → fix pairs found in transcripts (remediation candidates).
RemediationSink = Callable[[Scope, list[dict[str, str]]], None]


@dataclass
class Item:
    title: str
    description: str
    content: str
    outcome: Outcome
    source: str  # learning | summary | transcript
    error: str = ""  # the error text the lesson answers (a key of the memory, not part of it)

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.outcome}\n{self.title}\n{self.content}".encode()).hexdigest()[:16]


def _shape(title: str, description: str, content: str, outcome: Outcome, source: str) -> Item:
    """The ReasoningBank shape: short title, one-sentence description, 1-3 sentences of content."""
    body = " ".join(sentences(content)[:3])
    first = (sentences(description) or sentences(body) or [title])[0]
    return Item(clip(title, TITLE_CHARS), clip(first, DESCRIPTION_CHARS), clip(body, CONTENT_CHARS), outcome, source)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _program(command: str) -> str:
    return clip(program_of(command) or command, 40)


def from_summary(summary: str, task: str, outcome: SessionOutcome) -> list[Item]:
    parts = sentences(summary)
    if not parts:
        return []
    problems = [s for s in parts if _PROBLEM.search(s)]
    others = [s for s in parts if s not in problems]
    remedies = [s for s in parts if _REMEDY.search(s) and s not in problems[:1]]
    items = []
    where = f" while working on: {clip(task, 150)}" if task else ""
    if outcome is not SessionOutcome.failure:
        worked = (others or parts)[:3] if outcome is SessionOutcome.success else others[:3]
        if worked:
            description = f"What worked{where}." if task else worked[0]
            items.append(_shape(worked[0], description, " ".join(worked), Outcome.success, "summary"))
    if outcome is not SessionOutcome.success:
        wrong = problems[:2] if problems else (parts[:2] if outcome is SessionOutcome.failure else [])
        if wrong:
            # In a failed session, what the summary says besides the failure is the lesson; in
            # a partial one it is what worked, so only a sentence that reads as advice will do.
            fallback = others[:1] if outcome is SessionOutcome.failure else []
            avoid = (remedies or fallback or ["Check for this cause before trying the same approach again."])[0]
            content = f"What went wrong: {' '.join(wrong)} How to avoid it: {_sentence(avoid)}"
            items.append(_shape(f"Avoid: {wrong[0]}", f"What went wrong{where}.", content, Outcome.failure, "summary"))
    return items


def from_transcript(d: Digest, outcome: SessionOutcome) -> list[Item]:
    items = []
    kind = Outcome.failure if outcome is SessionOutcome.failure else Outcome.success
    for pair in d.pairs:
        error, fix, command = pair["error"], pair["fix"], pair["command"]
        program = _program(command)
        if kind is Outcome.success:
            title = f"Fix `{program}` failing with {clip(error, 70)}"
            content = f"`{clip(command, 100)}` failed with: {_sentence(clip(error, 200))} What fixed it: {_sentence(fix)}"
            description = f"When `{program}` fails with {clip(error, 120)}, {clip(fix, 150)}."
        else:
            title = f"Avoid: `{program}` failing with {clip(error, 70)}"
            content = f"What went wrong: `{clip(command, 100)}` failed with {_sentence(clip(error, 200))} How to avoid it: {_sentence(fix)}"
            description = f"`{program}` failed with {clip(error, 120)}."
        items.append(replace(_shape(title, description, content, kind, "transcript"), error=error))
    if outcome is not SessionOutcome.success:
        for step in d.unresolved:
            program = _program(step.target)
            hint = _hint(d, program)
            content = (
                f"What went wrong: `{clip(step.target, 100)}` failed with {_sentence(clip(step.error, 200))} "
                f"It was still failing when the session ended. How to avoid it: "
                + _sentence(hint or "do not treat the task as done while it fails")
            )
            item = _shape(f"Avoid: `{program}` left failing with {clip(step.error, 70)}",
                          f"`{program}` still failed at the end of the session.", content, Outcome.failure, "transcript")
            items.append(replace(item, error=step.error))
    if not items and d.last_note and outcome is not SessionOutcome.failure:
        said = sentences(d.last_note)[:3]
        if said:
            description = f"What worked while working on: {clip(d.task, 150)}." if d.task else said[0]
            items.append(_shape(said[0], description, " ".join(said), Outcome.success, "transcript"))
    return items


def _hint(d: Digest, program: str) -> str | None:
    """A sentence of the assistant's that mentions the failing program and a remedy."""
    name = program.split()[0].lower() if program else ""
    for _, text in reversed(d.notes):
        for sentence in sentences(text):
            if name and name in sentence.lower() and _REMEDY.search(sentence):
                return clip(sentence, 240)
    return None


def read_transcript(path: str, byte_range: list[int] | None = None) -> Digest:
    """The digest of a transcript, or of the ``[start, end)`` bytes a job was given
    (services/transcript_marks.py: a resumed session distils only its new turns)."""
    file = Path(path)
    # Only the hook (the local user, over the owner-only socket) can name a path; still, read
    # nothing but a regular .jsonl file, and only its tail (transcript.MAX_READ_BYTES).
    if not file.is_absolute() or file.suffix != ".jsonl" or not file.is_file():
        raise FileNotFoundError(f"not a transcript file: {path}")
    start, end = (byte_range[0], byte_range[1]) if byte_range else (0, None)
    return digest(read_events(file, start=start, end=end))


def remediation_sink(record_many: Callable[[Scope, list[RecordRemediation]], Any]) -> RemediationSink:
    """Error → fix pairs from transcripts, recorded as remediations (``RemediationService.record_many``)."""

    def record(scope: Scope, pairs: list[dict[str, str]]) -> None:
        requests = [
            RecordRemediation(
                title=clip(p["error"], TITLE_CHARS) or clip(p["command"], TITLE_CHARS),
                problem=f"`{p['command']}` failed with: {p['error']}",
                solution=p["fix"],
                tags=["transcript"],
            )
            for p in pairs
            if p.get("error") and p.get("fix")
        ]
        if requests:
            record_many(scope, requests)

    return record


class Distiller:
    def __init__(self, memory: MemoryService, scrubber: Scrubber, remediation_sink: RemediationSink | None = None) -> None:
        self._memory = memory
        self._scrubber = scrubber
        # Error → fix pairs found in transcripts go here (None: not collected).
        self.remediation_sink = remediation_sink

    def _scrub(self, text: str) -> str:
        return self._scrubber.scrub(text).text

    def candidates(self, payload: dict[str, Any], d: Digest | None) -> list[Item]:
        outcome = SessionOutcome(payload["outcome"])
        items = [
            _shape(x["title"], x.get("description") or "", x["content"], Outcome(x["outcome"]), "learning")
            for x in payload.get("learnings", [])
        ]
        task = payload.get("task") or (d.task if d else "") or ""
        if payload.get("summary"):
            items += from_summary(payload["summary"], task, outcome)
        if d is not None:
            items += from_transcript(d, outcome)
        unique: dict[str, Item] = {}
        for item in items:
            unique.setdefault(item.title.lower(), item)
        return list(unique.values())[:MAX_ITEMS]

    def run(self, payload: dict[str, Any], progress: dict[str, Any], save: Callable[[], None]) -> dict[str, Any]:
        """Distil one session; ``progress`` records finished items so a retry skips them."""
        scope = Scope(**payload["scope"])
        d: Digest | None = None
        notes = []
        if payload.get("transcript_path"):
            try:
                d = read_transcript(payload["transcript_path"], payload.get("transcript_range"))
            except (OSError, ValueError) as exc:  # a missing transcript will not appear on retry
                notes.append(f"transcript not read: {type(exc).__name__}")
        items = [
            Item(self._scrub(i.title), self._scrub(i.description), self._scrub(i.content), i.outcome, i.source,
                 self._scrub(i.error))
            for i in self.candidates(payload, d)
        ]
        task = self._scrub(payload.get("task") or (d.task if d else "") or "")
        todo = [i for i in items if i.key not in progress]
        if todo:
            own = {payload["session_id"], *payload.get("transcript_sessions", [])}
            progress.update(self._keep(scope, todo, payload["session_id"], own, task))
            save()
        created = [progress[i.key]["id"] for i in items if progress[i.key]["action"] == "created"]
        reinforced = [progress[i.key]["id"] for i in items if progress[i.key]["action"] == "reinforced"]
        pairs = [{k: self._scrub(v) for k, v in p.items()} for p in (d.pairs if d else [])]
        if pairs and self.remediation_sink is not None and not progress.get("remediation"):
            self.remediation_sink(scope, pairs)
            progress["remediation"] = True
            save()
        return {
            "memories_created": created,
            "memories_reinforced": reinforced,
            "remediation_candidates": pairs,
            "notes": notes,
        }

    def _keep(
        self, scope: Scope, items: list[Item], session_id: str, own: set[str], task: str = ""
    ) -> dict[str, dict[str, str]]:
        """Strengthen near-duplicates, store the rest (two batched embedding calls in all).

        ``own``: this session and the earlier sessions of the same transcript (a resume): a
        lesson they already stored is the same evidence, so it is neither stored nor strengthened."""
        done: dict[str, dict[str, str]] = {}
        fresh: list[Item] = []
        nearest = self._memory.nearest(scope, [(i.title, i.description, i.content, i.outcome) for i in items])
        for item, near in zip(items, nearest, strict=True):
            if near is None or near.score < NEAR_DUPLICATE:
                fresh.append(item)
            elif near.payload.get("session_id") == session_id:
                # Stored by an earlier attempt of this same job that died before saving its
                # progress: it is this session's memory, not a second sighting of the lesson.
                done[item.key] = {"action": "created", "id": near.id}
            elif near.payload.get("session_id") in own:
                done[item.key] = {"action": "known", "id": near.id}
            else:
                self._memory.reinforce(scope, near.id)
                done[item.key] = {"action": "reinforced", "id": near.id}
        requests = [
            StoreMemory(title=i.title, description=i.description, content=i.content, outcome=i.outcome, tags=[TAG])
            for i in fresh
        ]
        # The session's task and the error a lesson answers are keys: how the next agent asks.
        situations = [(task, i.error) for i in fresh]
        stored_all = self._memory.store_many(scope, requests, Origin.distilled, session_id, situations)
        for item, stored in zip(fresh, stored_all, strict=True):
            done[item.key] = {"action": "created", "id": stored.id}
        return done


class DistillRunner:
    """Takes jobs from the durable queue and distils them; the background worker drives it.

    A failing job is retried after ``retry_base_s * 4**(attempt-1)`` seconds, and after
    ``max_attempts`` it is moved to failed with its error (``distill_status`` shows it).
    """

    def __init__(
        self,
        queue: JobQueue,
        distiller: Distiller,
        scrubber: Scrubber,
        max_attempts: int = 3,
        retry_base_s: float = 2.0,
        delay_s: float = 0.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self.distiller = distiller
        self._scrubber = scrubber
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._delay_s = delay_s
        self._now = now
        self._stopping = threading.Event()
        self._busy = threading.Lock()

    def recover(self) -> int:
        moved = self._queue.recover()
        if moved:
            log.info("requeued %d distillation job(s) left running by a previous process", moved)
        return moved

    def run_once(self) -> bool:
        """Do one due job; False when there was none (or the runner is stopping)."""
        with self._busy:
            if self._stopping.is_set():
                return False
            job = self._queue.claim(self._now())
            if job is None:
                return False
            if self._delay_s and self._stopping.wait(self._delay_s):
                self._queue.release(job)
                return False
            started = time.perf_counter()
            try:
                result = self.distiller.run(job.payload, job.progress, lambda: self._queue.save_progress(job))
            except Exception as exc:  # noqa: BLE001 - any failure of a job is recorded and retried, never kills the worker
                error = self._scrubber.scrub(f"{type(exc).__name__}: {exc}"[:500]).text
                if job.attempts + 1 >= self._max_attempts:
                    log.error("distillation job %s failed for good after %d attempts: %s", job.id, job.attempts + 1, error)
                    self._queue.fail(job, error)
                else:
                    delay = self._retry_base_s * 4**job.attempts
                    log.warning("distillation job %s failed (%s); retry in %.1fs", job.id, error, delay)
                    self._queue.retry(job, error, self._now() + delay)
                return True
            result["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
            self._queue.complete(job, result)
            return True

    def wait(self, timeout: float) -> None:
        if not self._stopping.is_set():
            self._queue.wait(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Finish (or put back) the job in hand, then take no more: runs before the store closes."""
        self._stopping.set()
        if self._busy.acquire(timeout=timeout):
            self._busy.release()
