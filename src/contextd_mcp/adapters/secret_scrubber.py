"""RegexScrubber: the Scrubber port, built on pre-compiled ``re`` rules (no dependencies).

Every secret is replaced by ``[REDACTED:<kind>]`` and only the secret: the user and
host of a database URL, the ``Authorization: Bearer`` prefix and the BEGIN/END lines
of a private key stay, so the scrubbed text still reads. Scrubbing is idempotent:
a marker is never mistaken for a secret, so ``scrub(scrub(x).text).text == scrub(x).text``.

The rules themselves, and why they are shaped as they are, live in ``secret_rules``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

from contextd_mcp.adapters import secret_views
from contextd_mcp.adapters.secret_rules import CONTEXT_DETECTORS, DETECTORS, KINDS, MARKER_PREFIX, Detector, Finding, TextView
from contextd_mcp.ports.scrubber import ScrubResult

__all__ = ["KINDS", "VIEWS", "RegexScrubber", "marker"]

VIEWS = frozenset({"json", "url", "joined", "blobs"})
"""The decoded views scanned besides the text as given (see ``secret_views``)."""


def marker(kind: str) -> str:
    return f"{MARKER_PREFIX}{kind}]"


class RegexScrubber:
    """Replaces secrets with typed markers; satisfies ``contextd_mcp.ports.scrubber.Scrubber``.

    The detectors run on the text as given, then on its decoded views (``secret_views``):
    JSON escapes undone, then URL-encoding, then wrapped lines joined, and every base64
    or hex blob of those that decodes to text (to a depth of ``max_depth`` blobs within
    blobs). A finding in a view is redacted at the span of the original it decodes from.
    """

    def __init__(
        self, detectors: Iterable[Detector] = DETECTORS, *, views: Iterable[str] = VIEWS, max_depth: int = 2
    ) -> None:
        self._detectors = tuple(detectors)
        self._views = frozenset(views)  # a subset of VIEWS: the tests measure what each one is worth
        assert self._views <= VIEWS, self._views - VIEWS
        self._max_depth = max_depth

    def findings(self, text: str) -> list[Finding]:
        """Non-overlapping (start, end, kind) secrets in ``text``, in text order.

        Detectors are in priority order and an earlier one keeps its span: a GitHub
        token in a URL is a ``github-token``, not a ``url-password``. A finding in a
        decoded view that overlaps earlier ones is merged with them into one span (a
        wrapped token whose first half a ``TOKEN=`` rule took is redacted whole).
        """
        if not text:
            return []
        claims = _Claims()
        for start, end, kind in self._scan(TextView(text)):
            claims.claim(start, end, kind)
        for start, end, kind in self._view_findings(text):
            claims.merge(start, end, kind)
        return claims.findings()

    def has_secret(self, text: str) -> bool:
        if not text:
            return False
        if any(self._scan(TextView(text), first_only=True)):
            return True
        return next(self._view_findings(text), None) is not None

    def _view_findings(self, text: str) -> Iterator[Finding]:
        """Findings in the decoded views, as spans of ``text``; lazily, so a check stops at the first."""
        for view, crossing in self._decoded(secret_views.root(text), 0):
            for start, end, kind, by_context in self._scan_tagged(TextView(view.text)):
                start, end = view.to_root(start, end)
                if crossing and "\n" not in text[start:end]:
                    continue  # within one line: the original's own scan has judged it
                if crossing and by_context and not secret_views.wrapped(text, start, end):
                    continue  # a label's value does not run on into the next setting
                yield start, end, kind

    def _scan(self, view: TextView, first_only: bool = False) -> Iterator[Finding]:
        for detector in self._detectors:
            found = detector.find(view)
            if first_only:
                hit = next(iter(found), None)
                if hit is not None:
                    yield hit
                    return
            else:
                yield from found

    def _scan_tagged(self, view: TextView) -> Iterator[tuple[int, int, str, bool]]:
        for detector in self._detectors:
            by_context = detector in CONTEXT_DETECTORS
            for start, end, kind in detector.find(view):
                yield start, end, kind, by_context

    def _decoded(self, view: secret_views.View, depth: int) -> Iterator[tuple[secret_views.View, bool]]:
        """(view, crossing): each decoded view worth a scan, cheapest first. ``crossing``:
        only findings across a joined line break are new in it."""
        if not self._views:
            return
        # A decoded view holds only windows around its escapes, so each decoding runs on the
        # original too, not only on the view before it (a URL outside the JSON windows is
        # decoded from the original, a URL inside a JSON string from the JSON view), and
        # lines are joined and blobs looked for in every one of them.
        sources = self._sources(view)
        for decoded in sources[1:]:
            yield decoded, False
        if "joined" in self._views:
            for source in list(sources):
                yield from self._joined(source, sources)
        if depth < self._max_depth and "blobs" in self._views:
            yield from self._blobs(sources, depth)

    def _sources(self, view: secret_views.View) -> list[secret_views.View]:
        """``view``, its JSON-unescaped form, and the URL-decoded form of each."""
        sources = [view]
        json_view = secret_views.json_unescaped(view) if "json" in self._views else None
        if json_view is not None:
            sources.append(json_view)
        if "url" in self._views:
            sources += [u for u in map(secret_views.url_decoded, list(sources)) if u is not None]
        return sources

    @staticmethod
    def _joined(source: secret_views.View, sources: list[secret_views.View]) -> Iterator[tuple[secret_views.View, bool]]:
        """``source`` with wrapped lines joined (as written, then by either parity); the plain
        join goes on ``sources``, for its blobs."""
        for parity in (None, 0, 1):
            joined = secret_views.joined(source, parity)
            if joined is None:
                break
            yield joined, True
            if parity is None:
                sources.append(joined)

    def _blobs(self, sources: list[secret_views.View], depth: int) -> Iterator[tuple[secret_views.View, bool]]:
        seen: set[tuple[int, int]] = set()  # where in the original: two blobs may hold one text
        for source in sources:
            for blob in secret_views.blobs(source):
                where = blob.to_root(0, len(blob.text))
                if where in seen:
                    continue  # the joined and decoded views hold the original's blobs again
                seen.add(where)
                yield blob, False
                yield from self._decoded(blob, depth + 1)

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


class _Claims:
    """Claimed spans, sorted and never overlapping (so their ends sort too)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.kinds: list[str] = []

    def _overlapping(self, start: int, end: int) -> tuple[int, int]:
        """Indexes [lo, hi) of the claims that overlap [start, end)."""
        lo = bisect.bisect_right(self.ends, start)
        hi = bisect.bisect_left(self.starts, end)
        return lo, max(lo, hi)

    def claim(self, start: int, end: int, kind: str) -> None:
        """Take the span unless an earlier (higher-priority) claim overlaps it."""
        lo, hi = self._overlapping(start, end)
        if lo == hi:
            self._insert(lo, start, end, kind)

    def merge(self, start: int, end: int, kind: str) -> None:
        """Take the span, joined with every claim it overlaps; the longest part names it."""
        lo, hi = self._overlapping(start, end)
        if lo < hi:
            if self.starts[lo] <= start and end <= self.ends[lo]:
                return  # already covered
            parts = [(end - start, kind)] + [(self.ends[i] - self.starts[i], self.kinds[i]) for i in range(lo, hi)]
            kind = max(parts, key=lambda p: p[0])[1]
            start, end = min(start, self.starts[lo]), max(end, self.ends[hi - 1])
            del self.starts[lo:hi], self.ends[lo:hi], self.kinds[lo:hi]
        self._insert(lo, start, end, kind)

    def _insert(self, i: int, start: int, end: int, kind: str) -> None:
        self.starts.insert(i, start)
        self.ends.insert(i, end)
        self.kinds.insert(i, kind)

    def findings(self) -> list[Finding]:
        return list(zip(self.starts, self.ends, self.kinds, strict=True))
