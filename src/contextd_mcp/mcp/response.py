"""What leaves the server: scrubbed of secrets and capped in tokens."""

from __future__ import annotations

from typing import Any

from contextd_mcp.ports.embedder import TokenCounter
from contextd_mcp.ports.scrubber import Scrubber, scrub_all

TRUNCATION_MARK = " …[truncated]"


# No detector reads across a blank line, so a secret in any one string is a secret in the
# joined text (tests/mcp/test_response_scrub.py checks this on the whole secrets corpus).
_JOIN = "\n\n"


def scrub_tree(node: Any, scrubber: Scrubber) -> tuple[Any, int]:
    """``node`` with every string scrubbed, and the number of redactions.

    Nearly every tree is clean, and one pass over all its strings joined costs a fraction of
    a pass per string (a search response holds ~35 strings); only a tree with a secret in it
    is scrubbed string by string.
    """
    texts = [text for _, text in _string_leaves(node)]
    if not texts or not scrubber.has_secret(_JOIN.join(texts)):
        return node, 0
    return scrub_all(node, scrubber)


def _string_leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    if isinstance(node, str):
        return [(path, node)]
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _string_leaves(v, (*path, k))]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in _string_leaves(v, (*path, i))]
    return []


def _assign(node: Any, path: tuple[Any, ...], value: str) -> None:
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def cap_tree(data: Any, counter: TokenCounter, max_tokens: int, measure: Any) -> tuple[Any, bool]:
    """Shorten the longest strings until ``measure(data)`` fits in ``max_tokens``.

    Tools keep their answers small by design (field caps, result limits); this is the
    guarantee behind that, so a response can never flood the agent's context.
    """
    text = measure(data)
    # A WordPiece token spans at least one character: a text no longer than the cap fits,
    # and the common small response skips the tokenizer altogether.
    if len(text) <= max_tokens:
        return data, False
    total = counter.count(text)
    truncated = False
    for _ in range(64):
        if total <= max_tokens:
            break
        leaves = sorted(_string_leaves(data), key=lambda leaf: len(leaf[1]), reverse=True)
        if not leaves:
            break
        path, text = leaves[0]
        tokens = counter.count(text)
        keep = max(0, tokens - (total - max_tokens) - 8)
        shorter = counter.truncate(text, keep) + TRUNCATION_MARK if keep else TRUNCATION_MARK.strip()
        if shorter == text:
            break
        _assign(data, path, shorter)
        truncated = True
        total = counter.count(measure(data))
    return data, truncated
