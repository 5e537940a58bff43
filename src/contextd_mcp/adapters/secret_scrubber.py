"""RegexScrubber: the Scrubber port, built on pre-compiled ``re`` rules (no dependencies).

Every secret is replaced by ``[REDACTED:<kind>]`` and only the secret: the user and
host of a database URL, the ``Authorization: Bearer`` prefix and the BEGIN/END lines
of a private key stay, so the scrubbed text still reads. Scrubbing is idempotent:
a marker is never mistaken for a secret, so ``scrub(scrub(x).text).text == scrub(x).text``.

The rules themselves, and why they are shaped as they are, live in ``secret_rules``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from contextd_mcp.adapters.secret_rules import DETECTORS, KINDS, MARKER_PREFIX, Detector, Finding, TextView
from contextd_mcp.ports.scrubber import ScrubResult

__all__ = ["KINDS", "RegexScrubber", "marker"]


def marker(kind: str) -> str:
    return f"{MARKER_PREFIX}{kind}]"


class RegexScrubber:
    """Replaces secrets with typed markers; satisfies ``contextd_mcp.ports.scrubber.Scrubber``."""

    def __init__(self, detectors: Iterable[Detector] = DETECTORS) -> None:
        self._detectors = tuple(detectors)

    def findings(self, text: str) -> list[Finding]:
        """Non-overlapping (start, end, kind) secrets in ``text``, in text order.

        Detectors are in priority order and an earlier one keeps its span: a GitHub
        token in a URL is a ``github-token``, not a ``url-password``.
        """
        if not text:
            return []
        view = TextView(text)
        starts: list[int] = []  # claimed spans, sorted; they never overlap, so ends sort too
        ends: list[int] = []
        kinds: list[str] = []
        for detector in self._detectors:
            for start, end, kind in detector.find(view):
                i = bisect.bisect_right(starts, start)
                if (i and ends[i - 1] > start) or (i < len(starts) and starts[i] < end):
                    continue
                starts.insert(i, start)
                ends.insert(i, end)
                kinds.insert(i, kind)
        return list(zip(starts, ends, kinds, strict=True))

    def has_secret(self, text: str) -> bool:
        if not text:
            return False
        view = TextView(text)
        return any(next(iter(detector.find(view)), None) is not None for detector in self._detectors)

    def scrub(self, text: str) -> ScrubResult:
        """``text`` with each secret replaced by its marker; ``redactions`` counts the
        markers, ``kinds`` lists their kinds once each, in order of first appearance."""
        found = self.findings(text)
        if not found:
            return ScrubResult(text)
        parts: list[str] = []
        pos = 0
        for start, end, kind in found:
            parts.append(text[pos:start])
            parts.append(marker(kind))
            pos = end
        parts.append(text[pos:])
        kinds = tuple(dict.fromkeys(kind for _, _, kind in found))  # unique, first-seen order
        return ScrubResult("".join(parts), redactions=len(found), kinds=kinds)
