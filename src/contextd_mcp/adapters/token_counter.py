"""Counts tokens with the embedding model's own WordPiece tokenizer.

Every cap and budget in contextd uses this one counter, so a figure in one place
means the same as in another. It is close to, not equal to, an LLM's token count
(measured on English prose and code, within about 15 %; see BENCHMARKS.md).
"""

from __future__ import annotations

import functools
from pathlib import Path

from tokenizers import Tokenizer

_TOKENIZER = Path(__file__).with_name("minilm") / "tokenizer.json"


@functools.cache
def _load(tokenizer_file: Path) -> Tokenizer:
    """One tokenizer per file and process, shared by every counter (the container built three):
    parsing tokenizer.json took 215 ms a time here, and encoding never changes it."""
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class WordPieceTokenCounter:
    def __init__(self, tokenizer_file: Path = _TOKENIZER) -> None:
        self._tokenizer = _load(tokenizer_file)

    def count(self, text: str) -> int:
        if not text:
            return 0
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        if len(encoding.ids) <= max_tokens:
            return text
        cut = encoding.offsets[max_tokens][0]
        # Never mid-word: back up to the last whitespace before the cut.
        space = text.rfind(" ", 0, cut + 1)
        newline = text.rfind("\n", 0, cut + 1)
        boundary = max(space, newline)
        return text[: boundary if boundary > 0 else 0].rstrip()
