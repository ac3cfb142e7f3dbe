"""The agent registry in-process (FastAPI TestClient): roles, create, update, key
rotation, suspend / reinstate / revoke, and that every back-office access is audited.

No worker runs; ``enqueue.send`` is replaced by a recorder. Revocation of an agent with
orders in flight against a real worker is in tests/integration/test_revocation.py.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from services.agents import create_agent
from services.api.app import create_app
from services.carrier import inventory
from services.config import Settings
from services.staff import create_staff
from services.storage import audit
from services.storage.db import engine_for, session_factory, upgrade
from services.storage.models import AuditEntry, Badge, Order, Sim, WebhookDelivery
from services.workers import enqueue
from tests.conftest import FIXTURES

ORDERS = FIXTURES / "orders"
NEW_AGENT: dict[str, Any] = {
    "name": "示例手机旗舰店",
    "legal_name": "示例通信科技有限公司",
    "licence_number": "91110105MA00000001",
    "agent_number": "CM-11-000123",
    "provinces": ["11", "31"],
    "products": ["prepaid"],
    "channels": ["online", "door_to_door"],
    "contact": {"name": "王经理", "phone": "010-00000000"},
    "webhook_url": "https://platform.example/hooks/simgate",
}


@dataclass
class Back:
    client: TestClient
    sessions: sessionmaker[Session]
    admin: dict[str, str]
    auditor: dict[str, str]
    agent_key: str
    sent: list[tuple[str, str]] = field(default_factory=list)

    def create(self, **overrides: Any) -> dict[str, Any]:
        r = self.client.post(
            "/v1/admin/agents", json={**NEW_AGENT, **overrides}, headers=self.admin
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def order_as(self, key: str) -> Any:
        headers = {"Authorization": f"Bearer {key}"}
        r = self.client.get("/v1/numbers", params={"limit": 1}, headers=headers)
        assert r.status_code == 200, r.text
        files = {
            part: (f"{part}.jpg", (ORDERS / f"good_{suffix}.jpg").read_bytes(), "image/jpeg")
            for part, suffix in (("id_front", "front"), ("id_back", "back"), ("selfie", "selfie"))
        }
        data = {
            "name": "姚亚金",
            "id_number": "53232819960626246X",
            "msisdn": r.json()["msisdns"][0],
            "delivery": "door_check",
            "callback_url": "https://shop.example/cb",
            "delivery_address": "北京市 朝阳区 示例路 1 号",
            "client": "203.0.113.7",
        }
        return self.client.post("/v1/orders", files=files, data=data, headers=headers)


@pytest.fixture
def back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Back]:
    settings = Settings(data_dir=tmp_path, env="test", redis_url="redis://127.0.0.1:1/0")
    url = settings.resolved_database_url
    upgrade(url)
    sessions = session_factory(url)
    with sessions() as s, s.begin():
        _, admin = create_staff(s, "Admin", "admin")
        _, auditor = create_staff(s, "Auditor", "auditor")
        _, agent_key = create_agent(s, "Old shop", agent_id="agt_old")
        inventory.seed_inventory(s, per_province=5)
    sent: list[tuple[str, str]] = []

    def record(task: str, arg: str, *, countdown: float | None = None, app: object = None) -> bool:
        sent.append((task, arg))
        return True

    monkeypatch.setattr(enqueue, "send", record)
    with TestClient(create_app(settings)) as client:
        yield Back(
            client,
            sessions,
            {"Authorization": f"Bearer {admin}"},
            {"Authorization": f"Bearer {auditor}"},
            agent_key,
            sent,
        )
    engine_for(url).dispose()


def test_roles(back: Back) -> None:
    r = back.client.get("/v1/admin/agents")
    assert (r.status_code, r.json()["error"]) == (401, "auth.missing_key")
    r = back.client.get("/v1/admin/agents", headers={"Authorization": "Bearer sga_nope"})
    assert (r.status_code, r.json()["error"]) == (401, "auth.invalid_key")
    r = back.client.get("/v1/admin/agents", headers=back.auditor)
    assert (r.status_code, r.json()["error"]) == (403, "auth.wrong_role")
    with back.sessions() as s:
        denied = s.scalars(select(AuditEntry).where(AuditEntry.kind == "access.denied")).one()
        assert denied.payload["path"] == "/v1/admin/agents"
        assert (denied.payload["role"], denied.payload["needs"]) == ("auditor", "admin")
    # An agent's API key is not a back-office token.
    r = back.client.get("/v1/admin/agents", headers={"Authorization": f"Bearer {back.agent_key}"})
    assert r.status_code == 401
    assert back.client.get("/v1/admin/agents", headers=back.admin).status_code == 200


def test_every_admin_access_is_audited(back: Back) -> None:
    back.client.get("/v1/admin/agents", params={"status": "active"}, headers=back.admin)
    back.client.get("/v1/admin/agents/agt_old", headers=back.admin)
    with back.sessions() as s:
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.kind == "access.admin")))
        assert [e.payload["path"] for e in entries] == [
            "/v1/admin/agents",
            "/v1/admin/agents/agt_old",
        ]
        assert entries[0].payload["query"] == {"status": "active"}
        assert entries[0].actor.startswith("stf_")
        assert audit.verify(s).ok


def test_create_and_read(back: Back) -> None:
    body = back.create()
    agent = body["agent"]
    assert body["api_key"].startswith("sgk_")
    assert agent["agent_number"] == "CM-11-000123"
    assert agent["provinces"] == ["11", "31"]
    assert agent["channels"] == ["door_to_door", "online"]
    assert agent["status"] == "active"
    assert len(agent["keys"]) == 1
    # The key is shown once: the registry lists only its prefix.
    assert body["api_key"] not in json.dumps(
        back.client.get(f"/v1/admin/agents/{agent['id']}", headers=back.admin).json()
    )
    # The new key works on the storefront API.
    r = back.client.get("/v1/agent", headers={"Authorization": f"Bearer {body['api_key']}"})
    assert r.status_code == 200, r.text
    # The agent number is the carrier's unified identifier: unique.
    r = back.client.post("/v1/admin/agents", json=NEW_AGENT, headers=back.admin)
    assert (r.status_code, r.json()["error"]) == (409, "agent.exists")
    with back.sessions() as s:
        created = s.scalars(select(AuditEntry).where(AuditEntry.kind == "agent.created")).one()
        assert created.subject == agent["id"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"provinces": ["Beijing"]}, "provinces"),
        ({"provinces": []}, "provinces"),
        ({"agent_number": "has space"}, "agent_number"),
        ({"channels": ["telepathy"]}, "channels"),
        ({"webhook_url": "ftp://x"}, "webhook_url"),
        ({"name": ""}, "name"),
    ],
)
def test_create_refuses_bad_fields(back: Back, change: dict[str, Any], problem: str) -> None:
    r = back.client.post("/v1/admin/agents", json={**NEW_AGENT, **change}, headers=back.admin)
    assert r.status_code == 422
    assert problem in json.dumps(r.json()["detail"])


def test_update_scope(back: Back) -> None:
    agent = back.create()["agent"]
    r = back.client.patch(
        f"/v1/admin/agents/{agent['id']}",
        json={"provinces": ["44"], "products": ["postpaid", "prepaid"]},
        headers=back.admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["provinces"] == ["44"]
    assert r.json()["products"] == ["postpaid", "prepaid"]
    assert r.json()["licence_number"] == NEW_AGENT["licence_number"]  # untouched
    r = back.client.patch("/v1/admin/agents/agt_nope", json={}, headers=back.admin)
    assert (r.status_code, r.json()["error"]) == (404, "agent.not_found")


def test_key_rotation(back: Back) -> None:
    body = back.create()
    agent_id, old = body["agent"]["id"], body["api_key"]
    r = back.client.post(f"/v1/admin/agents/{agent_id}/keys", headers=back.admin)
    assert r.status_code == 201, r.text
    new = r.json()["api_key"]
    assert r.json()["revoked_keys"] == 1
    r = back.client.get("/v1/agent", headers={"Authorization": f"Bearer {old}"})
    assert (r.status_code, r.json()["error"]) == (401, "auth.key_revoked")
    assert (
        back.client.get("/v1/agent", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    )
    # A hand-over period: keep the old key, then revoke it explicitly.
    r = back.client.post(
        f"/v1/admin/agents/{agent_id}/keys", params={"keep_old": "true"}, headers=back.admin
    )
    newer, newer_id = r.json()["api_key"], r.json()["key_id"]
    assert r.json()["revoked_keys"] == 0
    for key in (new, newer):
        assert (
            back.client.get("/v1/agent", headers={"Authorization": f"Bearer {key}"}).status_code
            == 200
        )
    view = back.client.get(f"/v1/admin/agents/{agent_id}", headers=back.admin).json()
    live_ids = [k["key_id"] for k in view["keys"] if k["revoked_at"] is None]
    first_id = next(k for k in live_ids if k != newer_id)
    r = back.client.delete(f"/v1/admin/agents/{agent_id}/keys/{first_id}", headers=back.admin)
    assert r.status_code == 200
    assert (
        back.client.get("/v1/agent", headers={"Authorization": f"Bearer {new}"}).status_code == 401
    )
    assert (
        back.client.get("/v1/agent", headers={"Authorization": f"Bearer {newer}"}).status_code
        == 200
    )


def test_suspend_and_reinstate(back: Back) -> None:
    body = back.create()
    agent_id, key = body["agent"]["id"], body["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    r = back.client.post(
        f"/v1/admin/agents/{agent_id}/suspend", json={"reason": "inspection"}, headers=back.admin
    )
    assert r.status_code == 200
    assert r.json()["status"] == "suspended"
    r = back.client.get("/v1/agent", headers=headers)
    assert (r.status_code, r.json()["error"]) == (403, "agent.suspended")
    r = back.client.post(
        f"/v1/admin/agents/{agent_id}/suspend", json={"reason": "x"}, headers=back.admin
    )
    assert (r.status_code, r.json()["error"]) == (409, "agent.suspended")
    r = back.client.post(
        f"/v1/admin/agents/{agent_id}/reinstate", json={"reason": "cleared"}, headers=back.admin
    )
    assert r.json()["status"] == "active"
    assert back.client.get("/v1/agent", headers=headers).status_code == 200
    r = back.client.post(f"/v1/admin/agents/{agent_id}/suspend", json={}, headers=back.admin)
    assert r.status_code == 422  # a reason is required


def test_revoke_stops_undecided_orders_and_tells_the_platform(back: Back) -> None:
    body = back.create()
    agent_id, key = body["agent"]["id"], body["api_key"]
    # The agent may sell the province whose numbers /v1/numbers offers.
    back.client.patch(
        f"/v1/admin/agents/{agent_id}", json={"provinces": _all_provinces(back)}, headers=back.admin
    )
    posted = [back.order_as(key) for _ in range(3)]
    assert [r.status_code for r in posted] == [202, 202, 202], [r.text for r in posted]
    order_ids = [r.json()["order_id"] for r in posted[:2]]
    # The third was sent to a person by the pipeline (its number stays reserved).
    in_review = posted[2].json()["order_id"]
    with back.sessions() as s, s.begin():
        s.execute(
            update(Order)
            .where(Order.id == in_review)
            .values(
                status="decided",
                outcome="needs_review",
                reasons={"reasons": ["quality.photocopy"], "notes": []},
                decided_at=dt.datetime.now(dt.UTC),
            )
        )
        s.add(
            Badge(
                serial="b1",
                agent_id=agent_id,
                token="SGB1.x.y",
                issued=dt.date(2026, 1, 1),
                expires=dt.date(2027, 1, 1),
            )
        )
    back.sent.clear()

    r = back.client.post(
        f"/v1/admin/agents/{agent_id}/revoke", json={"reason": "bulk opening"}, headers=back.admin
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["stopped_orders"]) == sorted(order_ids)
    assert r.json()["rejected_in_review"] == [in_review]
    assert r.json()["agent"]["status"] == "revoked"
    assert all(k["revoked_at"] for k in r.json()["agent"]["keys"])

    # Its key stops at once, saying why.
    r = back.client.get("/v1/agent", headers={"Authorization": f"Bearer {key}"})
    assert (r.status_code, r.json()["error"]) == (403, "agent.revoked")
    with back.sessions() as s:
        for oid in order_ids:
            order = s.get(Order, oid)
            assert order is not None
            assert (order.status, order.outcome) == ("decided", "rejected")
            assert order.reasons["reasons"] == ["agent.revoked"]
            # The number goes back to the inventory.
            sim = s.scalars(select(Sim).where(Sim.msisdn == order.msisdn)).one()
            assert sim.status == "available"
        # The order waiting for a person is rejected as a review; its number is free again.
        reviewed = s.get(Order, in_review)
        assert reviewed is not None
        assert reviewed.outcome == "rejected"
        assert reviewed.reasons["review"]["reason"].startswith("agent.revoked")
        sim = s.scalars(select(Sim).where(Sim.msisdn == reviewed.msisdn)).one()
        assert sim.status == "available"
        badge = s.get(Badge, "b1")
        assert badge is not None
        assert badge.revoked_at is not None
        hooks = list(s.scalars(select(WebhookDelivery)))
        events = sorted(h.event for h in hooks)
        assert events == ["agent.revoked", "order.decided", "order.decided", "order.decided"]
        agent_hook = next(h for h in hooks if h.event == "agent.revoked")
        assert agent_hook.url == NEW_AGENT["webhook_url"]
        assert agent_hook.order_id is None
        assert sorted(json.loads(agent_hook.body)["stopped_orders"]) == sorted(order_ids)
        assert json.loads(agent_hook.body)["rejected_in_review"] == [in_review]
        kinds = [e.kind for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
        assert "agent.revoked" in kinds
        assert kinds.count("order.decided") == 2
        assert kinds.count("order.reviewed") == 1
        assert audit.verify(s).ok
    # Every queued webhook was sent to the broker after its row committed.
    assert sorted(arg for task, arg in back.sent if task == enqueue.WEBHOOK) == sorted(
        h.id for h in hooks
    )
    # Revoked is final.
    for action in ("reinstate", "suspend", "revoke"):
        r = back.client.post(
            f"/v1/admin/agents/{agent_id}/{action}", json={"reason": "x"}, headers=back.admin
        )
        assert (r.status_code, r.json()["error"]) == (409, "agent.revoked")
    r = back.client.post(f"/v1/admin/agents/{agent_id}/keys", headers=back.admin)
    assert r.status_code == 409


def _all_provinces(back: Back) -> list[str]:
    with back.sessions() as s:
        return sorted(set(s.scalars(select(Sim.province))))
