"""Who may use HTTP, settled before the daemon starts (cli.py's ``serve``): checked without the
MCP SDK's auth classes (auth.py), so that a refused or taken address fails in a fraction of a second."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


class AuthConfigError(ValueError):
    """The HTTP transport would be reachable without the protection it needs."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def check_http_auth(host: str, active_tokens: int, allow_local_noauth: bool, allowed_hosts: Sequence[str]) -> bool:
    """Whether HTTP needs tokens (True) or runs open on loopback (False); raises when refused."""
    if allow_local_noauth:
        if not is_loopback(host):
            raise AuthConfigError(
                f"unauthenticated HTTP is allowed on loopback only, not on {host}; create a token with "
                "`contextd-mcp token create --tenant NAME` instead"
            )
        return False
    if active_tokens == 0:
        where = "non-loopback address " + host if not is_loopback(host) else host
        raise AuthConfigError(
            f"refusing to serve HTTP on {where} without auth: no tokens configured. Create one with "
            "`contextd-mcp token create --tenant NAME`"
            + ("" if not is_loopback(host) else ", or pass --allow-unauthenticated-loopback")
        )
    if _is_wildcard(host) and not allowed_hosts:
        raise AuthConfigError(
            f"binding {host} accepts any Host header; name the host clients use with --allowed-host "
            "(DNS-rebinding protection)"
        )
    return True


@dataclass(frozen=True)
class HttpAuth:
    """Who may use HTTP, as ``serve`` settled it (cli.py): tokens from a file, or (the operator's
    explicit opt-in, loopback only) every caller acting as the operator in ``cwd``'s scope."""

    tokens_file: Path | None
    allowed_hosts: tuple[str, ...] = ()
    # The daemon's working directory: the open loopback's callers act in its scope.
    cwd: Path = field(default_factory=Path.cwd)


def bind(host: str, port: int) -> socket.socket:
    """The HTTP listening socket, bound now: a taken port is an OSError here, before anything
    loads, not uvicorn's ``sys.exit`` from inside the daemon's task group."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart over TIME_WAIT
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
