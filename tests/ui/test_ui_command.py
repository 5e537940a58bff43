"""``contextd-mcp ui``: starts the daemon's HTTP listener (or reuses it) and prints a login link
whose token logs the browser in; nothing is opened without ``--open``."""

from __future__ import annotations

import re
import time
import urllib.parse
from pathlib import Path

from tests.helpers import free_port, run_cli, stop_daemon
from tests.ui.world import page


def test_ui_starts_the_daemon_then_reuses_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    try:
        started = time.monotonic()
        first = run_cli(data_dir, "ui", "--tenant", "acme", "--http", f"127.0.0.1:{port}", timeout=120)
        assert first.returncode == 0, first.stderr
        link = first.stdout.strip().splitlines()[-1]
        found = re.fullmatch(rf"http://127\.0\.0\.1:{port}/ui/login#token=(ctxd_[A-Za-z0-9_-]+)", link)
        assert found, link
        base = f"http://127.0.0.1:{port}"
        status, _, _ = page(base, "/ui/memories")
        assert status == 401  # the page is closed without the token
        login = {"token": found.group(1)}
        status, headers, _ = page(base, "/ui/login", None, "POST", login, {"Origin": base})
        assert status == 303
        cookie = {k.lower(): v for k, v in headers.items()}["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        token = urllib.parse.unquote(cookie.split(";", 1)[0].split("=", 1)[1])
        status, _, body = page(base, "/ui/", token)
        assert status == 200 and "Dashboard" in body
        # A login from another origin is refused even with the right token.
        status, _, _ = page(base, "/ui/login", None, "POST", login, {"Origin": "http://evil.example"})
        assert status == 403

        again = run_cli(data_dir, "ui", timeout=60)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == f"{base}/ui/"
        assert time.monotonic() - started < 120
    finally:
        stop_daemon(data_dir)
