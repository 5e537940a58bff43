"""Skills as MCP prompts: prompts/list shows the skills that apply to the caller,
prompts/get renders one with its arguments (and counts a use, unless the caller is read-only).

Prompt names are unique in a listing: when two levels hold a skill of the same name, the one
closest to the caller keeps the bare name and the others are qualified ("review@org").
"""

from __future__ import annotations

from collections.abc import Callable

import mcp_types as types

from contextd_mcp.errors import Denied
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.models.agent import Access, Kind
from contextd_mcp.ports.scrubber import Scrubber
from contextd_mcp.services import levels
from contextd_mcp.services.skills import SkillService

AccessCheck = Callable[[Caller, Kind, Access], None]


def _check_nothing(caller: Caller, kind: Kind, mode: Access) -> None:
    return None


class SkillPrompts:
    def __init__(self, skills: SkillService, scrubber: Scrubber, check: AccessCheck = _check_nothing) -> None:
        self._skills = skills
        self._scrubber = scrubber
        self._check = check

    def list_prompts(self, caller: Caller) -> list[types.Prompt]:
        try:
            self._check(caller, Kind.skills, Access.read)
        except Denied:
            return []  # an agent that may not read skills is offered none; prompts/get says why
        records = self._skills.visible(caller.scope)
        records.sort(key=lambda r: (r.payload["name_key"], levels.specificity(r.payload)))
        names = levels.qualified_names([r.payload for r in records])
        return [
            types.Prompt(
                name=name,
                description=r.payload["description"],
                arguments=[
                    types.PromptArgument(name=a["name"], required=a["required"]) for a in r.payload["arguments"]
                ],
            )
            for name, r in zip(names, records, strict=True)
        ]

    def get_prompt(self, caller: Caller, name: str, arguments: dict[str, str]) -> types.GetPromptResult:
        self._check(caller, Kind.skills, Access.read)
        # A read-only identity writes nothing at all, the use counter included.
        record, text = self._skills.render(caller.scope, name, arguments, count_use=not caller.read_only)
        return types.GetPromptResult(
            description=record.payload["description"],
            messages=[
                types.PromptMessage(role="user", content=types.TextContent(type="text", text=self._scrubber.scrub(text).text))
            ],
        )
