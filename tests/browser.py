"""Headless Chromium for the tests: Debian's /usr/bin/chromium, driven by Playwright, offline.

Playwright never downloads a browser here: it launches the system's (`.ci/system-packages`
installs it). A page opened with ``offline_page`` gets every request that is not a local
file or loopback aborted and recorded, so a test can assert that the page made none.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
INSTALL = "install Debian's chromium (sudo apt-get install chromium, or .ci/system-packages)"
# No sandbox (root in CI), and none of Chromium's own calls home.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_SCHEMES = {"file", "data", "blob", "about"}
WAIT_MS = 30_000  # for a page to draw, under a full parallel test run on 2 cores


def require_chromium() -> Path:
    """Debian's Chromium, or a skip saying how to install it (a failure when CI=true)."""
    if CHROMIUM.is_file():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing, and CI must run the browser tests: {INSTALL}")
    pytest.skip(INSTALL)


@contextmanager
def launch() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def is_local(url: str) -> bool:
    """A local file, inline data, or a loopback address: nothing that leaves the machine."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class OfflinePage:
    page: Page
    blocked: list[str]  # every external URL the page asked for, in order


@contextmanager
def offline_page(browser: Browser) -> Iterator[OfflinePage]:
    """A page in its own context, whose external requests are aborted and recorded."""
    blocked: list[str] = []

    def guard(route: Route) -> None:
        if is_local(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("blockedbyclient")

    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    try:
        context.route("**/*", guard)
        yield OfflinePage(context.new_page(), blocked)
    finally:
        context.close()
