"""Browser tests: the customer, courier and storefront pages in the system's Chromium
(Debian package ``chromium``, ``/usr/bin/chromium``) driven by Playwright, against the
real stack (``live``: redis, worker, lookup, API; tests/integration/conftest.py).

Playwright's own browser download is never used. Without Playwright or without
Chromium every test here is skipped with a message saying which is missing.

The camera is Chromium's fake capture device fed from a file
(``--use-file-for-fake-video-capture``): a real clip converted to Y4M by
``services.synth.y4m``. Each camera test launches its own browser with its own file.

Screenshots of every page state go to ``test-artifacts/screenshots/`` (git-ignored); the
pages are driven at a phone's size (390x844) and every screenshot also checks that the
page does not scroll sideways.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM = Path(os.environ.get("SIMGATE_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
# Long enough for a decision on a busy 2-core machine; never a timing assertion.
DECISION_MS = 240_000


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests: Playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.is_file():
        pytest.skip(
            f"browser tests: no Chromium at {CHROMIUM} (apt-get install chromium; "
            "`make test` installs it when run as root; SIMGATE_CHROMIUM names another)"
        )
    with sync_playwright() as p:
        yield p


def launch(playwright: Any, camera: Path | None = None, *, deny_camera: bool = False) -> Any:
    """Headless system Chromium; with ``camera``, a fake camera playing that Y4M file
    (looped) and camera permission granted without a prompt."""
    args = ["--use-fake-device-for-media-stream"]
    if camera is not None:
        args += ["--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={camera}"]
    if deny_camera:
        args.append("--deny-permission-prompts")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    """A browser without a camera file, for the pages that need none."""
    b = launch(playwright)
    try:
        yield b
    finally:
        b.close()


class Console:
    """What the page printed as errors, and its Content-Security-Policy violations."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.errors.append(msg.text)

    def csp_violations(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e]

    def script_errors(self) -> list[str]:
        return [e for e in self.errors if e.startswith("pageerror")]


def phone_page(browser: Any) -> tuple[Any, Console]:
    context = browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
    )
    context.set_default_timeout(30_000)
    page = context.new_page()
    return page, Console(page)


@pytest.fixture
def open_page(browser: Any) -> Callable[[], AbstractContextManager[tuple[Any, Console]]]:
    @contextmanager
    def factory() -> Iterator[tuple[Any, Console]]:
        page, console = phone_page(browser)
        try:
            yield page, console
        finally:
            page.context.close()

    return factory


def horizontal_overflow(page: Any) -> int:
    """How many CSS pixels the document is wider than the phone's screen (0: none).
    A mobile browser widens its layout viewport to fit wide content (innerWidth grows
    past the device width), so both are compared with the viewport asked for."""
    width = page.viewport_size["width"]
    sizes = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return int(max(sizes) - width)


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot; the page must not scroll sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert horizontal_overflow(page) <= 0, f"{name}: the page scrolls sideways"
    return path
