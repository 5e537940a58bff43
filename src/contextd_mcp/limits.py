"""Every size and count limit, in one place; schema.json documents them from here."""

from __future__ import annotations

TITLE_MAX = 200
DESCRIPTION_MAX = 500
CONTENT_MAX = 8000
COMMENT_MAX = 1000
QUERY_MAX = 2000
TAG_MAX = 48
TAGS_MAX = 16
SEARCH_LIMIT_MAX = 20
SEARCH_LIMIT_DEFAULT = 5
ID_MAX = 64
# Candidates fetched from the vector index per result before confidence re-ranking.
RERANK_FACTOR = 4
