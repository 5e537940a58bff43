"""Who owns a piece of data: tenant ⊃ team ⊃ project."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

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


# Ownership by level, for kinds shared across a team or org (skills, agents): a record owned by
# a level keeps the tenant and replaces the parts below its level with ANY, which no scope name
# can be (services/levels.py says what the levels mean; these two live here because the
# scope-bound store handle filters by them too).
ANY = "*"


def owner_fields(scope: Scope, level: ScopeLevel) -> dict[str, str]:
    if level is ScopeLevel.org:
        return {"tenant": scope.tenant, "team": ANY, "project": ANY}
    if level is ScopeLevel.team:
        return {"tenant": scope.tenant, "team": scope.team, "project": ANY}
    return scope.fields()


def visible_where(scope: Scope, reach: ScopeLevel) -> dict[str, Any]:
    """What a caller sees: at ``project`` reach, what applies to it; wider, its team's / org's too."""
    if reach is ScopeLevel.org:
        return {"tenant": scope.tenant}
    if reach is ScopeLevel.team:
        return {"tenant": scope.tenant, "team": [scope.team, ANY]}
    return {"tenant": scope.tenant, "team": [scope.team, ANY], "project": [scope.project, ANY]}
