"""Remediation tools: thin adapters over RemediationService."""

from __future__ import annotations

from pydantic import BaseModel

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import Handler, ToolSpec, in_scope
from contextd_mcp.models.remediation import (
    GetRemediation,
    RecordedRemediation,
    RecordRemediation,
    Remediation,
    RemediationConfidence,
    RemediationFeedback,
    RemediationHit,
    SearchRemediations,
)
from contextd_mcp.services.remediation import RemediationService

_ID = "0b7d3c52-9a41-4e0f-8c6e-2f5a1d9b7e34"
_TITLE = "ModuleNotFoundError: No module named 'yaml'"
_PROBLEM = "Traceback (most recent call last):\n  File \"/srv/app/cli.py\", line 3, in <module>\n    import yaml\nModuleNotFoundError: No module named 'yaml'"
_SOLUTION = "The distribution is PyYAML, not yaml: `python -m pip install PyYAML` and add PyYAML>=6 to the dependencies."


class RemediationSearchResult(BaseModel):
    remediations: list[RemediationHit]


# The tools of this module, as data: schema.json / TOOL.md render these without any service.
SPECS = (
    ToolSpec(
        "remediation_record",
        "Record how an error was fixed, so the fix is found when the error recurs (with other "
        "paths, line numbers, versions). Secrets are redacted.",
        RecordRemediation,
        RecordedRemediation,
        example={"title": _TITLE, "problem": _PROBLEM, "solution": _SOLUTION, "tags": ["python", "pip"]},
        example_result={
            "id": _ID,
            "category": "dependency",
            "category_inferred": True,
            "confidence": 0.6667,
            "duplicate_of_existing": False,
        },
    ),
    ToolSpec(
        "remediation_search",
        "Find recorded fixes for an error: paste the error output as is. Matches error classes, "
        "codes and package names as well as meaning.",
        SearchRemediations,
        RemediationSearchResult,
        read_only=True,
        idempotent=True,
        example={"error": "E   ModuleNotFoundError: No module named 'yaml'", "context": "pytest in CI", "limit": 3},
        example_result={
            "remediations": [
                {
                    "id": _ID,
                    "title": _TITLE,
                    "category": "dependency",
                    "problem": _PROBLEM[:120] + "…",
                    "solution": _SOLUTION,
                    "confidence": 0.75,
                    "relevance": 1.0,
                    "score": 0.925,
                    "tags": ["python", "pip"],
                    "scope": "project",
                }
            ]
        },
    ),
    ToolSpec(
        "remediation_get",
        "Fetch one recorded fix in full (root cause, diff, files, counts).",
        GetRemediation,
        Remediation,
        read_only=True,
        idempotent=True,
        example={"remediation_id": _ID},
        example_result={
            "id": _ID,
            "title": _TITLE,
            "category": "dependency",
            "problem": _PROBLEM,
            "solution": _SOLUTION,
            "root_cause": "The import name is yaml but the distribution is PyYAML; it was never declared.",
            "symptoms": [],
            "code_diff": None,
            "affected_files": ["pyproject.toml"],
            "tags": ["python", "pip"],
            "confidence": 0.75,
            "helpful_count": 1,
            "unhelpful_count": 0,
            "scope": "project",
            "created_at": "2026-11-27T09:00:00+00:00",
            "updated_at": "2026-11-27T09:05:00+00:00",
        },
    ),
    ToolSpec(
        "remediation_feedback",
        "Report whether a fix solved the error: helpful raises its confidence, unhelpful lowers it "
        "(4 unhelpful hide a new fix).",
        RemediationFeedback,
        RemediationConfidence,
        example={"remediation_id": _ID, "helpful": True},
        example_result={"id": _ID, "confidence": 0.75, "hidden_from_search": False},
    ),
)


def remediation_tools(service: RemediationService) -> dict[str, Handler]:
    def search(caller: Caller, req: SearchRemediations) -> RemediationSearchResult:
        return RemediationSearchResult(remediations=service.search(caller.scope, req))

    return {
        "remediation_record": in_scope(service.record),
        "remediation_search": search,
        "remediation_get": in_scope(service.get),
        "remediation_feedback": in_scope(service.feedback),
    }
