"""The export file: one header line, then one record per line (JSONL), and its validation.

A record line is ``{"kind": ..., "id": ..., "payload": {...}}`` with, for a memory, its
``keys`` (the learned and negative ones: the others are derived from its texts) and, for a
remediation, its ``texts``. Vectors are never in the file: the importing daemon recomputes
them from the texts with its own model (an export stays valid across a model change).

Every line is checked before anything is written: its size, its JSON, its kind, its owner
(the tenant must be the header's), and, for a memory, its texts by the same model as
``memory_store`` (lengths, tags, counts), so an import cannot store what the tool refuses.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contextd_mcp import limits
from contextd_mcp.models.requests import StoreMemory
from contextd_mcp.models.scope import ANY, Scope
from contextd_mcp.models.strict import Strict

FORMAT = "contextd-export"
FORMAT_VERSION = 1

# Kind in the file → the collection it is stored in; the order is the file's order.
KINDS: dict[str, str] = {
    "memory": "memories",
    "remediation": "remediations",
    "policy": "policies",
    "skill": "skills",
    "agent": "agents",
    "checkpoint": "checkpoints",
    "session": "sessions",
    "transcript_mark": "transcript_marks",
}
OWNER = ("tenant", "team", "project")


class BadLine(ValueError):
    """A line of an import file that cannot be imported; the message names the field and rule."""


class Header(Strict):
    format: str
    version: int
    tool_version: str
    scope: dict[str, str | None]
    kinds: list[str]
    counts: dict[str, int]
    created_at: str
    scrubbed: str
    redacted_on_export: int = 0
    vectors: str


class LearnedKey(Strict):
    kind: Annotated[str, Field(pattern="^(learned|negative)$")]
    text: Annotated[str, Field(min_length=1, max_length=limits.KEY_TEXT_CHARS)]
    created_ts: float


class Event(BaseModel):
    # Events came from this daemon's own feedback; unknown fields are kept (a newer version's).
    model_config = ConfigDict(extra="allow")
    ts: float
    kind: Annotated[str, Field(max_length=32)]
    helpful: bool


class MemoryNumbers(BaseModel):
    """The learned state of a memory: its Beta belief and counters."""

    model_config = ConfigDict(extra="ignore")
    alpha: Annotated[float, Field(gt=0, le=1e6)]
    beta: Annotated[float, Field(gt=0, le=1e6)]
    helpful_count: Annotated[int, Field(ge=0)] = 0
    unhelpful_count: Annotated[int, Field(ge=0)] = 0
    uses_succeeded: Annotated[int, Field(ge=0)] = 0
    uses_failed: Annotated[int, Field(ge=0)] = 0
    reinforced_count: Annotated[int, Field(ge=0)] = 0
    created_ts: float
    updated_ts: float
    events: Annotated[list[Event], Field(max_length=limits.MEMORY_EVENTS_MAX)] = Field(default_factory=list)


@dataclass(frozen=True)
class Line:
    """One validated record line."""

    number: int
    kind: str
    id: str
    payload: dict[str, Any]
    keys: list[dict[str, Any]]
    texts: dict[str, Any] | None


def header(
    scope: Mapping[str, str | None], kinds: list[str], counts: dict[str, int], created_at: str, version: str,
    redactions: int,
) -> str:
    return dumps(
        Header(
            format=FORMAT,
            version=FORMAT_VERSION,
            tool_version=version,
            scope=dict(scope),
            kinds=kinds,
            counts=counts,
            created_at=created_at,
            scrubbed="every text re-scrubbed on export by the secret scrubber (all the encodings it decodes)",
            redacted_on_export=redactions,
            vectors="not included: the importing daemon recomputes them from the texts with its own model",
        ).model_dump()
    )


def dumps(value: object) -> str:
    """One line, keys sorted: the same records give the same bytes (diffable, round-trips)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def parse_header(raw: bytes) -> Header:
    try:
        head = Header.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise BadLine(f"header: not a contextd export header ({_first_error(exc)})") from None
    if head.format != FORMAT or head.version != FORMAT_VERSION:
        raise BadLine(f"header: format {head.format!r} version {head.version} (this contextd reads {FORMAT} {FORMAT_VERSION})")
    if not head.scope.get("tenant"):
        raise BadLine("header.scope.tenant: required")
    return head


def check_file(path: Path) -> None:
    """The file opens and its first line is an export header (OSError or BadLine otherwise): what
    an import refuses first, checked by the CLI before it loads a store and a model for it."""
    with path.open("rb") as stream:
        first = stream.readline(limits.TRANSFER_LINE_MAX_BYTES + 1)
    if not first:
        raise BadLine("line 1: the file is empty (no header)")
    parse_header(first.rstrip(b"\n"))


def parse_line(number: int, raw: bytes, tenant: str) -> Line:
    """A record line, checked; ``tenant`` is the header's: a record naming another is refused."""
    if len(raw) > limits.TRANSFER_LINE_MAX_BYTES:
        raise BadLine(f"line {number}: {len(raw)} bytes, over the {limits.TRANSFER_LINE_MAX_BYTES}-byte line limit")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadLine(f"line {number}: not JSON ({exc})") from None
    if not isinstance(value, dict) or set(value) - {"kind", "id", "payload", "keys", "texts"}:
        raise BadLine(f"line {number}: a record is an object with kind, id, payload (keys, texts)")
    kind, ident, payload = value.get("kind"), value.get("id"), value.get("payload")
    if kind not in KINDS:
        raise BadLine(f"line {number}: kind: must be one of {', '.join(KINDS)}")
    if not isinstance(ident, str) or not _is_uuid(ident):
        raise BadLine(f"line {number}: id: must be a UUID")
    if not isinstance(payload, dict):
        raise BadLine(f"line {number}: payload: must be an object")
    _check_owner(number, payload, tenant)
    keys = value.get("keys") or []
    texts = value.get("texts")
    if kind == "memory":
        _check_memory(number, payload, keys)
    elif keys:
        raise BadLine(f"line {number}: keys: only a memory has keys")
    if texts is not None and (kind != "remediation" or not isinstance(texts, dict)):
        raise BadLine(f"line {number}: texts: only a remediation has texts (an object)")
    return Line(number, kind, ident, payload, keys, texts)


def _check_owner(number: int, payload: Mapping[str, Any], tenant: str) -> None:
    if payload.get("tenant") != tenant:
        raise BadLine(f"line {number}: payload.tenant: must be the file's tenant {tenant!r} (one tenant per file)")
    owner = {part: payload.get(part) for part in ("team", "project")}
    try:  # a level-owned record (skill, agent, policy) has ANY below its level
        Scope.model_validate({"tenant": tenant, **{part: "any" if value == ANY else value for part, value in owner.items()}})
    except (ValidationError, TypeError) as exc:
        raise BadLine(f"line {number}: payload.{_first_error(exc)}") from None


def _check_memory(number: int, payload: Mapping[str, Any], keys: object) -> None:
    texts = {k: payload.get(k) for k in ("title", "content", "description", "outcome", "tags", "applies_when")}
    try:
        StoreMemory.model_validate({k: v for k, v in texts.items() if v is not None})
        MemoryNumbers.model_validate(payload)
        if not isinstance(keys, list):
            raise BadLine(f"line {number}: keys: must be a list")
        cap = limits.LEARNED_KEYS_MAX + limits.NEGATIVE_KEYS_MAX
        if len(keys) > cap:
            raise BadLine(f"line {number}: keys: at most {cap} learned and negative keys")
        for key in keys:
            LearnedKey.model_validate(key)
    except ValidationError as exc:
        raise BadLine(f"line {number}: {_first_error(exc)}") from None


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) <= limits.ID_MAX


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "value"
        return f"{where}: {error['msg']}"
    return str(exc)
