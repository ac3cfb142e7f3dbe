"""The back-office pages in-process: login and its cookie, CSRF, roles, the audit entry
of every page, the review form, the agent forms, inspection and risk pages, the
auditor's search and evidence package, and that no admin page ever holds a full ID
number. The same pages in a real browser against the real stack:
tests/browser/test_backoffice.py."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from services.api.backoffice import COOKIE, seal_session
from services.domain.states import Outcome
from services.storage.models import Agent, StaffUser
from tests.api.review_desk import IDENTITIES, Desk, desk_fixture

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    yield from desk_fixture(tmp_path, monkeypatch)


def login(client: TestClient, token: str, nxt: str = "") -> httpx.Response:
    form = client.get("/backoffice/login")
    assert form.status_code == 200
    csrf = CSRF.search(form.text)
    assert csrf is not None
    return client.post(
        "/backoffice/login",
        data={"token": token, "csrf": csrf.group(1), "next": nxt},
        follow_redirects=False,
    )


def signed_in(desk: Desk, role: str = "admin") -> TestClient:
    r = login(desk.client, desk.tokens[role])
    assert r.status_code == 303, r.text
    return desk.client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "the page has a form with its CSRF token"
    return found.group(1)


# --- login -------------------------------------------------------------------------------


def test_login_sets_a_locked_down_session_cookie(desk: Desk) -> None:
    r = login(desk.client, desk.tokens["admin"])
    assert r.status_code == 303
    assert r.headers["location"] == "/backoffice/review"
    [cookie] = [c for c in r.headers.get_list("set-cookie") if c.startswith(COOKIE + "=")]
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "path", "max-age"} <= attrs
    assert "path=/backoffice" in cookie.lower()
    assert "samesite=strict" in cookie.lower()
    assert "max-age=28800" in cookie.lower()
    assert "secure" not in attrs  # plain http (the test server)
    assert desk.tokens["admin"] not in cookie  # sealed, not the token
    [entry] = desk.entries("staff.login")
    assert entry.payload["role"] == "admin"
    page = desk.client.get("/backoffice/review")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "form-action 'self'" in csp
    assert "frame-ancestors 'none'" in csp


def test_session_cookie_is_secure_over_https(desk: Desk) -> None:
    with TestClient(desk.client.app, base_url="https://testserver") as client:
        r = login(client, desk.tokens["auditor"])
    assert r.status_code == 303
    assert r.headers["location"] == "/backoffice/audit"
    [cookie] = [c for c in r.headers.get_list("set-cookie") if c.startswith(COOKIE + "=")]
    assert "secure" in cookie.lower()


def test_login_refusals(desk: Desk) -> None:
    r = desk.client.post(
        "/backoffice/login", data={"token": desk.tokens["admin"]}, follow_redirects=False
    )
    assert r.status_code == 403  # no login CSRF
    assert COOKIE not in r.cookies
    r = login(desk.client, "sga_not-a-token")
    assert r.status_code == 401
    assert "令牌无效" in r.text
    assert COOKIE not in desk.client.cookies
    assert [e.payload["reason"] for e in desk.entries("staff.login_failed")] == ["unknown token"]


def test_no_session_goes_to_the_login_page_and_back(desk: Desk) -> None:
    r = desk.client.get("/backoffice/review?outcome=rejected", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == (
        "/backoffice/login?next=%2Fbackoffice%2Freview%3Foutcome%3Drejected"
    )
    r = login(desk.client, desk.tokens["admin"], nxt="/backoffice/review?outcome=rejected")
    assert r.headers["location"] == "/backoffice/review?outcome=rejected"
    # Never redirected off the back office.
    desk.client.cookies.clear()
    r = login(desk.client, desk.tokens["admin"], nxt="//evil.example/x")
    assert r.headers["location"] == "/backoffice/review"


def test_tampered_and_expired_sessions_are_refused(desk: Desk) -> None:
    state = desk.client.app.state.simgate  # type: ignore[attr-defined]
    expired = seal_session(state, desk.tokens["admin"], "c", 1_000_000_000)
    for value in (expired, "garbage", expired[:-4] + "AAAA"):
        desk.client.cookies.set(COOKIE, value, path="/backoffice")
        r = desk.client.get("/backoffice/review", follow_redirects=False)
        assert r.status_code == 303, value
        assert r.headers["location"].startswith("/backoffice/login")
        desk.client.cookies.clear()
    assert desk.entries("access.admin") == []


def test_a_disabled_user_is_signed_out_at_the_next_click(desk: Desk) -> None:
    client = signed_in(desk)
    assert client.get("/backoffice/review").status_code == 200
    with desk.sessions() as s, s.begin():
        s.execute(update(StaffUser).where(StaffUser.role == "admin").values(status="disabled"))
    r = client.get("/backoffice/review", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/backoffice/login")


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("auditor", "/backoffice/review"),
        ("auditor", "/backoffice/agents"),
        ("auditor", "/backoffice/risk"),
        ("admin", "/backoffice/audit"),
        ("admin", "/backoffice/audit/orders/ord_x/evidence.zip"),
    ],
)
def test_another_roles_page_is_forbidden(desk: Desk, role: str, path: str) -> None:
    client = signed_in(desk, role)
    r = client.get(path)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert "您的角色无权访问此页面" in r.text
    assert "auth.wrong_role" in r.text


def test_every_page_view_is_audited(desk: Desk) -> None:
    client = signed_in(desk)
    client.get("/backoffice/review", params={"outcome": "rejected"})
    [entry] = desk.entries("access.admin")
    assert entry.payload == {
        "method": "GET",
        "path": "/backoffice/review",
        "query": {"outcome": "rejected"},
    }


def test_logout(desk: Desk) -> None:
    client = signed_in(desk)
    page = client.get("/backoffice/review")
    r = client.post("/backoffice/logout", data={"csrf": "wrong"}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post("/backoffice/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert COOKIE not in client.cookies
    assert client.get("/backoffice/review", follow_redirects=False).status_code == 303
    assert len(desk.entries("staff.logout")) == 1


# --- review -------------------------------------------------------------------------------


def test_review_page_and_form(desk: Desk) -> None:
    order_id = desk.approvable()
    client = signed_in(desk)
    queue = client.get("/backoffice/review")
    assert f'href="/backoffice/review/{order_id}"' in queue.text
    page = client.get(f"/backoffice/review/{order_id}")
    assert page.status_code == 200
    for role in ("id_front", "id_back", "selfie"):
        assert f'src="/backoffice/review/{order_id}/images/{role}"' in page.text
    assert "<code>quality.photocopy</code>" in page.text
    assert "≥ 0.620" in page.text  # the face threshold beside the score
    assert "<code>quality.blur</code> 12" in page.text  # a raised quality signal, in words
    assert 'id="lookup-required"' not in page.text  # the lookup answered match
    image = client.get(f"/backoffice/review/{order_id}/images/id_front")
    assert image.headers["content-type"] == "image/jpeg"
    assert image.headers["cache-control"] == "no-store"

    url = f"/backoffice/review/{order_id}/decision"
    token = csrf_of(page.text)
    r = client.post(url, data={"decision": "approve", "reason": "ok", "csrf": "forged"})
    assert r.status_code == 403
    r = client.post(url, data={"decision": "approve", "reason": "  ", "csrf": token})
    assert r.status_code == 422
    assert 'data-code="review.reason_required"' in r.text
    assert desk.row(order_id).outcome == "needs_review"

    r = client.post(
        url,
        data={"decision": "approve", "reason": "人工核对无误", "csrf": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/backoffice/review/{order_id}?done=approve"
    done = client.get(r.headers["location"])
    assert 'data-outcome="approved"' in done.text
    assert "人工核对无误" in done.text
    assert 'id="review-form"' not in done.text
    assert 'id="recheck-form"' not in done.text
    assert desk.row(order_id).outcome == "approved"
    [entry] = desk.entries("order.reviewed")
    assert entry.payload["reason"] == "人工核对无误"

    again = client.post(url, data={"decision": "reject", "reason": "x", "csrf": token})
    assert again.status_code == 409
    missing = client.get("/backoffice/review/ord_nope")
    assert missing.status_code == 404


def test_an_order_the_lookup_never_confirmed_is_rechecked_not_approved(desk: Desk) -> None:
    order_id = desk.needs_review()  # lookup.unavailable
    client = signed_in(desk)
    page = client.get(f"/backoffice/review/{order_id}")
    assert "公民身份信息核查系统暂时不可用" in page.text  # lookup.unavailable in words
    assert 'id="lookup-required"' in page.text
    assert re.search(
        r'<input type="radio" name="decision" value="approve" required disabled>', page.text
    )
    assert 'id="recheck-form"' in page.text
    token = csrf_of(page.text)

    # A forged approval is refused by the server too (R5).
    url = f"/backoffice/review/{order_id}/decision"
    r = client.post(url, data={"decision": "approve", "reason": "人工放行", "csrf": token})
    assert r.status_code == 409
    assert 'data-code="review.lookup_required"' in r.text
    assert desk.row(order_id).outcome == "needs_review"

    recheck = f"/backoffice/review/{order_id}/recheck"
    assert client.post(recheck, data={"reason": "x", "csrf": "forged"}).status_code == 403
    r = client.post(recheck, data={"reason": " ", "csrf": token})
    assert r.status_code == 422
    assert 'id="recheck-error" data-code="review.reason_required"' in r.text
    assert desk.entries("order.recheck") == []
    r = client.post(
        recheck, data={"reason": "核查系统已恢复", "csrf": token}, follow_redirects=False
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/backoffice/review/{order_id}?done=recheck"
    assert ("simgate.check_order", order_id) in desk.sent
    done = client.get(r.headers["location"])
    assert 'data-done="recheck"' in done.text
    assert 'data-outcome=""' in done.text  # undecided again
    assert 'id="rechecking"' in done.text
    assert "核查系统已恢复" in done.text  # the history
    assert 'id="review-form"' not in done.text
    assert desk.row(order_id).status == "checking"
    [entry] = desk.entries("order.recheck")
    assert entry.payload["reason"] == "核查系统已恢复"

    # Sent again while the machine checks: refused, shown on the page.
    r = client.post(recheck, data={"reason": "again", "csrf": token})
    assert r.status_code == 409
    assert 'data-code="review.not_pending"' in r.text

    # Back in review three times over: the recheck form gives way to the limit.
    desk.decide(order_id)
    for _ in range(2):
        assert client.post(recheck, data={"reason": "再查", "csrf": token}).status_code == 200
        desk.decide(order_id)
    page = client.get(f"/backoffice/review/{order_id}")
    assert 'id="recheck-form"' not in page.text
    assert 'id="recheck-limit"' in page.text
    r = client.post(recheck, data={"reason": "再查", "csrf": token})
    assert r.status_code == 409
    assert 'data-code="review.too_many_rechecks"' in r.text
    r = client.post(url, data={"decision": "reject", "reason": "无法核实身份", "csrf": token})
    assert r.status_code == 200  # the redirect, followed
    assert desk.row(order_id).outcome == "rejected"


def test_admin_pages_never_show_a_full_id_number(desk: Desk) -> None:
    """Every fixture identity is typed into an order; whatever the outcome, the admin
    pages show masked numbers only (the auditor's evidence package is the exception)."""
    orders = []
    outcomes = [Outcome.NEEDS_REVIEW, Outcome.APPROVED, Outcome.REJECTED]
    for i, name in enumerate(IDENTITIES):
        order_id = desk.order(name)
        desk.read(order_id, name)
        if i == 0:  # in review for a reason a person may approve
            desk.decide(order_id, Outcome.NEEDS_REVIEW, ("quality.photocopy",), "match")
        else:
            desk.decide(order_id, outcomes[i % 3], ("lookup.unavailable",))
        orders.append(order_id)
        if i == 0:  # reviewed before its number is offered to the next order
            number = IDENTITIES[name]["id_number"]
            r = desk.client.post(
                f"/v1/review/orders/{order_id}/decision",
                json={"decision": "approve", "reason": f"typed {number}"},
                headers=desk.admin,
            )
            assert r.status_code == 200, r.text
    client = signed_in(desk)
    with desk.sessions() as s:
        agent_ids = [a.id for a in s.query(Agent)]
    pages = [
        "/backoffice/review",
        "/backoffice/review?outcome=needs_review",
        "/backoffice/review?outcome=reviewed",
        "/backoffice/agents",
        "/backoffice/risk",
        "/backoffice/badge",
        *(f"/backoffice/review/{o}" for o in orders),
        *(f"/backoffice/agents/{a}/inspection" for a in agent_ids),
    ]
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, path
        for identity in IDENTITIES.values():
            number = identity["id_number"]
            assert number not in r.text, (path, identity["name"])
            assert number.lower() not in r.text.lower(), path
    queue = client.get("/backoffice/review").text
    for identity in IDENTITIES.values():
        number = identity["id_number"]
        assert number[:3] + "*" * 11 + number[-4:] in queue  # shown, masked


# --- agents, inspection, risk ---------------------------------------------------------------


def test_agent_registry_forms(desk: Desk) -> None:
    client = signed_in(desk)
    page = client.get("/backoffice/agents")
    token = csrf_of(page.text)
    form = {
        "csrf": token,
        "name": "示例手机旗舰店",
        "legal_name": "示例通信科技有限公司",
        "licence_number": "91110105MA00000001",
        "agent_number": "CM-11-000123",
        "provinces": ["11", "31"],
        "channels": ["online", "door_to_door"],
        "products": "prepaid, data",
        "contact_name": "王经理",
    }
    bad = client.post("/backoffice/agents", data={**form, "provinces": []})
    assert bad.status_code == 422
    assert "provinces" in bad.text
    r = client.post("/backoffice/agents", data=form)
    assert r.status_code == 201, r.text
    key = re.search(r'<code id="new-key" class="secret">([^<]+)</code>', r.text)
    assert key is not None
    me = desk.client.get("/v1/agent", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert me.status_code == 200
    agent_id = me.json()["agent_id"]
    dup = client.post("/backoffice/agents", data=form)
    assert dup.status_code == 409
    assert 'data-code="agent.exists"' in dup.text

    url = f"/backoffice/agents/{agent_id}"
    assert client.post(f"{url}/suspend", data={"csrf": token, "reason": " "}).status_code == 422
    r = client.post(
        f"{url}/suspend", data={"csrf": token, "reason": "巡查发现问题"}, follow_redirects=False
    )
    assert r.status_code == 303
    with desk.sessions() as s:
        agent = s.get(Agent, agent_id)
        assert agent is not None
        assert (agent.status, agent.status_reason) == ("suspended", "巡查发现问题")
    again = client.post(f"{url}/suspend", data={"csrf": token, "reason": "x"})
    assert again.status_code == 409
    assert (
        client.post(f"{url}/reinstate", data={"csrf": token, "reason": "整改完成"}).status_code
        == 200
    )
    badge = client.post(f"{url}/badge", data={"csrf": token})
    assert badge.status_code == 200
    assert "/verify/agent?token=" in badge.text
    assert client.post(f"{url}/nope", data={"csrf": token}).status_code == 404
    assert client.post(f"{url}/revoke", data={"csrf": "x", "reason": "r"}).status_code == 403
    r = client.post(f"{url}/revoke", data={"csrf": token, "reason": "严重违规"})
    assert r.status_code == 200
    with desk.sessions() as s:
        agent = s.get(Agent, agent_id)
        assert agent is not None
        assert agent.status == "revoked"
    kinds = [e.kind for e in desk.entries("agent.suspended")] + [
        e.kind for e in desk.entries("agent.revoked")
    ]
    assert kinds == ["agent.suspended", "agent.revoked"]


def test_inspection_and_risk_pages(desk: Desk) -> None:
    order_id = desk.order()
    desk.decide(order_id, Outcome.REJECTED, ("document.expired",), "skipped")
    client = signed_in(desk)
    page = client.get("/backoffice/agents/agt_a/inspection")
    assert page.status_code == 200
    assert "<svg" in page.text
    assert 'aria-labelledby="chart-title chart-desc"' in page.text
    assert "document.expired" in page.text
    svg = client.get("/backoffice/agents/agt_a/chart.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    csv = client.get("/backoffice/agents/agt_a/inspection.csv")
    assert csv.text.startswith("section,name,")
    bad = client.get(
        "/backoffice/agents/agt_a/inspection", params={"from": "2026-02-01", "to": "2026-01-01"}
    )
    assert bad.status_code == 422
    assert client.get("/backoffice/agents/agt_nope/inspection").status_code == 404
    risk = client.get("/backoffice/risk")
    assert risk.status_code == 200
    assert 'data-agent="agt_a"' in risk.text


# --- the auditor ---------------------------------------------------------------------------


def test_auditor_search_chain_and_evidence(desk: Desk) -> None:
    order_id = desk.needs_review()
    client = signed_in(desk, "auditor")
    page = client.get("/backoffice/audit", params={"outcome": "needs_review"})
    assert page.status_code == 200
    assert f'data-order="{order_id}"' in page.text
    # A search shows the chain's head only; the whole chain is recomputed on request.
    assert 'id="chain"' not in page.text
    assert 'id="chain-head"' in page.text
    page = client.get("/backoffice/audit", params={"verify": "true"})
    assert 'data-ok="true"' in page.text
    none = client.get("/backoffice/audit", params={"outcome": "approved"})
    assert f'data-order="{order_id}"' not in none.text
    bad = client.get("/backoffice/audit", params={"from": "2026-13-01"})
    assert bad.status_code == 422
    assert 'data-code="audit.bad_time"' in bad.text

    r = client.get(f"/backoffice/audit/orders/{order_id}/evidence.zip")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    api = desk.client.get(f"/v1/audit/orders/{order_id}/evidence.zip", headers=desk.auditor)
    names = sorted(zipfile.ZipFile(io.BytesIO(r.content)).namelist())
    assert names == sorted(zipfile.ZipFile(io.BytesIO(api.content)).namelist())
    assert "declared.json" in names
    assert len(desk.entries("evidence.exported")) == 2
