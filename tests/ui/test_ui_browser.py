"""The page in a real headless Chromium: login, search, edit, delete (checked over MCP), the chart,
a cross-origin form post, and no CSP violation in the console on any view."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.browser import chromium, console_problems, submit
from tests.ui.world import LESSONS, World, csrf_of, get, page, search

pytestmark = pytest.mark.slow  # a browser start and a dozen page loads: ~10 s
VIEWS = {"dashboard": "/ui/", "memories": "/ui/memories", "remediations": "/ui/kind/remediations",
         "policies": "/ui/kind/policies", "skills": "/ui/kind/skills", "agents": "/ui/kind/agents",
         "checkpoints": "/ui/kind/checkpoints", "sessions": "/ui/sessions"}


@pytest.fixture(scope="module")
def browser(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("profile")) as driver:
        # The login link `contextd-mcp ui --tenant` prints: our script reads the #token and logs in.
        driver.get(f"{world.base}/ui/login#token={world.tokens['acme']}")
        driver.find_element("css selector", "svg#ratings-chart, #chart-empty")  # the dashboard, logged in
        yield driver


def test_login_link_logs_in_and_every_view_loads_without_csp_violation(world: World, browser: Any) -> None:
    assert browser.current_url == f"{world.base}/ui/"
    cookie = browser.get_cookie("contextd_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    shots = os.environ.get("CONTEXTD_UI_SHOTS")
    for name, path in VIEWS.items():
        browser.get(world.base + path)
        assert browser.find_element("css selector", "h1").text, name
        if shots:
            browser.save_screenshot(str(Path(shots) / f"{name}.png"))
    assert console_problems(browser) == []


def test_search_finds_a_stored_lesson(world: World, browser: Any) -> None:
    browser.get(f"{world.base}/ui/memories")
    browser.find_element("id", "q").send_keys("which redis version breaks the cache tests in CI")
    browser.find_element("id", "project").send_keys("api")
    submit(browser, "search")
    titles = [a.text for a in browser.find_elements("css selector", "#memories a.memory")]
    assert titles and titles[0] == LESSONS[1][0]
    assert console_problems(browser) == []


def test_the_chart_renders_with_data(world: World, browser: Any) -> None:
    browser.get(f"{world.base}/ui/")
    days = browser.find_elements("css selector", "svg#ratings-chart g.day")
    assert days, "no bar in the chart"
    helpful = sum(int(d.get_attribute("data-helpful")) for d in days)
    assert helpful >= 2  # the two ratings the fixture gave over MCP
    bars = browser.find_elements("css selector", "svg#ratings-chart rect")
    assert any(float(b.get_attribute("height")) > 0 for b in bars)
    assert browser.find_element("id", "count-memories").text.startswith(str(len(LESSONS)))


def test_an_edit_changes_what_memory_get_returns(world: World, browser: Any) -> None:
    memory_id = world.ids[LESSONS[2][0]]
    browser.get(f"{world.base}/ui/memories/{memory_id}?project=api")
    title = browser.find_element("id", "edit-title")
    title.clear()
    title.send_keys("Format with ruff format only")
    submit(browser, "save")
    assert browser.find_element("id", "notice").text == "Saved."
    assert get(world.base, world.tokens["acme"], memory_id)["title"] == "Format with ruff format only"


def test_a_delete_removes_it_from_the_next_memory_search(world: World, browser: Any) -> None:
    title, memory_id = LESSONS[0][0], world.ids[LESSONS[0][0]]
    assert title in search(world.base, world.tokens["acme"], "alembic upgrade before API tests")
    browser.get(f"{world.base}/ui/memories/{memory_id}?project=api")
    browser.find_element("id", "delete").click()
    browser.switch_to.alert.accept()  # ui.js asks first
    browser.find_element("id", "memories")
    assert title not in search(world.base, world.tokens["acme"], "alembic upgrade before API tests")
    assert get(world.base, world.tokens["acme"], memory_id) is None


class _Attacker(http.server.BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:  # the stdlib's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_cross_origin_form_post_is_refused(world: World, browser: Any) -> None:
    """Another local web server (same site: the cookie goes along) posts a delete, even holding a
    valid CSRF token: the Origin check refuses it."""
    memory_id = world.ids[LESSONS[3][0]]
    _, _, html = page(world.base, f"/ui/memories/{memory_id}?project=api", world.tokens["acme"])
    _Attacker.html = (
        f'<form method="post" action="{world.base}/ui/memories/{memory_id}/delete">'
        f'<input name="csrf" value="{csrf_of(html)}"></form><script>document.forms[0].submit()</script>'
    ).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)  # Chromium keeps idle sockets open
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        browser.find_element("css selector", "body")
        assert "refused" in browser.page_source
    finally:
        server.shutdown()
        server.server_close()
    assert get(world.base, world.tokens["acme"], memory_id) is not None
