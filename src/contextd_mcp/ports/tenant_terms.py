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

Limits. The engine's IDF, ``ln(1 + (N - n + 0.5) / (n + 0.5))``, also takes N, the number of
records in the collection, every tenant's: how *many* records others hold moves a tenant's
lexical scores slightly (not which words they hold; tests/isolation/test_term_statistics.py pins
it as known). Closing it needs N per tenant: a sparse vector name per tenant, or IDF computed
here from per-tenant counts. And the hash is public, so a tenant who knows another's tenant name could craft a word
whose index lands on one of that tenant's terms (crc32 can be forced) and watch that one term's
frequency; a keyed hash with a per-store secret would close that too (not done: the secret
would have to live as long as the store).

Nothing sparse is shared across tenants: only remediations and memory keys carry sparse
vectors, and both are read at most at org reach, inside one tenant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from contextd_mcp.ports.vector_store import Sparse

# The layout a collection's sparse vectors are in (kept with the collection by the adapter);
# collections written before hold plain term indexes and are rewritten once at open.
LAYOUT = "tenant-xor-1"


def tenant_key(tenant: str) -> int:
    return int.from_bytes(hashlib.blake2b(tenant.encode(), digest_size=4, person=b"ctxd-terms").digest(), "big")


def for_tenant(sparse: Sparse, tenant: str) -> dict[int, float]:
    """``sparse``'s terms in ``tenant``'s part of the index space (its own inverse, too)."""
    key = tenant_key(tenant)
    return {index ^ key: weight for index, weight in sparse.items()}


def between(sparse: Sparse, old: str, new: str) -> dict[int, float]:
    """A record's terms moved from tenant ``old``'s layout to ``new``'s."""
    key = tenant_key(old) ^ tenant_key(new)
    return {index ^ key: weight for index, weight in sparse.items()}


def from_plain(payload: Mapping[str, Any], sparse: Sparse) -> dict[int, float]:
    """The one-time rewrite of a record stored with plain term indexes."""
    return for_tenant(sparse, str(payload["tenant"]))
