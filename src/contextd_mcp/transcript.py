"""Reads a Claude Code transcript (JSONL) into a short digest. Standard library only:
the ``hook`` command uses it too.

A transcript line is one event: ``{"type": "user" | "assistant" | "summary", "message":
{"role", "content"}, ...}``; assistant content holds ``text`` and ``tool_use`` blocks
(``{"id", "name", "input"}``), and the next user line carries the matching ``tool_result``
(``{"tool_use_id", "content", "is_error"}``). The digest keeps only short, derived lines
(a prompt's first words, a command, the one error line that names the failure), never
the raw transcript: distillation and checkpoints are built from it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Transcripts of long sessions reach tens of MB; the end holds what matters most.
MAX_READ_BYTES = 16 << 20
CLIP_COMMAND = 160
CLIP_ERROR = 200
CLIP_PROMPT = 240

_ERROR_LINE = re.compile(
    r"(error|exception|traceback|failed|failure|fatal|denied|not found|no such file|cannot|can't|"
    r"undefined|refused|timed? ?out|exit code [1-9])",
    re.IGNORECASE,
)
_EXPLAINS = re.compile(
    r"\b(because|the (issue|problem|cause|bug) (is|was)|caused by|root cause|needs? to|instead|the fix|"
    r"missing|renamed|was wrong|fixed by|so I)\b",
    re.IGNORECASE,
)
_TYPED_ERROR = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt)\b:")
_TOOL_ERROR = re.compile(r"\b(error|fatal|ERR!)(\[\w+\])?:", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_NOISE_PROMPT = re.compile(r"^\s*(<command-|<local-command|Caveat: |\[Request interrupted)")
_ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_EDIT_TOOLS = ("Edit", "MultiEdit", "Write", "NotebookEdit")
_RUNNERS = {"python", "python3", "uv", "poetry", "npx", "npm", "yarn", "pnpm", "go", "cargo", "make", "bundle", "dotnet"}


def clip(text: str, max_chars: int) -> str:
    """One line, at most ``max_chars``, cut at a word boundary."""
    line = " ".join(text.split())
    if len(line) <= max_chars:
        return line
    cut = line[: max_chars - 1].rsplit(" ", 1)[0]
    return (cut or line[: max_chars - 1]) + "…"


def sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENTENCE.split(" ".join(text.split()))) if s]


@dataclass
class Step:
    """One tool call and how it ended."""

    tool: str
    target: str  # the command for Bash, the file for edits
    ok: bool
    error: str = ""
    index: int = 0  # position in the transcript's event order


@dataclass
class Digest:
    title: str | None = None
    prompts: list[str] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)  # (event index, assistant text)
    steps: list[Step] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    pairs: list[dict[str, str]] = field(default_factory=list)  # error → fix
    unresolved: list[Step] = field(default_factory=list)

    @property
    def task(self) -> str | None:
        return self.prompts[0] if self.prompts else self.title

    @property
    def last_note(self) -> str | None:
        return self.notes[-1][1] if self.notes else None


def read_events(
    path: str | os.PathLike[str], max_bytes: int = MAX_READ_BYTES, start: int = 0, end: int | None = None
) -> list[dict[str, Any]]:
    """The JSON events of a transcript file's ``[start, end)`` bytes (at most the last
    ``max_bytes`` of them); bad lines are skipped."""
    file = Path(path)
    with file.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        stop = size if end is None else min(end, size)
        begin = max(start, stop - max_bytes)
        handle.seek(begin)
        raw = handle.read(max(0, stop - begin))
    if begin > start:
        raw = raw.split(b"\n", 1)[-1]  # the first line is cut; drop it
    events = []
    for line in raw.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(block.get("text", "")) for block in content if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


def error_line(output: str) -> str:
    """The line of a failing command's output that best names the failure."""
    lines = [ln.strip().removeprefix("E ").strip() for ln in output.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.lower().startswith("exit code")]
    # Best: an exception with its message ("KeyError: 'x'"); then a tool's "error:" line;
    # then any line that sounds like a failure; a test runner's closing summary
    # ("FAILED test_x - KeyError") comes last in the output but says the least.
    for pattern in (_TYPED_ERROR, _TOOL_ERROR, _ERROR_LINE):
        found = [i for i, ln in enumerate(lines) if pattern.search(ln)]
        if found:
            i = found[-1] if pattern is not _TYPED_ERROR else found[0]
            best = lines[i]
            if best.endswith(":") and i + 1 < len(lines):  # "validation failed:" + the reason below
                best = f"{best} {lines[i + 1]}"
            return clip(best, CLIP_ERROR)
    return clip(lines[-1], CLIP_ERROR) if lines else ""


def strip_env(command: str) -> str:
    """Drop leading ``VAR=value`` assignments: noise for a lesson, and often where secrets sit."""
    words = command.split(" ")
    while words and _ENV_ASSIGN.match(words[0]):
        words.pop(0)
    return " ".join(words).strip() or command


def program_of(command: str) -> str:
    """What a command runs, to recognise a retry: 'pytest', 'npm test', 'python -m pytest'."""
    # "cd repo && pytest -q": the last command of a chain is the one being retried.
    words = re.split(r"&&|\|\||;", command)[-1].split()
    while words and (_ENV_ASSIGN.match(words[0]) or words[0] in ("sudo", "env", "time")):
        words.pop(0)
    if not words:
        return ""
    head = words[0].rsplit("/", 1)[-1]
    if head in _RUNNERS:
        if "-m" in words[1:-1]:
            return f"{head} -m {words[words.index('-m', 1) + 1]}"
        rest = [w for w in words[1:] if not w.startswith("-")]
        return f"{head} {rest[0]}" if rest else head
    return head


def digest(events: list[dict[str, Any]]) -> Digest:
    result = Digest()
    pending: dict[str, Step] = {}  # tool calls by id, waiting for their result
    for index, event in enumerate(events):
        kind = event.get("type")
        if kind == "summary" and isinstance(event.get("summary"), str):
            result.title = clip(event["summary"], CLIP_PROMPT)
            continue
        message = event.get("message")
        if kind not in ("user", "assistant") or not isinstance(message, dict) or event.get("isMeta"):
            continue
        content = message.get("content")
        if kind == "user":
            _user_turn(result, pending, index, content)
        elif isinstance(content, list):
            _assistant_turn(result, pending, index, content)
    _pair_errors(result)
    return result


def _blocks(content: list[Any], kind: str) -> list[dict[str, Any]]:
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def _user_turn(result: Digest, pending: dict[str, Step], index: int, content: Any) -> None:
    """A prompt the user typed, or the results of the assistant's tool calls."""
    results = _blocks(content, "tool_result") if isinstance(content, list) else []
    if not results:
        if isinstance(content, (str, list)):
            text = _text_of(content)
            if text.strip() and not _NOISE_PROMPT.match(text):
                result.prompts.append(clip(text, CLIP_PROMPT))
        return
    for block in results:
        step = pending.pop(str(block.get("tool_use_id")), None)
        if step is None:
            continue
        step.ok = not block.get("is_error")
        if not step.ok:
            step.error = error_line(_text_of(block.get("content")))
        step.index = index
        result.steps.append(step)


def _assistant_turn(result: Digest, pending: dict[str, Step], index: int, content: list[Any]) -> None:
    """The assistant's notes, and its tool calls (pending until their results arrive)."""
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and str(block.get("text", "")).strip():
            result.notes.append((index, str(block["text"])))
        elif block.get("type") == "tool_use":
            name, target = _tool_call(block)
            if name in _EDIT_TOOLS and target and target not in result.files:
                result.files.append(target)
            pending[str(block.get("id"))] = Step(tool=name, target=clip(target, CLIP_COMMAND), ok=True, index=index)


def _tool_call(block: dict[str, Any]) -> tuple[str, str]:
    """A tool call's name and what it acts on (the command, without leading VAR=value, or the path)."""
    name = str(block.get("name", ""))
    raw = block.get("input")
    arguments: dict[str, Any] = raw if isinstance(raw, dict) else {}
    target = str(arguments.get("command") or arguments.get("file_path") or arguments.get("path") or "")
    return name, strip_env(target) if name == "Bash" else target


def _explanation(notes: list[tuple[int, str]], start: int, end: int) -> str | None:
    for _, text in reversed([n for n in notes if start <= n[0] <= end]):
        for sentence in sentences(text):
            if _EXPLAINS.search(sentence):
                return clip(sentence, CLIP_ERROR)
    return None


def _pair_errors(result: Digest) -> None:
    """A failing command later run again successfully: the steps between are its fix."""
    bash = [s for s in result.steps if s.tool == "Bash" and s.target]
    failures: dict[str, Step] = {}
    for step in bash:
        key = program_of(step.target)
        if not step.ok:
            failures.setdefault(key, step)
            continue
        failed = failures.pop(key, None)
        if failed is None:
            continue
        between = [s for s in result.steps if failed.index < s.index < step.index and s.ok]
        edited = list(dict.fromkeys(s.target for s in between if s.tool in ("Edit", "MultiEdit", "Write")))
        ran = [s.target for s in between if s.tool == "Bash" and program_of(s.target) != key]
        reason = _explanation(result.notes, failed.index, step.index)
        actions = []
        if edited:
            actions.append("edited " + ", ".join(Path(f).name for f in edited[:3]))
        if ran:
            actions.append("ran `" + clip(ran[-1], 80) + "`")
        fix = "; ".join(filter(None, [reason.rstrip(".") if reason else None, ", ".join(actions)])) or "retried after changing the setup"
        result.pairs.append(
            {"command": failed.target, "error": failed.error, "fix": clip(f"{fix}; then `{clip(step.target, 80)}` passed", 400)}
        )
    result.unresolved = list(failures.values())


def checkpoint_text(d: Digest, max_context_chars: int) -> tuple[str, str]:
    """A checkpoint's summary and context from a digest (for the PreCompact hook)."""
    parts = []
    if d.task:
        parts.append(f"Task: {clip(d.task, 300)}")
    if d.last_note:
        parts.append("Latest: " + clip(" ".join(sentences(d.last_note)[:2]), 400))
    summary = " ".join(parts) or "Session state before compaction (no readable transcript events)."
    lines: list[str] = []
    if len(d.prompts) > 1:
        lines.append("Requests, most recent last:")
        lines += [f"- {p}" for p in d.prompts[-5:]]
    if d.files:
        lines.append("Files changed: " + ", ".join(d.files[-20:]))
    recent = [s for s in d.steps if s.tool == "Bash"][-10:]
    if recent:
        lines.append("Recent commands:")
        lines += [f"- `{s.target}` → " + ("ok" if s.ok else f"failed: {s.error}") for s in recent]
    if d.pairs:
        lines.append("Errors fixed:")
        lines += [f"- `{p['command']}`: {p['error']} — {p['fix']}" for p in d.pairs[-5:]]
    if d.unresolved:
        lines.append("Still failing:")
        lines += [f"- `{s.target}`: {s.error}" for s in d.unresolved[-5:]]
    context = "\n".join(lines)
    if len(context) > max_context_chars:
        context = context[: max_context_chars - 1].rsplit("\n", 1)[0]
    return clip(summary, 1900), context
