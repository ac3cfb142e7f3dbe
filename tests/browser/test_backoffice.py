"""The back office in a browser, against the real stack: the admin signs in with the
staff token, opens the review queue, where orders waiting for a person come first. Two
orders the national lookup could not check (an outage past its deadline:
``needs_review``, ``lookup.unavailable``) cannot be approved (R5: the approve choice is
disabled); the admin looks at one order's three images and scores side by side and
re-runs its checks with a reason (the lookup is back up: the worker decides it
approved, the page and the queue show it), and rejects the other (its number goes back
to the inventory). A third order went to review because its agent was suspended while
it waited for the lookup; the agent is reinstated and the admin approves it (its held
SIM ships inactive, the audit log keeps the reviewer's reason). The admin also registers
an agent, issues its badge, opens the badge check page, suspends the agent; opens an
inspection report with its chart and the risk ranking. The auditor searches decisions
and downloads an evidence package. Another role's page is a 403 page. Every page is
screenshotted at a phone's size (390x844) and must not scroll sideways; no admin page
holds a full ID number."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.domain.states import SimStatus
from services.storage.models import AuditEntry, Order, Sim
from tests.browser.conftest import SCREENSHOTS, Console, horizontal_overflow, shot
from tests.integration.conftest import SPEC, LiveStack, release_cards

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect

OpenPage = Callable[[], AbstractContextManager[tuple[Any, Console]]]
ID_NUMBERS = [s["identity"]["id_number"] for s in SPEC["sets"].values()]
DEMO_AGENT = "agt_demo"
# Elements that stick out of the screen without sitting in a sideways-scrolling box
# (a wide table scrolls inside its .table-wrap, never the page).
STICKING_OUT = """(width) => Array.from(document.querySelectorAll('main *')).filter(e => {
  if (!e.getClientRects().length) return false;
  for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX;
    if (o === 'auto' || o === 'scroll' || o === 'hidden') return false;
  }
  return e.getBoundingClientRect().right > width + 0.5;
}).map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className)"""


def fits_a_phone(page: Any, name: str) -> None:
    """Screenshot; no sideways scrolling (shot checks it) and nothing cut off."""
    shot(page, name)
    assert horizontal_overflow(page) <= 0, name
    assert page.evaluate(STICKING_OUT, page.viewport_size["width"]) == [], name


def no_full_id_number(page: Any) -> None:
    html = page.content()
    for number in ID_NUMBERS:
        assert number not in html, page.url


def sign_in(page: Any, live: LiveStack, role: str, target: str) -> None:
    page.goto(f"{live.api}{target}")
    expect(page).to_have_url(re.compile(r"/backoffice/login\?next="))
    page.get_by_label(re.compile("^令牌")).fill(live.staff[role])
    page.get_by_role("button", name=re.compile("Sign in")).click()
    expect(page).to_have_url(re.compile(re.escape(target) + "$"))


def images_loaded(page: Any) -> list[str]:
    """The roles of the evidence images that loaded (decoded, with pixels)."""
    roles: list[str] = page.evaluate(
        "Array.from(document.querySelectorAll('#images figure')).filter(f => {"
        " const i = f.querySelector('img'); return i.complete && i.naturalWidth > 0; })"
        ".map(f => f.dataset.role)"
    )
    return roles


@pytest.fixture(scope="module")
def waiting(live: LiveStack) -> list[str]:
    """Two orders the rules sent to a person: the lookup was down past its deadline."""
    release_cards(live, "good")
    live.set_faults(mode="outage")
    try:
        ids = []
        for _ in range(2):
            r = live.post("good")
            assert r.status_code == 202, r.text
            ids.append(r.json()["order_id"])
        decided = live.wait_decided(ids)
    finally:
        live.set_faults(mode="none")
    for oid in ids:
        assert decided[oid]["outcome"] == "needs_review", decided[oid]
        assert decided[oid]["reasons"] == ["lookup.unavailable"]
    return ids


@pytest.fixture(scope="module")
def held_for_agent(live: LiveStack, waiting: list[str]) -> str:
    """An order in review for a reason that is not the lookup's: its agent (a new one)
    was suspended while the order waited for the failing lookup; the lookup then
    answered match. The agent is reinstated afterwards. (Created after ``waiting``.)"""
    with live.sessions() as s:
        provinces = sorted(set(s.scalars(select(Sim.province))))
    r = httpx.post(
        f"{live.api}/v1/admin/agents",
        json={
            "name": "复核测试手机店",
            "legal_name": "复核测试通信有限公司",
            "licence_number": "91110105MA0000REVW",
            "agent_number": f"BO-R-{secrets.token_hex(3).upper()}",
            "provinces": provinces,
            "products": ["prepaid"],
        },
        headers=live.admin,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    agent_id, key = r.json()["agent"]["id"], r.json()["api_key"]
    release_cards(live, "good")
    live.set_faults(mode="error", failure_rate=1.0)
    try:
        r = live.post("good", key=key)
        assert r.status_code == 202, r.text
        order_id: str = r.json()["order_id"]
        r = httpx.post(
            f"{live.api}/v1/admin/agents/{agent_id}/suspend",
            json={"reason": "资质复核中"},
            headers=live.admin,
            timeout=10,
        )
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 90
        while _order(live, order_id).status != "waiting_lookup":
            assert time.monotonic() < deadline, live.logs()
            time.sleep(0.2)
    finally:
        live.set_faults(mode="none")
    deadline = time.monotonic() + 90
    while (order := _order(live, order_id)).status != "decided":
        assert time.monotonic() < deadline, live.logs()
        time.sleep(0.3)
    assert order.outcome == "needs_review", order.reasons
    assert order.reasons["reasons"] == ["agent.suspended"]
    assert order.evidence["lookup"]["result"] == "match"
    r = httpx.post(
        f"{live.api}/v1/admin/agents/{agent_id}/reinstate",
        json={"reason": "资质复核通过"},
        headers=live.admin,
        timeout=10,
    )
    assert r.json()["status"] == "active"
    return order_id


def _order(live: LiveStack, order_id: str) -> Order:
    with live.sessions() as s:
        order = s.get(Order, order_id)
        assert order is not None
        s.expunge(order)
        return order


def _sim(live: LiveStack, order_id: str) -> Sim | None:
    with live.sessions() as s:
        sim = s.scalars(select(Sim).where(Sim.order_id == order_id)).first()
        if sim is not None:
            s.expunge(sim)
        return sim


def _entries(live: LiveStack, kind: str, order_id: str) -> list[AuditEntry]:
    with live.sessions() as s:
        found = list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.kind == kind, AuditEntry.subject == order_id)
                .order_by(AuditEntry.seq)
            )
        )
        for e in found:
            s.expunge(e)
        return found


def _review(page: Any, decision: str, reason: str) -> None:
    choice = "^批准" if decision == "approve" else "^拒绝"
    page.get_by_role("radio", name=re.compile(choice)).check()
    page.get_by_label(re.compile("^理由")).fill(reason)
    page.get_by_role("button", name=re.compile("Record the decision")).click()
    expect(page.locator("#review-done")).to_be_visible()


def test_review_recheck_reject_and_approve(
    live: LiveStack, open_page: OpenPage, waiting: list[str], held_for_agent: str
) -> None:
    first, second = waiting
    held = held_for_agent
    release_cards(live, "good")
    for oid in (first, second, held):  # each number held for its order under review
        sim = _sim(live, oid)
        assert sim is not None
        assert sim.status == SimStatus.RESERVED
    with open_page() as (page, console):
        page.goto(f"{live.api}/backoffice/login")
        fits_a_phone(page, "backoffice-1-login")
        sign_in(page, live, "admin", "/backoffice/review")
        rows = page.locator("#queue tbody tr")
        expect(rows.first).to_have_attribute("data-outcome", "needs_review")
        # The three newest orders waiting for a person head the queue.
        top = {rows.nth(i).get_attribute("data-order") for i in range(3)}
        assert top == {first, second, held}
        assert rows.nth(0).get_attribute("class") == "waiting"
        fits_a_phone(page, "backoffice-2-review-queue")
        no_full_id_number(page)

        # The lookup never answered: no approval (R5), a recheck instead.
        page.locator(f'#queue a[href="/backoffice/review/{first}"]').click()
        expect(page.locator("h1")).to_contain_text("Order review")
        expect(page.locator('#reasons li[data-code="lookup.unavailable"]')).to_contain_text(
            "national ID check was unavailable"
        )
        expect(page.locator("#scores")).to_contain_text("Selfie face vs ID portrait")
        images = page.locator("#images img")
        expect(images).to_have_count(4)
        for i in range(4):
            expect(images.nth(i)).to_have_js_property("complete", True)
        assert set(images_loaded(page)) == {"id_front", "portrait", "id_back", "selfie"}
        expect(page.locator('#audit tr[data-kind="order.decided"]')).to_have_count(1)
        masked = page.locator("#masked-id").inner_text()
        assert "*" in masked
        expect(page.locator("#lookup-required")).to_be_visible()
        expect(page.get_by_role("radio", name=re.compile("^批准"))).to_be_disabled()
        fits_a_phone(page, "backoffice-3-review-order")
        no_full_id_number(page)

        # The reason is required: the browser refuses an empty one, nothing is sent.
        recheck = page.get_by_role("button", name=re.compile("Re-run the checks"))
        recheck.click()
        assert page.evaluate("document.querySelector('#recheck-reason').validity.valueMissing")
        assert _order(live, first).outcome == "needs_review"

        page.get_by_label(re.compile("^重新核查的理由")).fill("核查系统已恢复，重新核查")
        recheck.click()
        expect(page.locator("#review-done")).to_have_attribute("data-done", "recheck")
        expect(page.locator("#rechecks li")).to_have_count(1)
        fits_a_phone(page, "backoffice-4-recheck-sent")
        # The worker asks the lookup again (it is up) and decides.
        rechecked = live.wait_decided([first])[first]
        assert rechecked["outcome"] == "approved", rechecked
        page.reload()
        expect(page.locator("#outcome")).to_have_attribute("data-outcome", "approved")
        expect(page.locator('#audit tr[data-kind="order.decided"]')).to_have_count(2)
        expect(page.locator('#audit tr[data-kind="order.recheck"]')).to_have_count(1)
        expect(page.locator("#review-form")).to_have_count(0)
        fits_a_phone(page, "backoffice-5-rechecked-approved")
        page.goto(f"{live.api}/backoffice/review?outcome=approved")
        expect(page.locator(f'#queue tr[data-order="{first}"]')).to_have_attribute(
            "data-outcome", "approved"
        )

        page.goto(f"{live.api}/backoffice/review/{second}")
        _review(page, "reject", "自拍模糊，无法确认本人")
        expect(page.locator("#outcome")).to_have_attribute("data-outcome", "rejected")
        fits_a_phone(page, "backoffice-6-rejected")
        no_full_id_number(page)

        # In review because its agent was suspended; the lookup answered match.
        page.goto(f"{live.api}/backoffice/review/{held}")
        expect(page.locator('#reasons li[data-code="agent.suspended"]')).to_be_visible()
        expect(page.locator("#lookup-required")).to_have_count(0)
        _review(page, "approve", "代理商资质复核通过，证件与自拍人工核对一致")
        expect(page.locator("#outcome")).to_have_attribute("data-outcome", "approved")
        expect(page.locator("#review-reason")).to_contain_text("人工核对一致")
        expect(page.locator('#audit tr[data-kind="order.reviewed"]')).to_have_count(1)
        fits_a_phone(page, "backoffice-7-approved")
        no_full_id_number(page)
        assert console.csp_violations() == []
        assert console.script_errors() == []

    machine = _order(live, first)
    assert (machine.status, machine.outcome) == ("decided", "approved")
    assert [r["previous_reasons"] for r in machine.reasons["rechecks"]] == [["lookup.unavailable"]]
    assert len(_entries(live, "order.decided", first)) == 2
    [asked] = _entries(live, "order.recheck", first)
    assert asked.actor == "stf_demo_admin"
    assert asked.payload["reason"] == "核查系统已恢复，重新核查"
    sim = _sim(live, first)
    assert sim is not None
    assert sim.status in (SimStatus.AWAITING_HANDOVER, SimStatus.SHIPPED_INACTIVE)

    assert _order(live, second).outcome == "rejected"
    [rejected] = _entries(live, "order.reviewed", second)
    assert rejected.payload["decision"] == "reject"
    assert _sim(live, second) is None  # the number went back to the inventory

    approved = _order(live, held)
    assert (approved.outcome, approved.ship_mode) == ("approved", "ship_inactive")
    sim = _sim(live, held)
    assert sim is not None
    assert (sim.status, sim.msisdn) == (SimStatus.SHIPPED_INACTIVE, approved.msisdn)
    [entry] = _entries(live, "order.reviewed", held)
    assert entry.payload["reason"] == "代理商资质复核通过，证件与自拍人工核对一致"
    assert entry.payload["previous_outcome"] == "needs_review"
    assert entry.actor == "stf_demo_admin"


def test_agent_registry_inspection_and_risk(live: LiveStack, open_page: OpenPage) -> None:
    number = f"BO-{secrets.token_hex(3).upper()}"
    with open_page() as (page, console):
        sign_in(page, live, "admin", "/backoffice/agents")
        expect(page.locator(f"#agent-{DEMO_AGENT}")).to_be_visible()
        page.get_by_label(re.compile("^店铺名称")).fill("浏览器测试手机店")
        page.get_by_label(re.compile("^企业名称")).fill("浏览器测试通信有限公司")
        page.get_by_label(re.compile("^营业执照号")).fill("91110105MA0000TEST")
        page.get_by_label(re.compile("^代理商编号")).fill(number)
        page.get_by_label(re.compile("北京")).check()
        page.get_by_label(re.compile("上海")).check()
        fits_a_phone(page, "backoffice-8-agents")
        page.get_by_role("button", name=re.compile("Register and issue")).click()
        expect(page.locator("#agent-created")).to_contain_text(number)
        key = page.locator("#new-key").inner_text()
        assert len(key) > 20
        card = page.locator(f'li.agent:has(code:text-is("{number}"))')
        agent_id = card.get_attribute("data-agent")
        assert agent_id
        fits_a_phone(page, "backoffice-9-agent-created")

        card.get_by_role("button", name=re.compile("Issue a new badge")).click()
        expect(page.locator("#agent-done")).to_contain_text("Badge issued")
        card = page.locator(f"#agent-{agent_id}")
        card.locator("a.badge-check").click()
        expect(page.locator(".verdict")).to_contain_text("Genuine badge")
        fits_a_phone(page, "backoffice-10-badge-verify")
        page.go_back()

        card = page.locator(f"#agent-{agent_id}")
        card.get_by_label(re.compile("^原因")).fill("巡查发现违规宣传")
        card.get_by_role("button", name=re.compile("Suspend")).click()
        expect(page.locator("#agent-done")).to_contain_text("Suspended")
        expect(page.locator(f"#agent-{agent_id}")).to_have_attribute("data-status", "suspended")
        fits_a_phone(page, "backoffice-11-agent-suspended")

        page.locator(f"#agent-{DEMO_AGENT} a.inspect").click()
        expect(page.locator("h1")).to_contain_text("Inspection report")
        chart = page.locator("#chart svg")
        expect(chart).to_be_visible()
        assert chart.get_attribute("aria-labelledby") == "chart-title chart-desc"
        box = chart.bounding_box()
        assert box is not None
        assert box["width"] > 300
        assert box["height"] > 100
        fits_a_phone(page, "backoffice-12-inspection")
        no_full_id_number(page)

        page.get_by_role("link", name=re.compile("Risk ranking")).click()
        expect(page.locator(f'#ranking li[data-agent="{DEMO_AGENT}"]')).to_be_visible()
        fits_a_phone(page, "backoffice-13-risk")
        no_full_id_number(page)

        page.get_by_role("link", name=re.compile("Badge check")).click()
        expect(page.locator("#badge-form")).to_be_visible()
        fits_a_phone(page, "backoffice-14-badge-check")
        assert console.csp_violations() == []
        assert console.script_errors() == []

    r = httpx.get(f"{live.api}/v1/admin/agents/{agent_id}", headers=live.admin, timeout=10)
    assert r.json()["status"] == "suspended"
    assert r.json()["status_reason"] == "巡查发现违规宣传"


def test_auditor_searches_and_downloads_evidence(live: LiveStack, open_page: OpenPage) -> None:
    r = live.post("expired")
    assert r.status_code == 202, r.text
    order_id = r.json()["order_id"]
    decided = live.wait_decided([order_id])[order_id]
    assert decided["outcome"] == "rejected"
    day = dt.datetime.fromisoformat(decided["decided_at"]).astimezone(dt.UTC).date().isoformat()
    with open_page() as (page, console):
        sign_in(page, live, "auditor", "/backoffice/audit")
        page.get_by_role("button", name=re.compile("Verify the whole audit chain")).click()
        expect(page.locator("#chain")).to_have_attribute("data-ok", "true")
        page.get_by_label(re.compile("^从")).fill(day)
        page.get_by_label(re.compile("^到")).fill(day)
        page.get_by_label(re.compile("^代理商")).select_option(DEMO_AGENT)
        page.get_by_label(re.compile("^结果")).select_option("rejected")
        page.get_by_role("button", name=re.compile("Search")).click()
        expect(page).to_have_url(re.compile(r"outcome=rejected"))
        row = page.locator(f'#decisions tr[data-order="{order_id}"]')
        expect(row).to_be_visible()
        assert set(
            page.locator("#decisions tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.outcome)"
            )
        ) == {"rejected"}
        fits_a_phone(page, "backoffice-15-audit")
        with page.expect_download() as download:
            row.locator("a.evidence").click()
        path = SCREENSHOTS.parent / f"evidence-{order_id}.zip"
        download.value.save_as(path)
        names = zipfile.ZipFile(path).namelist()
        assert {"manifest.json", "audit.json", "id_front.jpg", "selfie.jpg"} <= set(names)
        path.unlink()

        # The auditor is not a reviewer.
        page.goto(f"{live.api}/backoffice/review")
        expect(page.locator("h1")).to_contain_text("Your role may not open this page")
        fits_a_phone(page, "backoffice-16-wrong-role")
        assert console.csp_violations() == []
        assert console.script_errors() == []
    with live.sessions() as s:
        exported = s.scalars(
            select(AuditEntry).where(
                AuditEntry.kind == "evidence.exported", AuditEntry.subject == order_id
            )
        ).one()
        assert exported.actor == "stf_demo_auditor"
