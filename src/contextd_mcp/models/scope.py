"""Who owns a piece of data: tenant ⊃ team ⊃ project."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ScopeLevel(StrEnum):
    """How wide a read reaches inside the caller's own tenant."""

    project = "project"
    team = "team"
    org = "org"


class Scope(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant: str
    team: str = "default"
    project: str

    @field_validator("tenant", "team", "project")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-64 characters of letters, digits, '.', '_' or '-'")
        return value

    def fields(self) -> dict[str, str]:
        return {"tenant": self.tenant, "team": self.team, "project": self.project}

    def read_filter(self, level: ScopeLevel = ScopeLevel.project) -> dict[str, str]:
        """Payload equalities a read at ``level`` must match. The tenant is always in it."""
        if level is ScopeLevel.org:
            return {"tenant": self.tenant}
        if level is ScopeLevel.team:
            return {"tenant": self.tenant, "team": self.team}
        return self.fields()
