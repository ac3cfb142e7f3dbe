"""The courier's door check in a browser: logistics assigns an approved door-check order
(over its API), the courier signs in with the token, opens the delivery and picks the
two photos (what the phone camera would give). Someone else's face is refused with the
reason in plain words; the buyer's face hands the SIM over and activates it."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services import devstack
from services.storage.models import Sim
from tests.browser.conftest import DECISION_MS, Console, shot
from tests.integration.conftest import ORDERS, LiveStack, approved_order, logistics

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect
HANDOVER = devstack.REPO / "fixtures" / "handover"


def _assigned_delivery(live: LiveStack) -> tuple[str, str]:
    order_id = approved_order(live)
    r = httpx.post(
        f"{live.api}/v1/logistics/couriers", json={"name": "browser round"}, headers=logistics(live)
    )
    assert r.status_code == 201, r.text
    courier = r.json()
    r = httpx.post(
        f"{live.api}/v1/logistics/deliveries",
        json={"order_id": order_id, "courier_id": courier["courier_id"]},
        headers=logistics(live),
    )
    assert r.status_code == 201, r.text
    return order_id, courier["token"]


def _sim_status(live: LiveStack, order_id: str) -> str:
    with live.sessions() as session:
        return session.scalars(select(Sim.status).where(Sim.order_id == order_id)).one()


def _check(page: Any, face: str, screenshot: str | None = None) -> Any:
    page.set_input_files("#id-photo", ORDERS / "good_front.jpg")
    page.set_input_files("#face-photo", HANDOVER / face)
    expect(page.locator("#id-picked")).not_to_be_empty()
    expect(page.locator("#face-preview")).to_be_visible()
    if screenshot:
        shot(page, screenshot)
    with page.expect_response(lambda r: r.url.endswith("/handover")) as posted:
        page.get_by_role("button", name=re.compile("^提交核验")).click()
    assert posted.value.status == 202, posted.value.text()
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute(
        "data-result", re.compile("handed_over|refused"), timeout=DECISION_MS
    )
    return verdict


def test_courier_is_refused_for_another_face_then_hands_over(
    live: LiveStack, open_page: Callable[[], AbstractContextManager[tuple[Any, Console]]]
) -> None:
    order_id, token = _assigned_delivery(live)
    with open_page() as (page, console):
        page.goto(f"{live.api}/courier")
        expect(page.locator("#step-token")).to_be_visible()
        shot(page, "courier-1-sign-in")
        page.get_by_label("快递员令牌").fill(token)
        page.get_by_role("button", name=re.compile("Show my deliveries")).click()
        item = page.locator(f'#deliveries li[data-order="{order_id}"]')
        expect(item).to_have_attribute("data-status", "assigned")
        shot(page, "courier-2-round")
        item.get_by_role("button", name=re.compile("Check and hand over")).click()
        expect(page.locator("#step-check")).to_be_visible()
        expect(page.locator("#order-info")).to_contain_text(order_id)

        verdict = _check(page, "other_person_face.jpg", "courier-3-photos")
        shot(page, "courier-4-refused")
        assert verdict.get_attribute("data-result") == "refused", page.inner_text("#step-result")
        expect(verdict).to_contain_text("不能交付")
        reason = page.locator('#reasons li[data-code="face.mismatch"]')
        expect(reason).to_contain_text("The recipient is not the person who bought the card")
        expect(reason).to_contain_text("请勿交付 SIM 卡")
        assert _sim_status(live, order_id) == "awaiting_handover"

        page.get_by_role("button", name=re.compile("Take the photos again")).click()
        expect(page.locator("#step-check")).to_be_visible()
        verdict = _check(page, "recipient_face.jpg")
        shot(page, "courier-5-handed-over")
        assert verdict.get_attribute("data-result") == "handed_over", page.inner_text(
            "#step-result"
        )
        expect(verdict).to_contain_text("已交付")
        expect(page.locator("#retry")).to_be_hidden()
        assert console.csp_violations() == []
        assert console.script_errors() == []

        page.get_by_role("button", name=re.compile("^返回列表")).last.click()
        expect(item).to_have_attribute("data-status", "handed_over")
        expect(item.get_by_role("button")).to_have_count(0)
        # The token lives in the tab's sessionStorage, not in the page or a cookie.
        assert token not in page.content()
        assert page.context.cookies() == []
    assert _sim_status(live, order_id) == "active"
