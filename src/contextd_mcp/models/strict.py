"""The base of every request model: an argument the tool does not know is an error that names
it, not silently dropped (a misspelt ``limit`` would otherwise run with the default)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
