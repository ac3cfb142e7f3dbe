"""The door check (R6) through real processes: logistics assigns, the courier sends the
recipient's ID and face photos, a worker compares them with the verified order, and
only a match activates the SIM."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services import devstack
from services.storage.models import AuditEntry, Sim
from tests.integration.conftest import LiveStack, approved_order, logistics

pytestmark = [pytest.mark.slow, pytest.mark.integration]
HANDOVER = devstack.REPO / "fixtures" / "handover"
ORDERS = devstack.ORDER_FIXTURES


def _courier(live: LiveStack) -> tuple[str, dict[str, str]]:
    r = httpx.post(
        f"{live.api}/v1/logistics/couriers", json={"name": "round 7"}, headers=logistics(live)
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return body["courier_id"], {"Authorization": f"Bearer {body['token']}"}


def _assign(live: LiveStack, order_id: str, courier_id: str) -> None:
    r = httpx.post(
        f"{live.api}/v1/logistics/deliveries",
        json={"order_id": order_id, "courier_id": courier_id},
        headers=logistics(live),
    )
    assert r.status_code == 201, r.text


def _handover(
    live: LiveStack, order_id: str, auth: dict[str, str], id_photo: str, face: str
) -> httpx.Response:
    files = {
        "id_photo": ("id.jpg", (ORDERS / id_photo).read_bytes(), "image/jpeg"),
        "face_photo": ("face.jpg", (HANDOVER / face).read_bytes(), "image/jpeg"),
    }
    return httpx.post(
        f"{live.api}/v1/deliveries/{order_id}/handover", files=files, headers=auth, timeout=60
    )


def _result(
    live: LiveStack, order_id: str, attempt_id: str, auth: dict[str, str]
) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = httpx.get(f"{live.api}/v1/deliveries/{order_id}/handover/{attempt_id}", headers=auth)
        body: dict[str, Any] = r.json()
        if body.get("result") in ("handed_over", "refused"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"handover {attempt_id} not decided\n{live.logs()}")


def _sim_status(live: LiveStack, order_id: str) -> str:
    with live.sessions() as session:
        return session.scalars(select(Sim.status).where(Sim.order_id == order_id)).one()


def _check(
    live: LiveStack, order_id: str, auth: dict[str, str], id_photo: str, face: str
) -> dict[str, Any]:
    r = _handover(live, order_id, auth, id_photo, face)
    assert r.status_code == 202, r.text
    return _result(live, order_id, r.json()["attempt_id"], auth)


def test_matching_recipient_gets_the_sim_activated(live: LiveStack) -> None:
    order_id = approved_order(live)
    courier_id, auth = _courier(live)
    _assign(live, order_id, courier_id)
    assert _sim_status(live, order_id) == "awaiting_handover"
    listed = httpx.get(f"{live.api}/v1/deliveries", headers=auth).json()
    assert [d["order_id"] for d in listed] == [order_id]
    body = _check(live, order_id, auth, "good_front.jpg", "recipient_face.jpg")
    assert body["result"] == "handed_over", body
    assert body["scores"]["face_vs_verified_portrait"]["verdict"] == "match"
    assert _sim_status(live, order_id) == "active"
    # No second activation: the delivery is closed.
    again = _handover(live, order_id, auth, "good_front.jpg", "recipient_face.jpg")
    assert again.status_code == 409
    assert again.json()["error"] == "delivery.closed"
    with live.sessions() as session:
        kinds = list(session.scalars(select(AuditEntry.kind).where(AuditEntry.subject == order_id)))
    assert kinds.count("handover.decided") == 1


def test_another_person_is_refused(live: LiveStack) -> None:
    order_id = approved_order(live)
    courier_id, auth = _courier(live)
    _assign(live, order_id, courier_id)
    body = _check(live, order_id, auth, "good_front.jpg", "other_person_face.jpg")
    assert body["result"] == "refused"
    assert "face.mismatch" in body["reasons"]
    assert _sim_status(live, order_id) == "awaiting_handover"


def test_another_card_is_refused_and_repeated_failures_lock(live: LiveStack) -> None:
    order_id = approved_order(live)
    courier_id, auth = _courier(live)
    _assign(live, order_id, courier_id)
    # The same person (same face) showing a card with another number and name.
    for attempt in range(live.stack.settings.handover_max_failures):
        body = _check(live, order_id, auth, "lookup_name_mismatch_front.jpg", "recipient_face.jpg")
        assert body["result"] == "refused"
        assert body["reasons"] == ["handover.card_mismatch"], (attempt, body)
    locked = _handover(live, order_id, auth, "good_front.jpg", "recipient_face.jpg")
    assert locked.status_code == 409
    assert locked.json()["error"] == "delivery.closed"
    assert _sim_status(live, order_id) == "awaiting_handover"
    with live.sessions() as session:
        n = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.subject == order_id, AuditEntry.kind == "handover.locked")
        )
    assert n == 1


def test_couriers_act_only_on_their_round_and_only_on_door_check_orders(live: LiveStack) -> None:
    order_id = approved_order(live)
    courier_id, _ = _courier(live)
    _, other_auth = _courier(live)
    _assign(live, order_id, courier_id)
    r = _handover(live, order_id, other_auth, "good_front.jpg", "recipient_face.jpg")
    assert r.status_code == 404
    assert r.json()["error"] == "delivery.not_found"
    inactive = approved_order(live, delivery="no_door_check")
    r = httpx.post(
        f"{live.api}/v1/logistics/deliveries",
        json={"order_id": inactive, "courier_id": courier_id},
        headers=logistics(live),
    )
    assert r.status_code == 409
    assert r.json()["error"] == "delivery.not_deliverable"
    assert httpx.post(f"{live.api}/v1/logistics/couriers", json={"name": "x"}).status_code == 401


def test_a_cancelled_order_cannot_be_handed_over(live: LiveStack) -> None:
    order_id = approved_order(live)
    courier_id, auth = _courier(live)
    _assign(live, order_id, courier_id)
    r = httpx.post(f"{live.api}/v1/orders/{order_id}/cancel", headers=live.auth)
    assert r.status_code == 200, r.text
    assert r.json()["cancelled_at"] is not None
    with live.sessions() as session:
        sim = session.scalars(select(Sim).where(Sim.msisdn == r.json()["msisdn"])).one()
    assert sim.status == "available"
    assert sim.order_id is None
    late = _handover(live, order_id, auth, "good_front.jpg", "recipient_face.jpg")
    assert late.status_code == 409
    assert late.json()["error"] == "delivery.closed"
