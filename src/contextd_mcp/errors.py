"""Domain errors, one root.

    ContextdError
    ├── InvalidInput   a caller's argument breaks a documented rule (names the field)
    ├── NotFound       no such object *in the caller's scope* (foreign ids look the same)
    ├── Denied         the caller's identity or policy forbids the action
    ├── Conflict       the object's state does not allow the action (e.g. returned twice)
    └── Unavailable    a dependency (store, model, sandbox) cannot serve the call

The MCP adapter turns each into an ``is_error`` tool result in exactly one place. The
result's text starts with the kind, for the model to read; its ``_meta["contextd/error"]``
carries ``{"kind": ..., "reason": ...}`` for code to match (hooks, the audit log), so no
caller ever decides by the wording of a message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


# The key of an error result's ``_meta`` that holds {"kind": ErrorKind, "reason": Reason}.
ERROR_META = "contextd/error"


class ErrorKind(StrEnum):
    error = "error"
    invalid_input = "invalid_input"
    not_found = "not_found"
    denied = "denied"
    conflict = "conflict"
    unavailable = "unavailable"
    internal = "internal"  # a bug: the tool crashed (the daemon log has the incident)


class Reason(StrEnum):
    """Finer machine-readable causes, where a caller acts on one (the kind alone is too coarse)."""

    none = ""
    session_expired = "session_expired"
    session_ended = "session_ended"


class ContextdError(Exception):
    kind: ClassVar[ErrorKind] = ErrorKind.error

    def __init__(self, message: str, *, reason: Reason = Reason.none) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class InvalidInput(ContextdError):
    kind = ErrorKind.invalid_input

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class NotFound(ContextdError):
    kind = ErrorKind.not_found

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident!r} not found")


class Denied(ContextdError):
    kind = ErrorKind.denied


class Conflict(ContextdError):
    kind = ErrorKind.conflict


class Unavailable(ContextdError):
    kind = ErrorKind.unavailable


class AdminError(ValueError):
    """A refused owner command (export, import, memories); the message is for the person at
    the terminal. Here, not in admin.py, so the socket transport can tell it apart."""
