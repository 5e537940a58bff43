"""Secrets are scrubbed on the way in (every stored text) and on the way out (every result).

Driven from the tool registry: every tool that writes is called through the real MCP
client with secrets planted in each of its text arguments, and afterwards no byte of
any secret may be anywhere in the data directory (store WAL, segments, audit log,
queues), while the stored text holds a ``[REDACTED:<kind>]`` marker. A new writing
tool is covered automatically when its registry ``example`` works on an empty store
(ids it needs are made by its group's create/start/save tool); otherwise this test
fails until the tool gets a case here.
"""

from __future__ import annotations

import json
import random
import string
import uuid
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.container import Container
from contextd_mcp.mcp.caller import CURRENT_CALLER, Caller
from contextd_mcp.mcp.registry import ToolDef, input_schema
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services.memory import COLLECTION
from tests.conftest import SCOPE_A
from tests.helpers import data, error_text

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.data.secrets import secret_corpus

pytestmark = pytest.mark.anyio

# Tools whose text is run, not stored; what they return is scrubbed by the runner like every
# result (bash output: tests/e2e/test_scrubbing_e2e.py, through the real daemon and sandbox).
NOT_STORED = {"bash"}
# Tools that make a new object of their group (the ids other tools of the group need).
CREATORS = ("_create", "_start", "_save", "_store", "_record")


def aws_key(rng: random.Random) -> str:
    return "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))


def one_per_family() -> list[secret_corpus.Positive]:
    """A generated true positive for every rule family of the scrubber's corpus (gitleaks' families)."""
    seen: dict[str, secret_corpus.Positive] = {}
    for sample in secret_corpus.positives(seed=8):
        if sample.family not in seen and len(sample.kinds) == 1 and len(sample.text) < 1500:
            seen[sample.family] = sample
    return list(seen.values())


def files_holding(root: Path, needles: list[str]) -> dict[str, list[str]]:
    """Each needle → the files under ``root`` that hold it. Every file is read once for all the
    needles: a store is tens of MB, and reading it again per secret (dozens) was most of these
    tests' time."""
    found: dict[str, list[str]] = {needle: [] for needle in needles}
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        content = path.read_bytes()
        for needle in needles:
            if needle.encode() in content:
                found[needle].append(str(path.relative_to(root)))
    return found


@asynccontextmanager
async def connect(container: Container) -> AsyncIterator[Any]:
    from mcp import Client

    # A connection id, as the socket gives: per-connection state (the current session) keys on it.
    token = CURRENT_CALLER.set(Caller(scope=SCOPE_A, transport="memory", connection_id=uuid.uuid4().hex[:12]))
    try:
        async with Client(container.server()) as client:
            yield client
    finally:
        CURRENT_CALLER.reset(token)


# --- in: memories, every family ------------------------------------------------------------


async def test_every_secret_family_is_redacted_in_a_stored_memory(client: Any, container: Container) -> None:
    samples = one_per_family()
    assert len(samples) >= 30, [s.family for s in samples]
    for sample in samples:
        stored = data(await client.call_tool("memory_store", {"title": f"Config for {sample.family}", "content": sample.text}))
        memory = data(await client.call_tool("memory_get", {"memory_id": stored["id"]}))
        for secret in sample.secrets:
            assert secret not in memory["content"], sample.family
        for kind in sample.kinds:
            assert f"[REDACTED:{kind}]" in memory["content"], (sample.family, memory["content"])
    container.store.flush()
    on_disk = files_holding(container.paths.root, [secret for sample in samples for secret in sample.secrets])
    for sample in samples:
        for secret in sample.secrets:
            assert on_disk[secret] == [], sample.family
    stores = [e for e in map(json.loads, container.paths.audit.read_text().splitlines()) if e["tool"] == "memory_store"]
    assert sum(e["redactions_in"] for e in stores) >= len(samples)


# --- in: every writing tool in the registry ------------------------------------------------


def _with_secret(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return f"{value} key {secret}"
    if isinstance(value, list):
        return [_with_secret(v, secret) for v in value]
    if isinstance(value, dict):
        return {k: _with_secret(v, secret) for k, v in value.items()}
    return value


def _is_text(schema: dict[str, Any]) -> bool:
    """Free text: a string with no enum / pattern / format, or a list or map of such strings."""
    if any(_is_text(option) for option in schema.get("anyOf", [])):
        return True
    if schema.get("type") == "string":
        return not ({"enum", "pattern", "format", "const"} & schema.keys())
    if schema.get("type") == "array":
        return _is_text(schema.get("items", {}))
    if schema.get("type") == "object":
        return _is_text(schema.get("additionalProperties") or {})
    return False


def _text_fields(tool: ToolDef) -> list[str]:
    properties = input_schema(tool).get("properties", {})
    return [k for k, v in properties.items() if _is_text(v) and not k.endswith("_id") and k != "name"]


def _sample(schema: dict[str, Any], secret: str) -> Any:
    kind = next((o.get("type") for o in schema.get("anyOf", []) if o.get("type") != "null"), schema.get("type"))
    if kind == "array":
        return [f"note key {secret}"]
    if kind == "object":
        return {"note": f"key {secret}"}
    return f"note key {secret}"


def _creator(tool: ToolDef, tools: dict[str, ToolDef]) -> ToolDef | None:
    group = tool.name.split("_", 1)[0]
    for suffix in CREATORS:
        found = tools.get(f"{group}{suffix}")
        if found is not None and found.name != tool.name:
            return found
    return None


def _id_of(result: dict[str, Any], field: str) -> str | None:
    for key in (field, "id", *[k for k in result if k.endswith("_id")]):
        if isinstance(result.get(key), str):
            return result[key]
    return None


async def _arguments(client: Any, tool: ToolDef, tools: dict[str, ToolDef]) -> dict[str, Any]:
    """The tool's example, with the ids it names made for real by its group's creator tool."""
    args = dict(tool.example)
    for field in [k for k in args if k.endswith("_id")]:
        creator = _creator(tool, tools)
        if creator is None:
            continue
        example = dict(creator.example)
        if isinstance(example.get("name"), str):  # the seeded object already has the example's name
            example["name"] = f"{example['name']}-{uuid.uuid4().hex[:6]}"
        created = await client.call_tool(creator.name, example)
        if not created.is_error:
            made = _id_of(data(created), field)
            if made:
                args[field] = made
    return args


async def _seed(client: Any, tools: dict[str, ToolDef]) -> None:
    """One object of every group (a session for this connection, the skill an agent example names...)."""
    for tool in tools.values():
        if tool.name.endswith(CREATORS):
            await client.call_tool(tool.name, dict(tool.example))


def _last_audit(container: Container) -> dict[str, Any]:
    return json.loads(container.paths.audit.read_text().splitlines()[-1])


async def _plant(client: Any, container: Container, tool: ToolDef, tools: dict[str, ToolDef], rng: random.Random,
                 attempt: int) -> dict[str, str]:
    """Calls ``tool`` with a secret in each text argument in turn; returns field → secret of accepted calls."""
    args = await _arguments(client, tool, tools)
    properties = input_schema(tool).get("properties", {})
    planted: dict[str, str] = {}
    for index, field in enumerate(_text_fields(tool)):
        secret = aws_key(rng)
        value = _with_secret(args[field], secret) if field in args else _sample(properties[field], secret)
        call = {**args, field: value}
        if isinstance(call.get("name"), str):  # names are unique per scope: one per call
            call["name"] = f"{call['name']}-{attempt}-{index}"
        result = await client.call_tool(tool.name, call)
        if result.is_error:
            continue  # this field does not take free text (a pattern, an enum), or ids are missing
        assert secret not in result.content[0].text, (tool.name, field)
        line = _last_audit(container)
        assert line["tool"] == tool.name and line["redactions_in"] >= 1, (tool.name, field, line)
        planted[field] = secret
    return planted


async def test_every_writing_tool_scrubs_what_it_stores(container: Container) -> None:
    rng = random.Random(11)
    tools = dict(container.runner.tools)
    # A writing tool with no free-text argument (feedback, delete) stores none of the caller's words.
    writers = [t for t in tools.values() if not t.read_only and t.name not in NOT_STORED and _text_fields(t)]
    assert "memory_store" in {t.name for t in writers}
    secrets: dict[tuple[str, str], str] = {}
    uncovered: list[str] = []
    async with connect(container) as client:
        await _seed(client, tools)
        for tool in writers:
            planted = await _plant(client, container, tool, tools, rng, 0)
            if not planted:  # an earlier tool may have ended what this one needs (a session): again, fresh
                await _seed(client, tools)
                planted = await _plant(client, container, tool, tools, rng, 1)
            if not planted:
                uncovered.append(tool.name)
            secrets.update({(tool.name, field): secret for field, secret in planted.items()})
    container.store.flush()
    on_disk = files_holding(container.paths.root, list(secrets.values()))
    for (name, field), secret in secrets.items():
        assert on_disk[secret] == [], (name, field)
    assert files_holding(container.paths.store, ["[REDACTED:aws-access-key]"])["[REDACTED:aws-access-key]"]
    assert not uncovered, (
        f"writing tools that accepted none of their text arguments: {uncovered}; give them a case here "
        "(e.g. their creator's suffix in CREATORS) so their stored text is checked"
    )


# --- out: what is already stored is scrubbed on return --------------------------------------


def _poison(container: Container, secret: str) -> int:
    """Appends ``secret`` to every free-text payload value of every stored record, bypassing services."""
    poisoned = 0
    for collection in container.store.describe().get("points", {}):
        for record in container.store.scan(collection, {}, limit=1000):
            fields = {k: f"{v} {secret}" for k, v in record.payload.items() if isinstance(v, str) and " " in v}
            if fields:
                container.store.set_fields(collection, record.id, fields, {})
                poisoned += 1
    return poisoned


async def test_every_reading_tool_scrubs_what_it_returns(container: Container) -> None:
    """Secrets already in the store (an old version, an import) never leave through any tool."""
    tools = dict(container.runner.tools)
    readers = [t for t in tools.values() if t.read_only]
    rng = random.Random(12)
    secret = "glpat-" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(20))
    redacted: list[str] = []
    async with connect(container) as client:
        await _seed(client, tools)
        for tool in readers:
            args = await _arguments(client, tool, tools)
            assert _poison(container, secret) > 0
            result = await client.call_tool(tool.name, args)
            assert secret not in json.dumps([c.model_dump() for c in result.content]), tool.name
            assert secret not in json.dumps(result.structured_content or {}), tool.name
            if _last_audit(container)["redactions_out"]:
                redacted.append(tool.name)
    # Each group's get/search returned stored text, so each redacted something.
    assert {"memory_get", "memory_search"} <= set(redacted), redacted
    assert len(redacted) >= len({t.name.split("_", 1)[0] for t in readers}), redacted


async def test_a_secret_planted_in_the_store_is_redacted_on_the_way_out(client: Any, container: Container) -> None:
    mid = data(await client.call_tool("memory_store", {"title": "Deploy key location", "content": "Ask ops for it."}))["id"]
    rng = random.Random(3)
    secret = "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
    # Bypass the service: as if an old version, an import or another writer stored it raw.
    container.store.set_fields(COLLECTION, mid, {"content": f"The deploy key is {secret} (rotate monthly)."}, {})
    memory = data(await client.call_tool("memory_get", {"memory_id": mid}))
    assert secret not in json.dumps(memory) and "[REDACTED:github-token]" in memory["content"]
    hits = data(await client.call_tool("memory_search", {"query": "where is the deploy key"}))
    assert secret not in json.dumps(hits)
    events = [json.loads(line) for line in container.paths.audit.read_text().splitlines()]
    get_line = [e for e in events if e["tool"] == "memory_get"][-1]
    assert get_line["redactions_out"] >= 1 and get_line["redactions"] >= 1 and get_line["redactions_in"] == 0


async def test_a_raw_record_with_secrets_everywhere_comes_out_clean(client: Any, container: Container) -> None:
    """Nested values too: tags (a list) and every string field of the record."""
    mid = data(await client.call_tool("memory_store", {"title": "Nested", "content": "Plain."}))["id"]
    [record] = container.store.get(COLLECTION, [mid], SCOPE_A.fields())
    jwt = secret_corpus.Gen(5).jwt()
    db_url = "postgres://app:Tr0ub4dor-and-3-horses@db.internal:5432/app"
    poisoned = {**record.payload, "title": f"uses {jwt}", "tags": [f"url {db_url}"], "description": jwt}
    container.store.upsert(COLLECTION, [Record(id=mid, payload=poisoned, vector=[0.0] * container.embedder.dim)])
    memory = data(await client.call_tool("memory_get", {"memory_id": mid}))
    text = json.dumps(memory)
    assert jwt not in text and "Tr0ub4dor-and-3-horses" not in text
    assert "[REDACTED:jwt]" in memory["title"] and "[REDACTED:url-password]" in memory["tags"][0]


async def test_error_messages_are_scrubbed_too(client: Any) -> None:
    rng = random.Random(4)
    secret = "xoxb-" + "-".join(str(rng.randint(10**11, 10**12)) for _ in range(2)) + "-" + "".join(
        rng.choice(string.ascii_letters + string.digits) for _ in range(24)
    )
    text = error_text(await client.call_tool("memory_get", {"memory_id": secret}))
    assert secret not in text
