"""Every page at a phone's size (390x844): no sideways scrolling, controls on screen,
and the same with the longest texts a page shows (an error with its advice). The flows
(test_*_page.py) check the same at every step they screenshot."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest

from tests.browser.conftest import PHONE, Console, horizontal_overflow, shot
from tests.integration.conftest import LiveStack

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect

PAGES = {
    "activate": "#step-code",
    "courier": "#step-token",
    "storefront": "#step-key",
}


def _fits(page: Any) -> None:
    assert page.viewport_size == PHONE
    assert page.evaluate("window.innerWidth") == PHONE["width"]
    assert horizontal_overflow(page) <= 0
    # No element sticks out on the right (overflow hidden by a parent would not scroll
    # the page, but would cut text off).
    widest = page.evaluate(
        "Math.max(...Array.from(document.querySelectorAll('main *'))"
        ".filter(e => e.getClientRects().length)"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= PHONE["width"], widest


@pytest.mark.parametrize("name", list(PAGES))
def test_page_fits_a_phone(
    live: LiveStack,
    open_page: Callable[[], AbstractContextManager[tuple[Any, Console]]],
    name: str,
) -> None:
    with open_page() as (page, console):
        page.goto(f"{live.api}/{name}")
        expect(page.locator(PAGES[name])).to_be_visible()
        _fits(page)
        shot(page, f"phone-{name}")
        # The longest state before signing in: an error with its advice.
        page.locator(f"{PAGES[name]} button[type=submit]").click()
        expect(page.locator(f"{PAGES[name]} .error")).not_to_be_empty()
        _fits(page)
        shot(page, f"phone-{name}-error")
        assert console.csp_violations() == []
        assert console.script_errors() == []


def test_wrong_activation_code_is_explained(
    live: LiveStack, open_page: Callable[[], AbstractContextManager[tuple[Any, Console]]]
) -> None:
    """A well-formed but unknown ICCID: the API's 401 in plain words, on a phone. (The
    camera is the fake device without a file: a moving test pattern.)"""
    with open_page() as (page, console):
        page.context.grant_permissions(["camera"], origin=live.api)
        page.goto(f"{live.api}/activate?iccid={'8986' + '1' * 16}&code=000000")
        with page.expect_response(lambda r: r.url.endswith("/v1/activations")) as issued:
            page.get_by_role("button", name=re.compile("Allow the camera")).click()
        assert issued.value.status == 401
        item = page.locator('#code-error li[data-code="activation.bad_code"]')
        expect(item).to_contain_text("Unknown ICCID or wrong activation code")
        expect(page.locator("#step-video")).to_be_hidden()
        _fits(page)
        shot(page, "phone-activate-bad-code")
        assert console.csp_violations() == []
