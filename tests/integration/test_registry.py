"""The agent registry over real HTTP against the real stack: an agent created by an
admin sells, its key is rotated, it is suspended while one of its orders waits for the
national lookup (that order goes to review with ``agent.suspended``), reinstated, and
every admin request is in the audit log."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import select

from services.storage.models import AuditEntry, Order, Sim
from tests.integration.conftest import LiveStack, release_cards

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_agent_lifecycle_over_http(live: LiveStack) -> None:
    with live.sessions() as session:
        provinces = sorted(set(session.scalars(select(Sim.province))))
    r = httpx.post(
        f"{live.api}/v1/admin/agents",
        json={
            "name": "Lifecycle shop",
            "legal_name": "Lifecycle Trading Co.",
            "licence_number": "91310000MA0000000L",
            "agent_number": "CM-31-LIFE-1",
            "provinces": provinces,
            "products": ["prepaid"],
        },
        headers=live.admin,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    agent_id, first_key = r.json()["agent"]["id"], r.json()["api_key"]
    assert httpx.get(f"{live.api}/v1/agent", headers=_bearer(first_key)).status_code == 200

    # Rotation: the new key works, the old one stops at once.
    r = httpx.post(f"{live.api}/v1/admin/agents/{agent_id}/keys", headers=live.admin)
    assert r.status_code == 201, r.text
    key = r.json()["api_key"]
    r = httpx.get(f"{live.api}/v1/agent", headers=_bearer(first_key))
    assert (r.status_code, r.json()["error"]) == (401, "auth.key_revoked")
    assert httpx.get(f"{live.api}/v1/agent", headers=_bearer(key)).status_code == 200

    # Suspension while an order of the agent waits for the (down) lookup.
    release_cards(live, "good")
    live.set_faults(mode="error", failure_rate=1.0)
    try:
        r = live.post("good", key=key)
        assert r.status_code == 202, r.text
        order_id = r.json()["order_id"]
        deadline = time.monotonic() + 90
        while True:
            with live.sessions() as session:
                status = session.scalars(select(Order.status).where(Order.id == order_id)).one()
            if status == "waiting_lookup":
                break
            assert time.monotonic() < deadline, live.logs()
            time.sleep(0.2)
        r = httpx.post(
            f"{live.api}/v1/admin/agents/{agent_id}/suspend",
            json={"reason": "licence under review"},
            headers=live.admin,
        )
        assert r.status_code == 200, r.text
    finally:
        live.set_faults(mode="none")
    r = httpx.get(f"{live.api}/v1/orders/{order_id}", headers=_bearer(key))
    assert (r.status_code, r.json()["error"]) == (403, "agent.suspended")
    deadline = time.monotonic() + 90
    while True:
        with live.sessions() as session:
            order = session.get(Order, order_id)
            assert order is not None
        if order.status == "decided":
            break
        assert time.monotonic() < deadline, live.logs()
        time.sleep(0.3)
    assert order.outcome == "needs_review"
    assert "agent.suspended" in order.reasons["reasons"]

    # Reinstated: the same key works again and the agent sees its order.
    r = httpx.post(
        f"{live.api}/v1/admin/agents/{agent_id}/reinstate",
        json={"reason": "licence renewed"},
        headers=live.admin,
    )
    assert r.json()["status"] == "active"
    r = httpx.get(f"{live.api}/v1/orders/{order_id}", headers=_bearer(key))
    assert r.status_code == 200
    assert r.json()["reasons"] == order.reasons["reasons"]

    with live.sessions() as session:
        kinds = list(
            session.scalars(
                select(AuditEntry.kind)
                .where(AuditEntry.subject == agent_id)
                .order_by(AuditEntry.seq)
            )
        )
        paths = [
            e.payload["path"]
            for e in session.scalars(select(AuditEntry).where(AuditEntry.kind == "access.admin"))
        ]
    assert kinds == ["agent.created", "agent.key_rotated", "agent.suspended", "agent.reinstated"]
    for suffix in ("", "/keys", "/suspend", "/reinstate"):
        path = "/v1/admin/agents" + (f"/{agent_id}{suffix}" if suffix else "")
        assert path in paths
