"""The demo storefront in a browser: the agent signs in with its key, picks a number,
types the identity, picks the three photos of the ``good`` fixture set and submits; the
page follows the order to the decision, showing only the masked ID number."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest

from tests.browser.conftest import DECISION_MS, Console, shot
from tests.integration.conftest import ORDERS, SPEC, LiveStack, release_cards

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect


def test_storefront_order_is_followed_to_its_decision(
    live: LiveStack, open_page: Callable[[], AbstractContextManager[tuple[Any, Console]]]
) -> None:
    release_cards(live, "good")
    identity = SPEC["sets"]["good"]["identity"]
    with open_page() as (page, console):
        page.goto(f"{live.api}/storefront")
        expect(page.locator("#step-key")).to_be_visible()
        shot(page, "storefront-1-sign-in")
        page.get_by_label("代理商 API 密钥").fill(live.key)
        page.get_by_role("button", name=re.compile("Sign in")).click()
        expect(page.locator("#msisdn option")).not_to_have_count(0)
        msisdn = page.locator("#msisdn").input_value()
        page.get_by_label("姓名").fill(identity["name"])
        page.get_by_label("身份证号码").fill(identity["id_number"])
        page.get_by_label(re.compile("Door check")).check()
        page.set_input_files("#id-front", ORDERS / "good_front.jpg")
        page.set_input_files("#id-back", ORDERS / "good_back.jpg")
        page.set_input_files("#selfie", ORDERS / "good_selfie.jpg")
        expect(page.locator('.picked[data-for="selfie"]')).not_to_be_empty()
        shot(page, "storefront-2-order")
        with page.expect_response(
            lambda r: r.url.endswith("/v1/orders") and r.request.method == "POST"
        ) as posted:
            page.get_by_role("button", name=re.compile("Submit the order")).click()
        assert posted.value.status == 202, posted.value.text()
        order_id = posted.value.json()["order_id"]
        expect(page.locator("#step-track")).to_be_visible()
        expect(page.locator("#order-info")).to_contain_text(order_id)
        expect(page.locator('#timeline li[data-status="received"]')).to_have_class("seen")
        shot(page, "storefront-3-progress")
        verdict = page.locator("#verdict")
        expect(verdict).to_have_attribute("data-outcome", re.compile(r"\w"), timeout=DECISION_MS)
        shot(page, "storefront-4-decision")

        assert verdict.get_attribute("data-outcome") == "approved", page.inner_text("#decision")
        expect(verdict).to_contain_text("审核通过")
        expect(verdict).to_contain_text("courier checks the buyer at the door")
        expect(page.locator('#timeline li[data-status="decided"]')).to_have_class("seen")
        expect(page.locator("#order-info")).to_contain_text(msisdn)
        masked = page.locator("#masked-id").inner_text()
        assert "*" in masked, masked
        assert masked[-4:] == identity["id_number"][-4:]
        # The page holds no full ID number: not shown, and not left in the form.
        assert identity["id_number"] not in page.content()
        assert page.locator("#id-number").input_value() == ""
        assert console.csp_violations() == []
        assert console.script_errors() == []

    body = live.get(order_id).json()
    assert body["status"] == "decided"
    assert body["outcome"] == "approved"
