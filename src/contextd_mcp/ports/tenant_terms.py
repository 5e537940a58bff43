"""Per-tenant term indexes: the lexical statistic a store keeps counts one tenant's records.

A sparse vector's indexes are hashed terms (``services.error_text.term_index``), and the engine
scales a query's terms by their inverse document frequency over the whole collection. Stored
as they are, tenant A's records would change the weights, and so the scores and near-tie order,
of tenant B's lexical searches: B could probe whether A's records hold a word by watching its
own scores. So each tenant's terms live in their own part of the index space: an index is XORed
with a 32-bit hash of the record's tenant when written, and a query's with the caller's tenant
(``ScopedStore``, the one place that knows both). XOR with a constant is a bijection of the u32
space: a term's document frequency counts that tenant's records only, up to hash collisions
between tenants' vocabularies (as likely as within one).

The tenant's hash is keyed with a random secret kept with each collection (``VectorStore.term_key``,
made when the collection first needs it, stored beside its term layout): with a public hash a
tenant who knows another's tenant name could craft a word whose index lands on one chosen term of
theirs (crc32 can be forced) and watch that term's frequency; without the key the offset between
two tenants' spaces is unknown.

Limits. The engine's IDF, ``ln(1 + (N - n + 0.5) / (n + 0.5))``, also takes N, the number of
records in the collection, every tenant's: how *many* records others hold moves a tenant's
lexical scores slightly (not which words they hold; tests/isolation/test_term_statistics.py pins
it as known). Closing it needs N per tenant: a sparse vector name per tenant, or IDF computed
here from per-tenant counts.

Nothing sparse is shared across tenants: only remediations and memory keys carry sparse
vectors, and both are read at most at org reach, inside one tenant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from contextd_mcp.ports.vector_store import Sparse, SparseRemap

# The layout a collection's sparse vectors are in (kept with the collection by the adapter);
# collections written before hold plain term indexes and are rewritten once at open.
LAYOUT = "tenant-keyed-1"


def tenant_key(tenant: str, secret: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(tenant.encode(), digest_size=4, key=secret, person=b"ctxd-terms").digest(), "big")


def for_tenant(sparse: Sparse, tenant: str, secret: bytes) -> dict[int, float]:
    """``sparse``'s terms in ``tenant``'s part of the index space (its own inverse, too)."""
    key = tenant_key(tenant, secret)
    return {index ^ key: weight for index, weight in sparse.items()}


def between(sparse: Sparse, old: str, new: str, secret: bytes) -> dict[int, float]:
    """A record's terms moved from tenant ``old``'s layout to ``new``'s."""
    key = tenant_key(old, secret) ^ tenant_key(new, secret)
    return {index ^ key: weight for index, weight in sparse.items()}


def from_plain(secret: bytes) -> SparseRemap:
    """The one-time rewrite of records stored with plain term indexes."""

    def remap(payload: Mapping[str, Any], sparse: Sparse) -> dict[int, float]:
        return for_tenant(sparse, str(payload["tenant"]), secret)

    return remap
