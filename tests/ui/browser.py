"""Debian's Chromium, driven by Selenium through Debian's chromedriver: nothing downloaded at run time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1200,900"]


def available() -> str | None:
    """Why the browser tests cannot run here, or None (scripts/setup.sh installs both as root)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return f"{', '.join(missing)} missing: run scripts/setup.sh as root (apt: chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return None


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    reason = available()
    if reason:
        pytest.skip(reason)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    driver.implicitly_wait(10)  # a redirect after a form post lands a moment later
    try:
        yield driver
    finally:
        driver.quit()


def console_problems(driver: Any) -> list[str]:
    """Console messages that say the page broke: CSP refusals, script errors, failed loads."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]]


def submit(driver: Any, button_id: str, timeout: float = 30) -> None:
    """Click a form's button and wait until the page it leads to has replaced this one: click()
    returns before the navigation, and elements found in between belong to the old page (a search
    read the unfiltered list, or its elements went stale mid-read)."""
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.wait import WebDriverWait

    old = driver.find_element("tag name", "html")
    driver.find_element("id", button_id).click()
    WebDriverWait(driver, timeout).until(staleness_of(old))
