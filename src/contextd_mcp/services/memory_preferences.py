"""Preferences learned from a rating in context: which memory an agent took over the ones it passed.

When a memory is rated helpful after a search in which other memories ranked above it, the
agent read past those for this need (skip-above, the standard click model): the rated memory
records "preferred over" each of them, and the memories rated unhelpful after the same search.
At ranking time, when a memory and one it was preferred over are both candidates, the other is
ahead by at most ``PREFER_MARGIN`` and at least ``PREFER_CONTEXT`` of the memories it was
preferred over are candidates again, the preferred one moves just above it.

Why pairs and not keys or confidence: two phrasings of one need can be far apart for the
embedding model (a learned key of one rarely reaches the other), but they share the memories
that compete for them (same library, same symptom), so "L over N" carries from one phrasing to
the other. It changes nothing about L or N for searches where the other is not a candidate, and
nothing of their global confidence (popularity).

Kept in the preferred memory's record (``prefer``: other memory id -> when), so a preference is
scoped exactly like its memory: a search that cannot see the memory sees none of it. Capped at
``limits.MEMORY_PREFERENCES_MAX`` per memory, the oldest dropped. A later contrary preference
("N over L") overrides the older one (compared at ranking time, no rewrite of the other record).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from contextd_mcp import limits

FIELD = "prefer"
# How far (in hit score, 0..1) a memory passed over may be ahead and still be overtaken by the
# one preferred to it: a preference reorders near-ties, it does not lift a memory that is far
# from the query over one that matches it. Margins of 0.1 and more cost after-learning R@1 on
# the dev split (another lesson rated for its own need jumped over this one); 0.03 was the best
# measured, within noise of none (BENCHMARKS.md "Session 6").
PREFER_MARGIN = 0.03
# A preference applies only when at least this many of the memories it was recorded against are
# candidates again: the competitors are shared, so it is likely the same need (1 or 2 let
# lessons rated for other needs overtake, on dev).
PREFER_CONTEXT = 3
_ABOVE = 1e-4  # the preferred memory's new score: the other's plus this
_PASSES = 3  # chains (A over B over C) settle in a few passes; cycles stop here


def passed_over(ranked: Sequence[str], chosen: str, rated_unhelpful: Iterable[str] = ()) -> list[str]:
    """The memories an agent passed over to choose ``chosen``: those ranked above it in the
    search it was rated after, and those rated unhelpful after that search."""
    above = list(ranked[: ranked.index(chosen)]) if chosen in ranked else []
    return [m for m in dict.fromkeys([*above, *rated_unhelpful]) if m != chosen]


def recorded(current: Mapping[str, float] | None, others: Sequence[str], now: float) -> dict[str, float]:
    """``current`` preferences with ``others`` added (or refreshed) at ``now``, the newest kept."""
    merged = {**(current or {}), **{o: now for o in others}}
    newest = sorted(merged.items(), key=lambda item: item[1], reverse=True)[: limits.MEMORY_PREFERENCES_MAX]
    return dict(newest)


def _holds(prefs: Mapping[str, Mapping[str, float]], winner: str, loser: str) -> bool:
    """``winner`` was preferred over ``loser`` more recently than the other way round."""
    ts = prefs.get(winner, {}).get(loser)
    contrary = prefs.get(loser, {}).get(winner)
    return ts is not None and (contrary is None or float(ts) >= float(contrary))


def adjusted(scores: Mapping[str, float], prefs: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Scores after preferences: a memory preferred over a candidate ahead of it by at most
    ``PREFER_MARGIN`` scores just above that candidate. ``scores``: memory id -> hit score;
    ``prefs``: memory id -> its recorded preferences (only candidates need be present)."""
    out = dict(scores)
    pairs = [
        (w, n)
        for w, theirs in prefs.items()
        if w in out and sum(1 for n in theirs if n in out) >= PREFER_CONTEXT
        for n in theirs
        if n in out and _holds(prefs, w, n)
    ]
    for _ in range(_PASSES):
        moved = False
        for winner, loser in pairs:
            gap = out[loser] - out[winner]
            if 0 <= gap <= PREFER_MARGIN:
                out[winner] = out[loser] + _ABOVE
                moved = True
        if not moved:
            break
    return out
