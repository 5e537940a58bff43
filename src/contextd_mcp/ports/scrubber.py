"""Port: removes secrets from text before it is stored or returned."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ScrubResult:
    """Scrubbed text plus what was removed (kinds only: never the secret itself)."""

    text: str
    redactions: int = 0
    kinds: tuple[str, ...] = field(default_factory=tuple)


class Scrubber(Protocol):
    def scrub(self, text: str) -> ScrubResult:
        """Return ``text`` with every secret replaced by ``[REDACTED:<kind>]``."""
        ...

    def has_secret(self, text: str) -> bool:
        """Whether ``scrub`` would change ``text``; cheaper, for the common clean case."""
        ...
