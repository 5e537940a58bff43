"""Encoded secrets through every storing tool of the real daemon, then looked for on disk.

Each sample of tests/data/secrets/encoded_corpus.py (21 kinds × 8 encodings) is sent, in
batches that fit the field's cap, through the real MCP client over the daemon's socket to
memory_store, checkpoint_save, remediation_record, skill_create, agent_create,
session_end (summary), branch_return (message) and bash (output of `cat`, run in the real
sandbox). Then the daemon is stopped and every file of its data directory (store WAL,
payload storage, segments, queues, audit log) is searched for each raw secret and each of
its encoded forms. Before the decoded views (27483c0) 84 of 151 samples reached disk
through each tool (recall 0.44); what a tool returns is checked the same way.
"""

from __future__ import annotations

import json
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.data.secrets import encoded_corpus as ec
from tests.e2e.daemons import socket_client, start_daemon
from tests.helpers import data

pytestmark = pytest.mark.anyio

# Same floors as tests/adapters/test_encoded_secrets.py: the tools share one scrubber.
RECALL_FLOOR = {"wrapped": 0.95, "embedded": 0.95}
SEP = "\n\n"  # no detector or joined view reads across a blank line: samples stay apart


def tag(sample: ec.Sample) -> str:
    """A line before each sample: whether it arrived (a tool may cap what it keeps) is checked by it."""
    return f"[sample {sample.kind} {sample.encoding} {zlib.crc32(sample.text.encode()):08x}]"


def tagged(sample: ec.Sample) -> str:
    return f"{tag(sample)}\n{sample.text}"


def batches(samples: list[ec.Sample], cap: int) -> Iterator[list[ec.Sample]]:
    """Samples in order, as many to a call as the field's cap takes."""
    batch: list[ec.Sample] = []
    size = 0
    for sample in samples:
        length = len(SEP) + len(tagged(sample))  # one longer than ``cap`` goes alone
        if batch and size + length > cap:
            yield batch
            batch, size = [], 0
        batch.append(sample)
        size += length
    if batch:
        yield batch


def text_of(batch: list[ec.Sample]) -> str:
    return SEP.join(map(tagged, batch))


async def _store(client: Any, tool: str, text: str, n: int, project_dir: Path) -> str:
    """Calls ``tool`` with ``text`` in its free-text field; returns what the tool answered."""
    if tool == "session_end":
        data(await client.call_tool("session_start", {"task": f"encoded secrets batch {n}"}))
        result = await client.call_tool("session_end", {"outcome": "success", "summary": text})
    elif tool == "branch_return":
        data(await client.call_tool("session_start", {"task": f"branch batch {n}"}))
        branch = data(await client.call_tool("branch_create", {"description": f"batch {n}", "budget": 4096}))
        result = await client.call_tool("branch_return", {"branch_id": branch["branch_id"], "message": text})
        data(await client.call_tool("session_end", {"outcome": "success"}))
    elif tool == "bash":
        (project_dir / f"out-{n}.txt").write_text(text)  # the secret is in the output only
        result = await client.call_tool("bash", {"command": f"cat out-{n}.txt"})
    else:
        args = {
            "memory_store": {"title": f"tool output {n}", "content": text},
            "checkpoint_save": {"summary": f"batch {n}", "context": text},
            "remediation_record": {"title": f"fix {n}", "problem": text, "solution": "rotate the credential"},
            "skill_create": {"name": f"deploy-{n}", "description": "deploy", "prompt_template": text},
            "agent_create": {"name": f"ops-{n}", "description": "ops", "system_prompt": text},
        }[tool]
        result = await client.call_tool(tool, args)
    body = data(result)
    return json.dumps(body)


TOOLS = {  # tool -> characters per call: the cap of the field the text goes in (schema.json),
    # or less where the tool keeps less: branch_return keeps 1,000 tokens of its message, and
    # bash's answer is capped in tokens like every response (a sample cut off is not judged).
    "memory_store": 8000,
    "checkpoint_save": 16000,
    "remediation_record": 8000,
    "skill_create": 8000,
    "agent_create": 16000,
    "session_end": 4000,
    "branch_return": 1500,
    "bash": 3000,
}


def _needles(sample: ec.Sample) -> list[str]:
    return [n for n in (sample.secret, *sample.needles) if n and "\n" not in n]  # a key body: its lines


def _on_disk(root: Path, corpus: list[ec.Sample], tmp: Path) -> set[str]:
    """The needles (and tags) found in any file under ``root``, by grep -F (Aho-Corasick over the store's
    segments, WAL and payload storage: Python's ``in`` over them takes minutes)."""
    patterns = tmp / "needles.txt"
    patterns.write_text("\n".join(sorted({n for s in corpus for n in (*_needles(s), tag(s))})) + "\n")
    found = subprocess.run(
        ["grep", "-rFaoh", "--exclude=*.sock", "-f", str(patterns), str(root)],
        capture_output=True, text=True, errors="replace", timeout=600,
    )
    assert found.returncode in (0, 1), found.stderr  # 1: nothing found
    return set(found.stdout.splitlines())


def _leaked(sample: ec.Sample, found: set[str]) -> bool:
    return any(n in m for m in found for n in _needles(sample))


async def _through(tool: str, corpus: list[ec.Sample], data_dir: Path, project_dir: Path) -> list[tuple[list[ec.Sample], str]] | None:
    """Every sample through ``tool`` of a daemon of its own; None if this build or machine lacks the tool."""
    answers: list[tuple[list[ec.Sample], str]] = []
    daemon = start_daemon(data_dir, project_dir)
    try:
        async with socket_client(daemon.socket, project_dir) as client:
            if tool not in {t.name for t in (await client.list_tools()).tools}:
                return None
            if tool == "bash" and (await client.call_tool("bash", {"command": "true"})).is_error:
                return None  # no sandbox on this machine: tests/e2e/test_scrubbing_e2e.py skips too
            for n, batch in enumerate(batches(corpus, TOOLS[tool])):
                answers.append((batch, await _store(client, tool, text_of(batch), n, project_dir)))
    finally:
        daemon.stop()
    return answers


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_no_encoded_secret_reaches_disk_through_any_storing_tool(tmp_path: Path, project_dir: Path) -> None:
    """One daemon and data directory per tool, so a leak is the tool's own."""
    corpus = ec.samples()
    report: dict[str, dict[str, list[int]]] = {}
    for tool in TOOLS:
        data_dir = tmp_path / f"data-{tool}"
        answers = await _through(tool, corpus, data_dir, project_dir)
        if answers is None:
            assert tool == "bash", f"{tool} is missing from the server"
            continue
        disk = _on_disk(data_dir, corpus, tmp_path)
        per_encoding = report.setdefault(tool, {})
        for batch, answer in answers:
            for sample in batch:
                if tag(sample) not in (answer if tool == "bash" else disk):
                    continue  # cut by the tool's own cap (branch_return keeps 1000 tokens): nothing to judge
                cell = per_encoding.setdefault(sample.encoding, [0, 0])
                cell[1] += 1
                # On disk, and in what the tool answered (bash: the output, read back through its encoding).
                answered = sample.leaks(_stdout(answer)) if tool == "bash" else any(n in answer for n in _needles(sample))
                if not _leaked(sample, disk) and not answered:
                    cell[0] += 1
        audit = (data_dir / "audit.log").read_text()
        assert all(n not in audit for s in corpus for n in _needles(s)) and "REDACTED" not in audit  # no content
    print("\n[encoded secrets e2e] " + "; ".join(
        f"{tool}: " + " ".join(f"{e}={c}/{t}" for e, (c, t) in enc.items()) for tool, enc in report.items()
    ))
    for tool, enc in report.items():
        assert sum(t for _, t in enc.values()) >= 0.9 * len(corpus), (tool, "too few samples arrived to judge")
        for encoding, (caught, total) in enc.items():
            assert caught >= RECALL_FLOOR.get(encoding, 1.0) * total, (tool, encoding, caught, total)


def _stdout(answer: str) -> str:
    out = json.loads(answer)
    return f"{out['stdout']}{out['stderr']}"
