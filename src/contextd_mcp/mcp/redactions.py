"""Counts the secrets scrubbed during one tool call, wherever in the call they were scrubbed.

Services scrub what they store (memories, checkpoints, skills, ...) through the same
``Scrubber`` the container hands them; wrapping it here lets the audit line report
those redactions too, without each service reporting them and without scrubbing
the arguments a second time. The counter lives in a context variable: the worker
thread a tool runs in inherits it (anyio copies the context), parallel calls do not
share it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from contextd_mcp.ports.scrubber import Scrubber, ScrubResult

_COUNT: ContextVar[list[int] | None] = ContextVar("contextd_redactions", default=None)


class CountingScrubber:
    """A ``Scrubber`` that adds each redaction to the current call's counter."""

    def __init__(self, inner: Scrubber) -> None:
        self.inner = inner

    def scrub(self, text: str) -> ScrubResult:
        result = self.inner.scrub(text)
        if result.redactions:
            counter = _COUNT.get()
            if counter is not None:
                counter[0] += result.redactions
        return result

    def has_secret(self, text: str) -> bool:
        return self.inner.has_secret(text)


@contextmanager
def counting() -> Iterator[list[int]]:
    """``[n]``: the redactions made while the block runs (in this context and its worker threads)."""
    counter = [0]
    token = _COUNT.set(counter)
    try:
        yield counter
    finally:
        _COUNT.reset(token)
