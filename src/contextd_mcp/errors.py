"""Domain errors, one root.

    ContextdError
    ├── InvalidInput   a caller's argument breaks a documented rule (names the field)
    ├── NotFound       no such object *in the caller's scope* (foreign ids look the same)
    ├── Denied         the caller's identity or policy forbids the action
    ├── Conflict       the object's state does not allow the action (e.g. returned twice)
    └── Unavailable    a dependency (store, model, sandbox) cannot serve the call

The MCP adapter turns each into an ``is_error`` tool result in exactly one place.
"""

from __future__ import annotations


class ContextdError(Exception):
    kind = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ContextdError):
    kind = "invalid_input"

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class NotFound(ContextdError):
    kind = "not_found"

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident!r} not found")


class Denied(ContextdError):
    kind = "denied"


class Conflict(ContextdError):
    kind = "conflict"


class Unavailable(ContextdError):
    kind = "unavailable"
