"""Port: removes secrets from text before it is stored or returned."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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


def scrub_all(node: Any, scrubber: Scrubber) -> tuple[Any, int]:
    """A copy of ``node`` (JSON-like: dicts, lists, scalars) with every string in it scrubbed,
    and the number of redactions."""
    if isinstance(node, str):
        result = scrubber.scrub(node)
        return result.text, result.redactions
    if isinstance(node, dict):
        total = 0
        out: dict[str, Any] = {}
        for key, value in node.items():
            out[key], n = scrub_all(value, scrubber)
            total += n
        return out, total
    if isinstance(node, list):
        total = 0
        items = []
        for value in node:
            item, n = scrub_all(value, scrubber)
            items.append(item)
            total += n
        return items, total
    return node, 0
