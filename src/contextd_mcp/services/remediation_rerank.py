"""Second stage of remediation_search: among look-alike errors, what tells the causes apart.

The first stage (dense + sparse, fused) finds the family: the same error class or code. It
also rewards what the query shares with a record's *surroundings* — the project's paths and
names, its log lines, the output's shape — and a near-miss recorded in the same project
shares more of those than the right fix recorded elsewhere. On the near-miss set
(bench/data/remediation_eval/) every first-stage miss put a same-family near-miss first.

So the top candidates are scored again on three features, each in [0, 1]:

- ``error_lines``: the query's error lines (``error_text.decisive_lines``: the class, the code
  and the identifiers and phrases after them) against each candidate's title and error lines,
  term by term, each term weighed by how few of the *candidates* hold it. A term every
  candidate shares ("ModuleNotFoundError", "No module named") decides nothing here; the one
  after it ("yaml", "cv2") decides.
- ``command``: the failing command (the call's ``context``, a ``$ cmd`` line, or "`cmd`
  failed with") names the same program as the candidate's.
- ``context``: the call's ``context`` terms found in the candidate's text, weighed the same way.

The relevance becomes ``(1 - w) * fused + w * mean(features)``; ``w`` (0.7) and the features
are chosen on the dev split (BENCHMARKS.md, "Session 4: remediations"): the error lines alone
lift R@1 0.821 → 0.944; the command and context features, alone or beside them, lowered it, so
they ship off (switchable for the ablation, settings.RemediationSettings). Nothing here loads a
model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contextd_mcp.services.candidate_overlap import overlaps
from contextd_mcp.services.error_text import decisive_lines, normalise, terms
from contextd_mcp.transcript import program_of

_COMMAND_LINE = re.compile(r"^\s*(?:\$|>|#)\s+(\S.*)$|^`([^`]{1,300})` failed with", re.M)
_CONTEXT_COMMAND = re.compile(r"`([^`]{1,300})`")


@dataclass(frozen=True)
class RerankSettings:
    enabled: bool = True
    error_lines: bool = True
    command: bool = False  # measured: see settings.RemediationSettings
    context: bool = False
    top: int = 10  # candidates scored again
    weight: float = 0.7  # of the second stage in the final relevance


@dataclass(frozen=True)
class Candidate:
    title: str
    problem: str


def commands(text: str) -> set[str]:
    """The programs a text shows being run ('pytest', 'npm run', 'python -m x')."""
    found = set()
    for match in _COMMAND_LINE.finditer(text):
        program = program_of(match.group(1) or match.group(2) or "")
        if program:
            found.add(program)
    return found


def _context_commands(context: str) -> set[str]:
    quoted = [m.group(1) for m in _CONTEXT_COMMAND.finditer(context)]
    return {p for p in (program_of(c) for c in quoted or [context]) if p}


def _overlaps(query: set[str], documents: list[set[str]]) -> list[float]:
    """Each document's share of the query's terms, weighed over the candidates (a term all of
    them hold weighs ~0)."""
    wanted = list(query)
    return overlaps([[t in d for t in wanted] for d in documents])


def rerank(
    settings: RerankSettings, error: str, context: str | None, fused: list[float], candidates: list[Candidate]
) -> list[float]:
    """Relevance of each candidate after the second stage (``fused``: first-stage, in [0, 1])."""
    if not settings.enabled or len(candidates) < 2:
        return fused
    query_norm = normalise(error)
    features: list[list[float]] = [[] for _ in candidates]
    normalised = [normalise(f"{c.title}\n{c.problem}") for c in candidates]
    if settings.error_lines:
        wanted = set(terms("\n".join(decisive_lines(query_norm))))
        held = [set(terms("\n".join(decisive_lines(n)))) for n in normalised]
        for f, share in zip(features, _overlaps(wanted, held), strict=True):
            f.append(share)
    if settings.command:
        ran = commands(error) | (_context_commands(context) if context else set())
        if ran:
            for f, c in zip(features, candidates, strict=True):
                f.append(1.0 if ran & commands(c.problem) else 0.0)
    if settings.context and context:
        wanted = set(terms(normalise(context)))
        held = [set(terms(n)) for n in normalised]
        for f, share in zip(features, _overlaps(wanted, held), strict=True):
            f.append(share)
    # A feature equal for every candidate tells none apart; averaging it in would only flatten the others.
    telling = [k for k in range(len(features[0])) if len({round(f[k], 6) for f in features}) > 1]
    if not telling:
        return fused
    w = settings.weight
    return [(1 - w) * r + w * sum(f[k] for k in telling) / len(telling) for r, f in zip(fused, features, strict=True)]
