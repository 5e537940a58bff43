"""scrub_tree's one-pass check over joined strings never misses what a per-string pass finds."""

from __future__ import annotations

import random

from contextd_mcp.adapters.secret_scrubber import RegexScrubber
from contextd_mcp.mcp.response import scrub_tree
from tests.data.secrets import secret_corpus as corpus


def test_a_secret_in_any_string_is_found_in_the_joined_text() -> None:
    scrubber = RegexScrubber()
    rng = random.Random(5)
    clean = [n.text for n in corpus.negatives()] + ["", "x", "key", "=", "token:", "https://", "-----", "a" * 40]
    for positive in corpus.positives():
        for _ in range(3):
            before, after = rng.sample(clean, 2)
            tree = {"id": "3f1c", "items": [{"title": before, "text": positive.text}, after], "n": 3}
            scrubbed, redactions = scrub_tree(tree, scrubber)
            assert redactions == len(positive.kinds), positive.family
            assert not any(secret in repr(scrubbed) for secret in positive.secrets), positive.family


def test_a_clean_tree_comes_back_unchanged_with_no_redactions() -> None:
    tree = {"hits": [{"title": n.text, "tags": ["a", "b"], "score": 0.5} for n in corpus.negatives()[:50]]}
    assert scrub_tree(tree, RegexScrubber()) == (tree, 0)


def test_an_encoded_secret_in_any_string_is_found_in_the_joined_text() -> None:
    """The decoded views (JSON, URL, joined lines, blobs) hold across the strings' separator too."""
    from tests.data.secrets import encoded_corpus

    scrubber = RegexScrubber()
    rng = random.Random(6)
    clean = [n.text for n in corpus.negatives()] + ["", "x", "\\", "%", "abcdefghijklmnop", "-----"]
    for sample in encoded_corpus.samples():
        before, after = rng.sample(clean, 2)
        tree = {"items": [{"title": before, "text": sample.text}, after]}
        scrubbed, redactions = scrub_tree(tree, scrubber)
        assert redactions >= 1 and not sample.leaks(scrubbed["items"][0]["text"]), (sample.kind, sample.encoding)
