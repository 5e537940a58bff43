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
# Toolsets (mcp/toolsets.py): the longest selection text (flag, env, header), and how many
# connections' run-time additions the daemon remembers (the oldest is forgotten first).
TOOLSETS_SPEC_MAX = 256
TOOLSET_CONNECTIONS_MAX = 4096
# Open subscriptions/listen streams (2026-07-28 clients hear tools/list_changed on one).
LISTEN_STREAMS_MAX = 256
# Candidates fetched from the vector index per result before confidence re-ranking.
RERANK_FACTOR = 4

# Memory keys (services/memory_keys.py): the texts a memory is found by.
APPLIES_WHEN_MAX = 8  # situations one memory_store may name
APPLIES_WHEN_CHARS = 200  # each
KEY_TEXT_CHARS = 300  # a task / error / learned query is clipped to this before it becomes a key
LEARNED_KEYS_MAX = 8  # queries rated helpful, kept per memory (the oldest goes first)
NEGATIVE_KEYS_MAX = 8  # queries rated unhelpful, kept per memory
MEMORY_EVENTS_MAX = 50  # feedback / outcome events kept per memory for curation
# Memories one memory was preferred over (services/memory_preferences.py), the newest kept.
MEMORY_PREFERENCES_MAX = 32
# memory_search results remembered for attributing later feedback (per process, newest kept).
SEARCHES_REMEMBERED = 2000
SEARCH_MEMORY_S = 6 * 3600  # and for at most this long
# How often the daemon gives the heap glibc keeps after frees back to the OS (container.py).
HEAP_RELEASE_S = 30.0

# Sessions and checkpoints (stdlib-only module: the Claude Code hook sizes its requests by these).
TASK_MAX = 2000
PATH_MAX = 1024
SUMMARY_MAX = 4000
LEARNINGS_MAX = 3  # also the most memories one session distils into
LEARNING_CONTENT_MAX = 1500
CHECKPOINT_SUMMARY_MAX = 2000
CHECKPOINT_CONTEXT_MAX = 16000
CHECKPOINT_FULL_MAX = 64000
CHECKPOINT_LIST_MAX = 50
# Everything session_start injects stays under this many tokens (WordPiece, the caps' counter).
INJECTION_MAX_TOKENS = 490
INJECTED_MEMORIES_MAX = 3

# Transports (the socket, in-process stdio; HTTP has its own in settings.HttpSettings).
# A bad line's error reply echoes its id when the id is at most this long (else null).
ECHOED_ID_MAX = 256
# How much of an oversize line is scanned for its "id" (it is never parsed whole).
ID_SCAN_BYTES = 4096
# A peer that does not take a reply within this many seconds loses its connection.
WRITE_TIMEOUT_S = 30

# Export and import (services/transfer_*.py): one record per line.
TRANSFER_LINE_MAX_BYTES = 1 << 20  # a checkpoint's full state is the largest record (~130 KB escaped)
TRANSFER_RECORDS_MAX = 1_000_000  # records of one kind read by an export, and lines read by an import
TRANSFER_BATCH = 64  # memories embedded and written together on import

# Indexing a live embedded collection (adapters/edge_indexing.py). Writes made while the child
# builds are kept in memory until the swap (a 384-d point with its payload: ≈ 2 KB); past this
# many points written the build is abandoned (the live shard has them all) rather than letting
# the log grow without bound: ≈ 100 MiB, 8 minutes of memory_store at 20/s with five keys each.
INDEX_OPLOG_MAX_POINTS = 50_000
# Sparse vectors rewritten per batch when a store's term layout changes (adapters/sparse_rewrite.py):
# the batch's results are journalled first (one fsync a batch), ≈ 25 bytes a term, ≈ 20 terms a
# record: a journal stays ≈ 1 MiB.
SPARSE_REWRITE_BATCH = 2000
INDEX_SWAP_TAIL_OPS = 64  # logged writes left for the swap itself, under the store's lock
# Free disk asked for before copying a shard: its size times this, plus this many bytes.
INDEX_DISK_FACTOR = 1.5
INDEX_DISK_SPARE_BYTES = 256 << 20
INDEX_RETRY_S = 600  # after a failed build, wait this long before trying again
# malloc arenas the daemon's threads share (adapters/malloc_arenas.py): glibc's default, 8 per
# core, let each worker thread keep its own freed memory (BENCHMARKS.md, "RSS under writes").
MALLOC_ARENAS = 2
# Bytes of the embedded store's files read ahead into the page cache as the daemon starts
# (adapters/edge_warm.py): the engine evicts them at every close, and a restart at 100k memories
# otherwise answers its first search after ~1 s of page faults. What is read is the pages the
# last daemon used (364 MiB at 100k after a few searches), else whole files, smallest first (the
# whole 100k store, 0.9 GiB on disk, fits). Page cache, not RSS: nothing is mapped. 0: off.
STORE_WARM_MAX_BYTES = 1 << 30
