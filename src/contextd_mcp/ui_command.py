"""``contextd-mcp ui``: the web page's address, with the daemon's HTTP listener started if needed.

A daemon already serving HTTP is reused. One serving only its socket (an agent's bridge started
it) is replaced only with ``--replace`` (its agents reconnect). No daemon: one is started in the
background with ``--http``. Standard library only until a daemon must be started.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING

from contextd_mcp.paths import DataPaths
from contextd_mcp.transports.bridge import data_paths, owner_pid, request

if TYPE_CHECKING:
    import subprocess

START_WAIT_S = 90.0  # the model and store load before HTTP answers
LOGIN_TOKEN_TTL = "12h"  # noqa: S105 - a lifetime, not a secret: a --tenant login token lives this long


def _running_http(paths: DataPaths) -> str | None | bool:
    """The running daemon's HTTP base URL; None when it serves none; False when no daemon runs."""
    if request(paths, "status") is None:
        return False
    try:
        return json.loads(paths.daemon_info.read_text()).get("http")  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def _serve(args: argparse.Namespace, paths: DataPaths, replace: bool) -> subprocess.Popen[bytes]:
    import subprocess

    host, port = args.http
    command = [sys.executable, "-m", "contextd_mcp", "serve", "--data-dir", str(paths.root),
               "--http", f"{host}:{port}", "--log-file", str(paths.log)]
    if args.allow_unauthenticated_loopback:
        command.append("--allow-unauthenticated-loopback")
    if replace:
        command.append("--replace")
    with open(paths.log, "ab") as log:
        return subprocess.Popen(command, cwd=os.getcwd(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)  # outlives this command


def _wait_for_http(paths: DataPaths, process: subprocess.Popen[bytes]) -> str | None:
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        base = _running_http(paths)
        if isinstance(base, str) and base:
            return base
        if process.poll() is not None and owner_pid(paths) is None:
            return None
        time.sleep(0.1)
    return None


def _log_tail(paths: DataPaths) -> str:
    try:
        return "\n".join(paths.log.read_text(errors="replace").splitlines()[-5:])
    except OSError:
        return ""


def _login_token(args: argparse.Namespace, paths: DataPaths) -> str | None:
    """A fresh short-lived token for ``--tenant`` (made before a daemon starts: it may be the first)."""
    if not args.tenant:
        return None
    from contextd_mcp.adapters.token_store import TokenStore, tokens_path
    from contextd_mcp.cli import parse_duration
    from contextd_mcp.settings import AuthSettings

    store = TokenStore(AuthSettings().tokens_file or tokens_path(paths.root))  # the file serve reads
    token, entry = store.create(args.tenant, None, None, None, args.read_only, f"ui-{int(time.time())}",
                                expires_in=parse_duration(LOGIN_TOKEN_TTL))
    print(f"contextd-mcp: made token {entry.id} for tenant {entry.tenant}, expiring in {LOGIN_TOKEN_TTL} "
          f"(revoke: contextd-mcp token revoke {entry.id})", file=sys.stderr)
    return token


def cmd_ui(args: argparse.Namespace) -> int:
    paths = data_paths(args.data_dir)
    paths.ensure()
    base = _running_http(paths)
    if base is None and not args.replace:
        print("contextd-mcp: the running daemon serves no HTTP (an agent's bridge started it); to add HTTP, run: "
              "contextd-mcp ui --replace (connected agents reconnect on their own)", file=sys.stderr)
        return 1
    try:
        token = _login_token(args, paths)
    except ValueError as exc:
        print(f"contextd-mcp: {exc}", file=sys.stderr)
        return 2
    if not base:
        process = _serve(args, paths, replace=base is None)
        base = _wait_for_http(paths, process)
        if not base:
            print(f"contextd-mcp: the daemon did not start serving HTTP:\n{_log_tail(paths)}", file=sys.stderr)
            return 1
    # A token goes in the fragment: a browser never sends it to the server, and no log records it.
    url = f"{base}/ui/login#token={token}" if token else f"{base}/ui/"
    print(url)
    if token is None and not args.allow_unauthenticated_loopback:
        print("contextd-mcp: log in with a token (make one: contextd-mcp token create --tenant NAME), or run "
              "contextd-mcp ui --tenant NAME for a login link", file=sys.stderr)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from contextd_mcp.cli import _host_port

    p = sub.add_parser("ui", help="the local web page: start or reuse the daemon's HTTP listener and print its URL")
    p.add_argument("--data-dir", help="data directory (default: $CONTEXTD_DATA_DIR or ~/.local/share/contextd-mcp)")
    p.add_argument("--http", type=_host_port, default=("127.0.0.1", 8765), metavar="HOST:PORT",
                   help="where a daemon started now listens (default 127.0.0.1:8765)")
    p.add_argument("--tenant", help="make a short-lived token for this tenant and print a one-time login link")
    p.add_argument("--read-only", action="store_true", help="with --tenant: the token may only look")
    p.add_argument("--allow-unauthenticated-loopback", action="store_true",
                   help="a daemon started now serves loopback HTTP without tokens (as serve's flag)")
    p.add_argument("--replace", action="store_true", help="restart a daemon that serves no HTTP, with HTTP")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=cmd_ui)


__all__ = ["add_parser", "cmd_ui"]
