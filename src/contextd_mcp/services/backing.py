"""What every service that keeps records stands on: one object, made once by the container.

Memories, skills, agents, sessions, checkpoints, branches, remediations and policies each need
the same four things: scope-bound store handles, the vector shape their collections are made
with (a store refuses a collection of another size or model), the scrubber their texts pass
through before they are stored, and a clock (tests pass a fake one). Each took them as four or
five arguments and spelled the size and model into its ``CollectionSpec``; now they take this.
Services that embed take the embedder beside it: the others never compute a vector.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from contextd_mcp.ports.embedder import Embedder
from contextd_mcp.ports.scoped_store import OWNER_FIELDS, Stores
from contextd_mcp.ports.scrubber import Scrubber
from contextd_mcp.ports.vector_store import CollectionSpec


@dataclass(frozen=True)
class Backing:
    stores: Stores
    dim: int
    model: str  # the embedding model of every collection made through ``spec``
    scrubber: Scrubber
    now: Callable[[], float] = time.time

    @classmethod
    def of(cls, stores: Stores, embedder: Embedder, scrubber: Scrubber, now: Callable[[], float] = time.time) -> Backing:
        """Collections shaped for ``embedder``'s vectors."""
        return cls(stores, embedder.dim, embedder.model_name, scrubber, now)

    def spec(
        self,
        name: str,
        keyword_fields: tuple[str, ...] = OWNER_FIELDS,
        float_fields: tuple[str, ...] = (),
        hot_fields: tuple[str, ...] = (),
        sparse: bool = False,
    ) -> CollectionSpec:
        """A collection of this backing's vector shape (fields: ``CollectionSpec``)."""
        return CollectionSpec(name, self.dim, self.model, keyword_fields, float_fields, sparse, hot_fields)
