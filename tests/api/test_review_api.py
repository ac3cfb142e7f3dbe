"""The review API in-process (FastAPI TestClient, temporary SQLite): the queue, one
order's evidence, its images, approve / reject of an order decided needs_review (the
number held for it meanwhile, activation code, audit entry, webhook outbox row, every
way a review is refused, R5: no approval without the lookup's match), and the recheck
that sends an order back to the worker's checking step. Decisions are recorded through
services.decisions.record_decision, the worker's own code path
(tests/api/review_desk.py); the same pages in a browser: tests/browser/test_backoffice.py;
a recheck through the real worker: tests/integration/test_review.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.carrier import inventory
from services.decisions import decision_webhook_id
from services.domain.states import Outcome, SimStatus
from services.privacy import id_hash
from services.reviews import MAX_RECHECKS
from services.storage import audit
from services.storage.models import ActivationCode, Agent, WebhookDelivery
from services.workers import enqueue
from tests.api.review_desk import IDENTITIES, ORDERS, Desk, desk_fixture

ID_NUMBER = IDENTITIES["good"]["id_number"]


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    yield from desk_fixture(tmp_path, monkeypatch)


def _review(desk: Desk, order_id: str, **body: object) -> Any:
    return desk.client.post(f"/v1/review/orders/{order_id}/decision", json=body, headers=desk.admin)


def _recheck(desk: Desk, order_id: str, reason: str | None = "查询系统已恢复，重新核查") -> Any:
    body = {} if reason is None else {"reason": reason}
    return desk.client.post(f"/v1/review/orders/{order_id}/recheck", json=body, headers=desk.admin)


# --- roles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/review/orders"),
        ("GET", "/v1/review/orders/ord_x"),
        ("GET", "/v1/review/orders/ord_x/images/selfie"),
        ("POST", "/v1/review/orders/ord_x/decision"),
        ("POST", "/v1/review/orders/ord_x/recheck"),
    ],
)
def test_only_admins_review(desk: Desk, method: str, path: str) -> None:
    body = {"decision": "reject", "reason": "x"}
    r = desk.client.request(method, path, json=body)
    assert (r.status_code, r.json()["error"]) == (401, "auth.missing_key")
    r = desk.client.request(method, path, json=body, headers=desk.agent)
    assert (r.status_code, r.json()["error"]) == (401, "auth.invalid_key")
    r = desk.client.request(method, path, json=body, headers=desk.auditor)
    assert (r.status_code, r.json()["error"]) == (403, "auth.wrong_role")


# --- the queue and one order ------------------------------------------------------------


def test_queue_puts_orders_waiting_for_a_person_first(desk: Desk) -> None:
    approved = desk.order()
    desk.read(approved)
    desk.decide(approved, Outcome.APPROVED)
    waiting = desk.needs_review()
    rejected = desk.order("expired")
    desk.decide(rejected, Outcome.REJECTED, ("document.expired",), "skipped")
    undecided = desk.order("four_cards")

    r = desk.client.get("/v1/review/orders", headers=desk.admin)
    assert r.status_code == 200, r.text
    ids = [o["order_id"] for o in r.json()["orders"]]
    # needs_review first, then the others newest first.
    assert ids == [waiting, undecided, rejected, approved]
    first = r.json()["orders"][0]
    assert first["reviewable"] is True
    assert first["reasons"] == ["lookup.unavailable"]
    assert first["id_number_masked"] == ID_NUMBER[:3] + "*" * 11 + ID_NUMBER[-4:]
    for identity in IDENTITIES.values():
        assert identity["id_number"] not in r.text

    # Page by page with the cursor: the same order.
    seen, before = [], None
    while True:
        params: dict[str, object] = {"limit": 1, **({"before": before} if before else {})}
        page = desk.client.get("/v1/review/orders", params=params, headers=desk.admin).json()
        seen += [o["order_id"] for o in page["orders"]]
        before = page["next_before"]
        if not before:
            break
    assert seen == ids

    only = desk.client.get(
        "/v1/review/orders", params={"outcome": "needs_review"}, headers=desk.admin
    ).json()
    assert [o["order_id"] for o in only["orders"]] == [waiting]
    progress = desk.client.get(
        "/v1/review/orders", params={"outcome": "undecided"}, headers=desk.admin
    ).json()
    assert [o["order_id"] for o in progress["orders"]] == [undecided]
    bad = desk.client.get("/v1/review/orders", params={"before": "x"}, headers=desk.admin)
    assert (bad.status_code, bad.json()["error"]) == (422, "review.bad_cursor")


def test_order_evidence_for_the_reviewer(desk: Desk) -> None:
    order_id = desk.needs_review()
    r = desk.client.get(f"/v1/review/orders/{order_id}", headers=desk.admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "needs_review"
    assert body["reviewable"] is True
    assert body["reasons"] == ["lookup.unavailable"]
    assert body["notes"] == ["quality.blur"]
    assert body["scores"]["face_match"]["thresholds"] == {"match": 0.62, "no_match": 0.4}
    assert body["scores"]["lookup"]["result"] == "unavailable"
    assert body["lookup"] == {"error": "timeout", "waited_s": 15.2, "result": "unavailable"}
    assert body["thresholds"]["card_limit"] == 5
    assert body["document"]["quality"]["portrait"] == {"quality.blur": 12}
    assert body["agent"]["agent_number"] == "SA-0001"
    assert body["sim"]["status"] == "reserved"  # held for the order while a person looks
    # The lookup never answered: no approval (R5), so no ship mode; a recheck is offered.
    assert body["lookup_confirmed"] is False
    assert body["ship_modes"] == []
    assert (body["can_recheck"], body["rechecks"], body["max_rechecks"]) == (True, [], 3)
    assert [i["role"] for i in body["images"]] == ["id_front", "id_back", "selfie"]
    kinds = [e["kind"] for e in body["audit"]]
    assert kinds == ["order.received", "order.decided"]
    assert ID_NUMBER not in r.text
    assert body["id_number_masked"] == body["declared_number_masked"]

    other = desk.client.get(f"/v1/review/orders/{desk.approvable()}", headers=desk.admin).json()
    assert other["lookup_confirmed"] is True
    assert other["ship_modes"] == ["ship_inactive", "activate_on_handover"]

    missing = desk.client.get("/v1/review/orders/ord_nope", headers=desk.admin)
    assert (missing.status_code, missing.json()["error"]) == (404, "order.not_found")


def test_images_are_decrypted_for_admins_never_cached_and_audited(desk: Desk) -> None:
    order_id = desk.needs_review()
    url = f"/v1/review/orders/{order_id}/images/selfie"
    r = desk.client.get(url, headers=desk.admin)
    assert r.status_code == 200
    assert r.content == (ORDERS / "good_selfie.jpg").read_bytes()
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert [e.payload["path"] for e in desk.entries("access.admin")] == [url]
    bad = desk.client.get(f"/v1/review/orders/{order_id}/images/evidence", headers=desk.admin)
    assert bad.status_code == 422  # the full reading is never an "image"
    none = desk.client.get("/v1/review/orders/ord_nope/images/selfie", headers=desk.admin)
    assert (none.status_code, none.json()["error"]) == (404, "image.not_found")


# --- approve and reject ----------------------------------------------------------------


def test_approve_uses_the_number_held_for_review_and_ships_inactive(desk: Desk) -> None:
    order_id = desk.approvable()
    before = desk.row(order_id)
    held = desk.sim(before.msisdn)
    assert (held.status, held.order_id) == (SimStatus.RESERVED, order_id)
    r = _review(desk, order_id, decision="approve", reason="人工核对证件与自拍一致")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["outcome"], body["ship_mode"]) == ("approved", "ship_inactive")
    assert body["reviewable"] is False
    assert body["can_recheck"] is False
    assert body["review"]["decision"] == "approve"
    assert body["review"]["previous_outcome"] == "needs_review"

    order = desk.row(order_id)
    assert order.outcome == "approved"
    assert order.reasons["reasons"] == ["quality.photocopy"]  # why a person looked
    assert order.decided_at is not None
    assert before.decided_at is not None
    assert order.decided_at > before.decided_at
    sim = desk.sim(order.msisdn)
    assert (sim.iccid, sim.status, sim.order_id, sim.agent_id) == (
        held.iccid,
        "shipped_inactive",
        order_id,
        "agt_a",
    )
    assert sim.holder_id_hash == id_hash(desk.settings.id_hash_key, ID_NUMBER)
    with desk.sessions() as s:
        code = s.get(ActivationCode, sim.iccid)
        assert code is not None
        assert code.order_id == order_id

    [entry] = desk.entries("order.reviewed")
    assert entry.subject == order_id
    assert entry.payload["decision"] == "approve"
    assert entry.payload["reason"] == "人工核对证件与自拍一致"
    assert entry.payload["previous_outcome"] == "needs_review"
    assert entry.payload["outcome"] == "approved"
    assert entry.payload["reviewer"] == entry.actor
    assert entry.actor.startswith("stf_")

    with desk.sessions() as s:
        hooks = list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.order_id == order_id)))
    assert len(hooks) == 2  # the needs_review decision, then the review
    [hook] = [h for h in hooks if '"review"' in h.body]
    sent = json.loads(hook.body)
    assert sent["event"] == "order.decided"
    assert (sent["outcome"], sent["ship_mode"]) == ("approved", "ship_inactive")
    assert sent["review"]["previous_outcome"] == "needs_review"
    assert "人工核对" not in hook.body  # the reviewer's words stay in the back office
    assert (enqueue.WEBHOOK, hook.id) in desk.sent


def test_the_number_is_held_while_a_person_looks_and_released_on_reject(desk: Desk) -> None:
    order_id = desk.needs_review(callback=False)
    order = desk.row(order_id)
    sim = desk.sim(order.msisdn)
    assert (sim.status, sim.order_id, sim.holder_id_hash) == ("reserved", order_id, None)
    # Held, not issued: no other order gets the number, and R2 does not count it.
    offered = desk.client.get("/v1/numbers", params={"limit": 200}, headers=desk.agent).json()
    assert order.msisdn not in offered["msisdns"]
    files = {
        p: (f"{p}.jpg", (ORDERS / f"good_{side}.jpg").read_bytes(), "image/jpeg")
        for p, side in (("id_front", "front"), ("id_back", "back"), ("selfie", "selfie"))
    }
    data = {**IDENTITIES["good"], "msisdn": order.msisdn, "delivery": "door_check"}
    r = desk.client.post("/v1/orders", files=files, data=data, headers=desk.agent)
    assert (r.status_code, r.json()["error"]) == (409, "order.msisdn_unavailable")
    with desk.sessions() as s:
        assert order.id_hash is not None
        cards = inventory.count_cards(s, order.id_hash, order.province, order.agent_id)
    assert (cards.in_province, cards.at_reseller) == (0, 0)

    r = _review(desk, order_id, decision="reject", reason="自拍与证件照明显不是同一人")
    assert r.status_code == 200, r.text
    assert (r.json()["outcome"], r.json()["ship_mode"]) == ("rejected", None)
    sim = desk.sim(order.msisdn)
    assert (sim.status, sim.order_id, sim.agent_id) == ("available", None, None)
    [entry] = desk.entries("order.reviewed")
    assert entry.payload["decision"] == "reject"
    assert entry.payload["reason"] == "自拍与证件照明显不是同一人"
    assert [t for t, _ in desk.sent if t == enqueue.WEBHOOK] == []  # no callback URL
    assert desk.order(msisdn=order.msisdn)  # the number is for sale again


def test_door_activation_only_with_a_confident_face_match(desk: Desk) -> None:
    gray = desk.approvable(face_verdict="gray")
    assert desk.client.get(f"/v1/review/orders/{gray}", headers=desk.admin).json()[
        "ship_modes"
    ] == ["ship_inactive"]
    r = _review(desk, gray, decision="approve", reason="ok", ship_mode="activate_on_handover")
    assert (r.status_code, r.json()["error"]) == (422, "review.ship_mode_not_allowed")
    assert desk.row(gray).outcome == "needs_review"

    good = desk.approvable()
    r = _review(desk, good, decision="approve", reason="ok", ship_mode="activate_on_handover")
    assert r.status_code == 200, r.text
    order = desk.row(good)
    assert order.ship_mode == "activate_on_handover"
    sim = desk.sim(order.msisdn)
    assert sim.status == "awaiting_handover"
    with desk.sessions() as s:
        assert s.get(ActivationCode, sim.iccid) is None  # the courier's check activates

    r = _review(desk, desk.needs_review(), decision="reject", reason="x", ship_mode="ship_inactive")
    assert (r.status_code, r.json()["error"]) == (422, "review.ship_mode_not_allowed")


def test_reason_is_required(desk: Desk) -> None:
    order_id = desk.approvable()
    r = _review(desk, order_id, decision="approve")
    assert (r.status_code, r.json()["error"]) == (422, "request.missing_field")
    r = _review(desk, order_id, decision="approve", reason="")
    assert (r.status_code, r.json()["error"]) == (422, "request.invalid")
    r = _review(desk, order_id, decision="approve", reason="   \n ")
    assert (r.status_code, r.json()["error"]) == (422, "review.reason_required")
    r = _review(desk, order_id, decision="maybe", reason="x")
    assert (r.status_code, r.json()["error"]) == (422, "request.invalid")
    assert desk.row(order_id).outcome == "needs_review"
    assert desk.entries("order.reviewed") == []


def test_an_id_number_in_the_reason_is_masked(desk: Desk) -> None:
    order_id = desk.approvable()
    r = _review(desk, order_id, decision="approve", reason=f"号码 {ID_NUMBER} 与证件一致")
    assert r.status_code == 200, r.text
    [entry] = desk.entries("order.reviewed")
    assert ID_NUMBER not in json.dumps(entry.payload, ensure_ascii=False)
    assert entry.payload["reason"] == f"号码 {ID_NUMBER[:3]}{'*' * 11}{ID_NUMBER[-4:]} 与证件一致"
    assert ID_NUMBER not in json.dumps(desk.row(order_id).reasons, ensure_ascii=False)


# --- R5: no approval without the lookup's match ----------------------------------------------


@pytest.mark.parametrize(
    ("reasons", "lookup_result"),
    [
        (("lookup.unavailable",), "unavailable"),
        (("lookup.not_checked",), "skipped"),
        (("lookup.request_refused",), "refused"),
        (("processing.failed",), None),  # the images were never read: never asked
        # A code says the lookup did not answer, whatever the recorded result.
        (("quality.photocopy", "lookup.unavailable"), "match"),
    ],
)
def test_approval_needs_the_lookups_match(
    desk: Desk, reasons: tuple[str, ...], lookup_result: str | None
) -> None:
    order_id = desk.needs_review(reasons=reasons, lookup_result=lookup_result)
    r = _review(desk, order_id, decision="approve", reason="照片人工核对一致")
    assert (r.status_code, r.json()["error"]) == (409, "review.lookup_required")
    order = desk.row(order_id)
    assert (order.status, order.outcome) == ("decided", "needs_review")
    assert desk.entries("order.reviewed") == []
    assert desk.sim(order.msisdn).status == "reserved"
    # Rejecting stays allowed.
    r = _review(desk, order_id, decision="reject", reason="核查系统无法确认身份")
    assert r.status_code == 200, r.text
    assert desk.row(order_id).outcome == "rejected"


@pytest.mark.parametrize("reason", ["agent.suspended", "quality.photocopy", "processing.failed"])
def test_an_order_in_review_for_another_reason_is_approved(desk: Desk, reason: str) -> None:
    """The lookup answered match; something else sent the order to a person (the agent
    was suspended meanwhile and is active again, a photocopy signal, a worker failure
    after the lookup)."""
    order_id = desk.needs_review(reasons=(reason,), lookup_result="match")
    r = _review(desk, order_id, decision="approve", reason="人工核对无误")
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "approved"
    assert desk.sim(desk.row(order_id).msisdn).status == "shipped_inactive"


# --- recheck --------------------------------------------------------------------------------


def test_recheck_sends_the_order_back_to_the_checks(desk: Desk) -> None:
    order_id = desk.needs_review()
    first = desk.row(order_id)
    desk.sent.clear()
    r = _recheck(desk, order_id)
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["status"], body["outcome"], body["ship_mode"]) == ("checking", None, None)
    assert body["reviewable"] is False
    assert body["sim"]["status"] == "reserved"  # still held for the order
    assert desk.sent == [(enqueue.CHECK, order_id)]  # the check step, by task name

    order = desk.row(order_id)
    assert (order.status, order.outcome, order.ship_mode, order.decided_at) == (
        "checking",
        None,
        None,
        None,
    )
    [entry] = order.reasons["rechecks"]
    assert order.reasons == {"rechecks": [entry]}
    assert entry["reason"] == "查询系统已恢复，重新核查"
    assert entry["previous_reasons"] == ["lookup.unavailable"]
    assert entry["by"].startswith("stf_")
    assert entry["at"]
    [audited] = desk.entries("order.recheck")
    assert (audited.subject, audited.actor) == (order_id, entry["by"])
    assert audited.payload == {
        "reason": "查询系统已恢复，重新核查",
        "reviewer": entry["by"],
        "previous_reasons": ["lookup.unavailable"],
    }
    # The agent sees an order being verified again.
    mine = desk.client.get(f"/v1/orders/{order_id}", headers=desk.agent).json()
    assert (mine["status"], mine["outcome"], mine["reasons"]) == ("checking", None, [])
    # Sent once: it is not waiting for a person any more.
    again = _recheck(desk, order_id)
    assert (again.status_code, again.json()["error"]) == (409, "review.not_pending")

    # The worker decides it again (record_decision, its own code path): approved this
    # time, on the number held all along.
    desk.decide(order_id, Outcome.APPROVED)
    order = desk.row(order_id)
    assert (order.status, order.outcome) == ("decided", "approved")
    assert order.reasons["rechecks"] == [entry]  # the history stays
    assert order.decided_at is not None
    assert first.decided_at is not None
    assert order.decided_at > first.decided_at
    sim = desk.sim(order.msisdn)
    assert (sim.status, sim.order_id) == ("awaiting_handover", order_id)
    assert sim.holder_id_hash == id_hash(desk.settings.id_hash_key, ID_NUMBER)
    decided = desk.entries("order.decided")
    assert [(e.subject, e.payload["outcome"]) for e in decided] == [
        (order_id, "needs_review"),
        (order_id, "approved"),
    ]
    with desk.sessions() as s:
        hooks = list(
            s.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.order_id == order_id)
                .order_by(WebhookDelivery.created_at)
            )
        )
        assert audit.verify(s).ok
    # One outbox row per decision, with ids that never collide.
    assert [h.id for h in hooks] == [
        decision_webhook_id(order_id),
        decision_webhook_id(order_id, 1),
    ]
    assert [json.loads(h.body)["outcome"] for h in hooks] == ["needs_review", "approved"]
    # Decided by the machine: nothing left for a person.
    r = _review(desk, order_id, decision="reject", reason="x")
    assert (r.status_code, r.json()["error"]) == (409, "review.not_pending")


def test_a_rechecked_order_back_in_review_is_approved_once_the_lookup_matched(
    desk: Desk,
) -> None:
    order_id = desk.needs_review()
    assert _recheck(desk, order_id).status_code == 202
    # The lookup answered match; the agent was suspended meanwhile: review again.
    desk.decide(order_id, Outcome.NEEDS_REVIEW, ("agent.suspended",), "match")
    view = desk.client.get(f"/v1/review/orders/{order_id}", headers=desk.admin).json()
    assert (view["reviewable"], view["lookup_confirmed"]) == (True, True)
    assert [r["previous_reasons"] for r in view["rechecks"]] == [["lookup.unavailable"]]
    assert desk.sim(desk.row(order_id).msisdn).status == "reserved"
    r = _review(desk, order_id, decision="approve", reason="代理商已恢复，人工核对无误")
    assert r.status_code == 200, r.text
    order = desk.row(order_id)
    assert order.outcome == "approved"
    assert len(order.reasons["rechecks"]) == 1
    assert order.reasons["review"]["decision"] == "approve"


def test_too_many_rechecks(desk: Desk) -> None:
    order_id = desk.needs_review()
    for _ in range(MAX_RECHECKS):
        assert _recheck(desk, order_id).status_code == 202
        desk.decide(order_id)  # still down: back to review
    view = desk.client.get(f"/v1/review/orders/{order_id}", headers=desk.admin).json()
    assert (view["reviewable"], view["can_recheck"]) == (True, False)
    assert len(view["rechecks"]) == MAX_RECHECKS
    r = _recheck(desk, order_id)
    assert (r.status_code, r.json()["error"]) == (409, "review.too_many_rechecks")
    assert desk.row(order_id).status == "decided"
    assert len(desk.entries("order.recheck")) == MAX_RECHECKS
    assert len(desk.entries("order.decided")) == MAX_RECHECKS + 1
    with desk.sessions() as s:
        ids = set(s.scalars(select(WebhookDelivery.id).where(WebhookDelivery.order_id == order_id)))
    assert len(ids) == MAX_RECHECKS + 1
    assert (
        _review(desk, order_id, decision="reject", reason="核查系统持续不可用").status_code == 200
    )


def test_recheck_refusals(desk: Desk) -> None:
    order_id = desk.needs_review()
    r = _recheck(desk, order_id, None)
    assert (r.status_code, r.json()["error"]) == (422, "request.missing_field")
    r = _recheck(desk, order_id, "")
    assert (r.status_code, r.json()["error"]) == (422, "request.invalid")
    r = _recheck(desk, order_id, "  \n ")
    assert (r.status_code, r.json()["error"]) == (422, "review.reason_required")
    assert desk.row(order_id).status == "decided"
    assert desk.entries("order.recheck") == []
    assert [t for t, _ in desk.sent if t == enqueue.CHECK] == []

    approved = desk.order()
    desk.read(approved)
    desk.decide(approved, Outcome.APPROVED)
    r = _recheck(desk, approved)
    assert (r.status_code, r.json()["error"]) == (409, "review.not_pending")
    r = _recheck(desk, desk.order())  # still being verified
    assert (r.status_code, r.json()["error"]) == (409, "review.not_pending")
    assert _review(desk, order_id, decision="reject", reason="x").status_code == 200
    r = _recheck(desk, order_id)
    assert (r.status_code, r.json()["error"]) == (409, "review.already_reviewed")
    r = _recheck(desk, "ord_nope")
    assert (r.status_code, r.json()["error"]) == (404, "order.not_found")
    assert desk.entries("order.recheck") == []


def test_an_id_number_in_the_recheck_reason_is_masked(desk: Desk) -> None:
    order_id = desk.needs_review()
    assert _recheck(desk, order_id, f"号码 {ID_NUMBER} 需再查").status_code == 202
    [entry] = desk.entries("order.recheck")
    assert ID_NUMBER not in json.dumps(entry.payload, ensure_ascii=False)
    assert ID_NUMBER not in json.dumps(desk.row(order_id).reasons, ensure_ascii=False)


# --- orders decided before numbers were held; cancel ----------------------------------------


def _as_decided_before_numbers_were_held(desk: Desk, order_id: str) -> str:
    """needs_review used to give the number back: release it like the old code did."""
    with desk.sessions() as s, s.begin():
        assert inventory.transition(s, order_id, SimStatus.AVAILABLE)
    msisdn = desk.row(order_id).msisdn
    assert desk.sim(msisdn).status == "available"
    return msisdn


def test_approve_reserves_the_number_again_for_an_order_decided_before(desk: Desk) -> None:
    order_id = desk.approvable()
    msisdn = _as_decided_before_numbers_were_held(desk, order_id)
    assert _review(desk, order_id, decision="approve", reason="ok").status_code == 200
    assert (desk.sim(msisdn).status, desk.sim(msisdn).order_id) == ("shipped_inactive", order_id)


def test_approve_when_the_number_was_taken_meanwhile(desk: Desk) -> None:
    order_id = desk.approvable()
    msisdn = _as_decided_before_numbers_were_held(desk, order_id)
    other = desk.order(msisdn=msisdn)  # the number went back to the inventory
    r = _review(desk, order_id, decision="approve", reason="ok")
    assert (r.status_code, r.json()["error"]) == (409, "order.msisdn_unavailable")
    # Nothing of the review was written; the other order keeps its number.
    assert desk.row(order_id).outcome == "needs_review"
    assert desk.entries("order.reviewed") == []
    assert desk.sim(msisdn).order_id == other
    # A recheck needs the number too.
    r = _recheck(desk, order_id)
    assert (r.status_code, r.json()["error"]) == (409, "order.msisdn_unavailable")
    assert desk.row(order_id).status == "decided"
    assert desk.entries("order.recheck") == []
    # Rejecting needs no number, and leaves the other order's alone.
    assert _review(desk, order_id, decision="reject", reason="number gone").status_code == 200
    assert (desk.sim(msisdn).status, desk.sim(msisdn).order_id) == ("reserved", other)


def test_recheck_reserves_the_number_again_for_an_order_decided_before(desk: Desk) -> None:
    order_id = desk.needs_review()
    msisdn = _as_decided_before_numbers_were_held(desk, order_id)
    assert _recheck(desk, order_id).status_code == 202
    assert (desk.sim(msisdn).status, desk.sim(msisdn).order_id) == ("reserved", order_id)


def test_cancel_releases_the_number_held_for_review(desk: Desk) -> None:
    order_id = desk.approvable()
    msisdn = desk.row(order_id).msisdn
    r = desk.client.post(f"/v1/orders/{order_id}/cancel", headers=desk.agent)
    assert r.status_code == 200, r.text
    assert r.json()["cancelled_at"] is not None
    sim = desk.sim(msisdn)
    assert (sim.status, sim.order_id) == ("available", None)
    # Cancelled: no longer waiting for a person, neither reviewed nor rechecked.
    view = desk.client.get(f"/v1/review/orders/{order_id}", headers=desk.admin).json()
    assert (view["reviewable"], view["can_recheck"]) == (False, False)
    r = _review(desk, order_id, decision="approve", reason="ok")
    assert (r.status_code, r.json()["error"]) == (409, "review.not_pending")
    r = _recheck(desk, order_id)
    assert (r.status_code, r.json()["error"]) == (409, "review.not_pending")
    assert desk.sim(msisdn).status == "available"
    queue = desk.client.get("/v1/review/orders", headers=desk.admin).json()["orders"]
    assert [o["reviewable"] for o in queue if o["order_id"] == order_id] == [False]


# --- refused -----------------------------------------------------------------------------


def test_only_an_order_waiting_for_review_is_reviewed_once(desk: Desk) -> None:
    approved = desk.order()
    desk.read(approved)
    desk.decide(approved, Outcome.APPROVED)
    r = _review(desk, approved, decision="reject", reason="x")
    assert (r.status_code, r.json()["error"]) == (409, "review.not_pending")

    undecided = desk.order()
    r = _review(desk, undecided, decision="approve", reason="x")
    assert (r.status_code, r.json()["error"]) == (409, "review.not_pending")

    order_id = desk.needs_review()
    assert _review(desk, order_id, decision="reject", reason="first").status_code == 200
    r = _review(desk, order_id, decision="approve", reason="second")
    assert (r.status_code, r.json()["error"]) == (409, "review.already_reviewed")
    assert desk.row(order_id).outcome == "rejected"
    assert [e.payload["reason"] for e in desk.entries("order.reviewed")] == ["first"]

    r = _review(desk, "ord_nope", decision="approve", reason="x")
    assert (r.status_code, r.json()["error"]) == (404, "order.not_found")


def test_approve_applies_the_card_limit_again(desk: Desk) -> None:
    order_id = desk.approvable()
    order = desk.row(order_id)
    assert order.id_hash is not None
    with desk.sessions() as s, s.begin():
        # Five cards sold by this agent elsewhere (its own province has the held one).
        other = next(p for p in ("11", "31", "44", "51") if p != order.province)
        inventory.issue_existing(s, order.id_hash, other, 5, agent_id=order.agent_id)
    r = _review(desk, order_id, decision="approve", reason="ok")
    assert (r.status_code, r.json()["error"]) == (409, "review.card_limit")
    assert desk.row(order_id).outcome == "needs_review"
    sim = desk.sim(order.msisdn)
    assert (sim.status, sim.order_id) == ("reserved", order_id)  # still held, not issued


def test_a_suspended_agents_order_is_not_approved(desk: Desk) -> None:
    order_id = desk.approvable()
    with desk.sessions() as s, s.begin():
        agent = s.get(Agent, "agt_a")
        assert agent is not None
        agent.status = "suspended"
    r = _review(desk, order_id, decision="approve", reason="ok")
    assert (r.status_code, r.json()["error"]) == (409, "agent.suspended")
    assert _review(desk, order_id, decision="reject", reason="agent suspended").status_code == 200


def test_an_order_whose_number_was_not_read_is_held_by_the_typed_number(desk: Desk) -> None:
    order_id = desk.order()
    # The worker failed on the images after the lookup had answered match.
    desk.decide(order_id, Outcome.NEEDS_REVIEW, ("processing.failed",), "match")
    assert desk.row(order_id).id_hash is None
    assert _review(desk, order_id, decision="approve", reason="photos checked").status_code == 200
    sim = desk.sim(desk.row(order_id).msisdn)
    assert sim.holder_id_hash == id_hash(desk.settings.id_hash_key, ID_NUMBER)  # R2 counts it
