"""``contextd-mcp hook session-start|session-end|pre-compact``: the Claude Code hooks.

Standard library only (a test keeps it so): a hook runs at every session start and end,
and its start-up is the user's wait. It reads the hook's JSON from stdin
(``session_id``, ``transcript_path``, ``cwd``, ``hook_event_name``, and ``source`` /
``reason`` / ``trigger``), asks the daemon (starting it if none runs) to run one tool
over the socket's one-shot ``call`` op, and prints what Claude Code expects:

- session-start → ``session_start``; prints ``{"hookSpecificOutput": {"hookEventName":
  "SessionStart", "additionalContext": <the injection>}}``;
- session-end → ``session_end`` with the transcript path; the daemon queues distillation
  durably and answers at once, so the hook returns in milliseconds and its work survives
  Claude Code exiting right after. Claude Code says nothing of the outcome, so the hook
  reports ``partial``: the distiller keeps both the fixes it finds (strategies) and the
  errors left unresolved (anti-patterns), and only what the transcript shows. One-shot
  commands (``claude mcp list``, ``claude mcp get``) fire SessionEnd alone, naming a
  transcript never written: with no session and no transcript, the hook opens nothing;
- pre-compact → ``checkpoint_save`` of a digest of the transcript (task, latest step,
  files changed, commands, errors fixed and left), so the compacted session can resume.

It never fails the user's session: on any error it prints nothing on stdout, writes the
reason to stderr and exits 0. A watchdog (``CONTEXTD_HOOK_TIMEOUT``, default 30 s, which
covers a cold daemon start) bounds the whole run.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from contextd_mcp import env, limits
from contextd_mcp.errors import ErrorKind, Reason
from contextd_mcp.transports.bridge import BridgeError, data_paths, open_session

EVENTS = ("session-start", "session-end", "pre-compact")
MAX_INPUT_BYTES = 1 << 20
HOOK_OUTCOME = "partial"
CONTEXT_CHARS = 8000  # well inside the socket hello's 64 KiB


class HookError(RuntimeError):
    def __init__(self, message: str, error: object = None) -> None:
        super().__init__(message)
        # A failed tool call's kind and reason, as values (errors.py ERROR_META), to match on.
        fields = error if isinstance(error, dict) else {}
        self.kind = str(fields.get("kind", ""))
        self.reason = str(fields.get("reason", ""))


def _timeout() -> float:
    return env.hook_timeout_s()


def _read_input() -> dict[str, Any]:
    raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(raw) > MAX_INPUT_BYTES:
        raise HookError("hook input larger than 1 MiB")
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise HookError(f"hook input is not JSON ({why})") from None
    if not isinstance(data, dict):
        raise HookError("hook input is not a JSON object")
    return data


def _field(data: dict[str, Any], name: str, max_chars: int = 4096) -> str:
    value = data.get(name)
    return value[:max_chars] if isinstance(value, str) else ""


class Daemon:
    """One tool call per connection, as the Claude Code session ``session_id``."""

    def __init__(self, data_dir: str | None, data: dict[str, Any]) -> None:
        self._paths = data_paths(data_dir)
        cwd = _field(data, "cwd")
        self._cwd = cwd if cwd and os.path.isdir(cwd) else os.getcwd()
        self._hook = {
            "session_id": _field(data, "session_id", 128),
            "transcript_path": _field(data, "transcript_path"),
            "event": _field(data, "hook_event_name", 64),
        }

    @property
    def cwd(self) -> str:
        return self._cwd

    def has_transcript(self) -> bool:
        """Whether the hook names a transcript file that exists; when not, the daemon is not sent the
        path either (a session that ends without one is still closed, its distillation reads nothing)."""
        path = self._hook["transcript_path"]
        if path and os.path.isfile(path):
            return True
        self._hook["transcript_path"] = ""
        return False

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        # The hooks' tools, whatever toolsets the daemon gives a connection by default.
        fields = {"tool": tool, "arguments": arguments, "cwd": self._cwd, "hook": self._hook,
                  "toolsets": "sessions,checkpoints"}
        sock, reply, _ = open_session(self._paths, "call", fields=fields)
        sock.close()
        if reply.get("is_error"):
            raise HookError(f"{tool}: {reply.get('text')}", reply.get("error"))
        result = reply.get("result")
        return result if isinstance(result, dict) else {}


def session_start(daemon: Daemon, data: dict[str, Any]) -> str:
    result = daemon.call("session_start", {"project_path": daemon.cwd[: limits.PATH_MAX]})
    output = {
        "hookSpecificOutput": {
            "hookEventName": "SessionStart",
            "additionalContext": str(result.get("injected_context", "")),
        }
    }
    return json.dumps(output, ensure_ascii=False)


def session_end(daemon: Daemon, data: dict[str, Any]) -> str:
    # `claude mcp list`, `claude mcp get` and other one-shot commands fire SessionEnd (and no
    # SessionStart) naming a transcript that was never written: nothing happened, nothing to learn.
    has_transcript = daemon.has_transcript()
    try:
        daemon.call("session_end", {"outcome": HOOK_OUTCOME})
    except HookError as exc:
        if exc.kind != ErrorKind.not_found and exc.reason != Reason.session_expired:
            raise
        if not has_transcript:
            return ""
        # No live session for this Claude session (SessionStart hook not installed, or it
        # expired while idle): start one so the transcript is still distilled.
        daemon.call("session_start", {"project_path": daemon.cwd[: limits.PATH_MAX]})
        daemon.call("session_end", {"outcome": HOOK_OUTCOME})
    return ""


def pre_compact(daemon: Daemon, data: dict[str, Any]) -> str:
    from contextd_mcp.transcript import checkpoint_text, digest, read_events

    path = _field(data, "transcript_path")
    events = read_events(path) if path and os.path.isfile(path) else []
    summary, context = checkpoint_text(digest(events), CONTEXT_CHARS)
    trigger = _field(data, "trigger", 16).lower()
    tags = ["pre-compact"] + ([trigger] if trigger in ("auto", "manual") else [])
    arguments: dict[str, Any] = {"summary": summary[: limits.CHECKPOINT_SUMMARY_MAX], "tags": tags}
    if context:
        arguments["context"] = context
    daemon.call("checkpoint_save", arguments)
    return ""


HANDLERS = {"session-start": session_start, "session-end": session_end, "pre-compact": pre_compact}


def _on_alarm(signum: int, frame: Any) -> None:
    raise TimeoutError(f"gave up after {_timeout():.0f}s (CONTEXTD_HOOK_TIMEOUT)")


def run_hook(event: str, data_dir: str | None = None) -> int:
    """Always 0: a hook's failure must never fail the user's Claude Code session."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, _timeout())
    try:
        handler = HANDLERS.get(event)
        if handler is None:
            raise HookError(f"unknown hook event {event!r} (expected one of {', '.join(EVENTS)})")
        data = _read_input()
        output = handler(Daemon(data_dir, data), data)
        signal.setitimer(signal.ITIMER_REAL, 0)
        if output:
            sys.stdout.write(output + "\n")
            sys.stdout.flush()
    except Exception as exc:  # noqa: BLE001 - every failure ends the same way: a reason on stderr
        signal.setitimer(signal.ITIMER_REAL, 0)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        kind = "daemon unreachable" if isinstance(exc, (BridgeError, OSError)) else "skipped"
        print(f"contextd-mcp hook {event}: {kind}: {reason[:500]}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return 0
