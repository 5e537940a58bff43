"""Second stage of memory_search: the query's distinctive words in each top candidate's text.

The first stage (services/memory_keys.py) ranks memories by their keys' vectors plus a sparse
match of each key, with term weights taken over the whole collection. Among the memories it puts
on top, a lesson and its look-alikes (the same library, the same symptom) share most of their
words, and what tells them apart is the word or two of the query that only one of them holds
("schema", "locale", "SIGTERM"), often in its content, where one key's sparse score, scaled by the
list's best, barely counts. Measured on the dev split, cold phrasing B: of the lessons out of the
top 3, 30 of 52 were within the top 10 and 40 within the top 20, mostly behind other lessons'
hard negatives (BENCHMARKS.md, "Session 11: memory").

So the first ``TOP`` candidates are scored again on one feature, in [0, 1]: the share of the
query's words found in the candidate's text (title, description, content, situations, task,
error), each word weighed by how few of *those candidates* hold it (a word all of them share
decides nothing; as services/remediation_rerank.py does for error lines). Words are lower-cased,
stop words dropped, and a plural or tense ending cut ("builds", "built" stay apart; "tests",
"tested" meet "test"): phrasings of one need rarely repeat a word's exact form. A long text holds
more of any query's words, so the share is levelled by the text's length (``LENGTH``). The ranking
score becomes ``(1 - WEIGHT) * fused + WEIGHT * share``; candidates past ``TOP`` keep ``(1 - WEIGHT)
* fused``, so they stay below every rescored one. Nothing here loads a model.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from functools import lru_cache

from contextd_mcp.services.candidate_overlap import overlaps

# Candidates scored again, and the feature's share of the final score; chosen on the dev split
# (0.1-0.3 and 10-40 all gained cold R@3; BENCHMARKS.md, "Session 11: memory").
TOP = 20
WEIGHT = 0.2
# How much a text's length discounts its share. A longer text holds more of any query's words: with
# no discount (0) the stage moved unrelated lessons (on dev ~2x the words of their hard negatives)
# up a rank among the top 20 on average and the negatives down; at 0.6 both move alike (dev, offline,
# BENCHMARKS.md "Session 11: memory"), so the stage rewards the query's words, not length.
LENGTH = 0.6

# ASCII punctuation and spaces split words, on the UTF-8 bytes of the lower-cased text (bytes.translate
# + split: a third of a regex's time; the stage's cost is mostly this, ~20 texts of hundreds of words).
_SPLIT = bytes(c if c >= 128 or chr(c).isalnum() else 32 for c in range(256))
_STOP = frozenset(
    "a an and are as at be by do does did for from has have how i in into is it its me my no not "
    "of on or our out so that the this to up was we were what when where which why with you your "
    "after before can could may please see should try use will".split()
)
_ENDINGS = ("ies", "ied", "ing", "ed", "es", "s", "ly")
_TO_Y = ("ies", "ied")  # "libraries", "copied": "library", "copy"


def stem(word: str) -> str:
    """The word without a plural, tense or adverb ending (when enough of it is left)."""
    for ending in _ENDINGS:
        if len(word) > len(ending) + 2 and word.endswith(ending):
            return word[: -len(ending)] + ("y" if ending in _TO_Y else "")
    return word


def _raw(text: str) -> set[bytes]:
    """The distinct lower-cased words of a text, as UTF-8 bytes."""
    return set(text.lower().encode().translate(_SPLIT).split())


def words(text: str) -> frozenset[str]:
    """The distinct stemmed words of a text, stop words and single characters left out."""
    return frozenset(stem(w) for w in (b.decode() for b in _raw(text)) if len(w) > 1 and w not in _STOP)


# Query words recur across searches; their forms are a few bytes each (1024 of them: ~0.5 MB).
@lru_cache(maxsize=1024)
def _forms(stemmed: str) -> frozenset[bytes]:
    """Every word whose stem this is: a text's words are matched against these, which is cheaper
    than stemming each of them (a search reads ~20 texts of hundreds of words)."""
    guesses = {stemmed, *(stemmed + ending for ending in _ENDINGS)}
    if stemmed.endswith("y"):
        guesses.update(stemmed[:-1] + ending for ending in _TO_Y)
    return frozenset(w.encode() for w in guesses if stem(w) == stemmed)


def shares(query: str, texts: Sequence[str]) -> list[float]:
    """For each text, the weighted share of the query's words it holds, levelled for its length
    (0..1). A word's weight is log((n + 1) / (1 + how many of the n texts hold it)); the share is
    then multiplied by (the texts' median number of words / the text's own) ** ``LENGTH``, capped
    at 1: a long text holds more of any query's words, related or not."""
    forms = [_forms(w) for w in words(query)]
    held = [_raw(t) for t in texts]
    if not held:
        return []
    covered = overlaps([[not f.isdisjoint(h) for f in forms] for h in held])
    sizes = [max(1, len(h)) for h in held]
    pivot = statistics.median(sizes)
    return [min(1.0, c * (pivot / size) ** LENGTH) for c, size in zip(covered, sizes, strict=True)]


def rescored(query: str, fused: Sequence[float], texts: Iterable[str]) -> list[float]:
    """The ranking scores after the second stage. ``fused`` is in ranking order (best first);
    ``texts`` gives the text of the first ``TOP`` of them (more are ignored)."""
    top = min(TOP, len(fused))
    picked = [t for t, _ in zip(texts, range(top), strict=False)]
    extra = shares(query, picked) if len(picked) > 1 else [0.0] * len(picked)
    extra += [0.0] * (len(fused) - len(extra))
    return [(1 - WEIGHT) * f + WEIGHT * e for f, e in zip(fused, extra, strict=True)]


def memory_text(payload: dict[str, object]) -> str:
    """What the second stage reads of a memory: every text it was stored with."""
    parts = [payload.get(k) for k in ("title", "description", "content", "task", "error")]
    situations = payload.get("applies_when")
    if isinstance(situations, list):
        parts += situations
    return "\n".join(p for p in parts if isinstance(p, str))
