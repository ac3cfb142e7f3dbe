"""The regulator's view, leak tracing and the carrier's usage reports, in-process
(FastAPI TestClient, temporary SQLite): roles, filters, the evidence zip's hashes, a
tampered chain, trace lookups, usage reports. No worker runs: decisions are recorded
through services.decisions.record_decision, the code path the pipeline uses.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from services.agents import create_agent
from services.api.app import create_app
from services.carrier import inventory
from services.config import Settings
from services.decisions import record_decision
from services.domain.decide import Decision, Evidence
from services.domain.states import Delivery, Outcome, ShipMode, SimStatus
from services.staff import create_staff
from services.storage.db import engine_for, session_factory, upgrade
from services.storage.models import AuditEntry, Blob, Order, Sim
from services.workers import enqueue
from tests.conftest import FIXTURES

ORDERS = FIXTURES / "orders"
PARTS = {"id_front": "front", "id_back": "back", "selfie": "selfie"}
NAME, ID_NUMBER = "姚亚金", "53232819960626246X"
ADDRESS = "云南省 示例市 示例路 8 号"
MASKED = "532***********246X"


@dataclass
class Api:
    client: TestClient
    settings: Settings
    sessions: sessionmaker[Session]
    agent_key: str
    admin: dict[str, str]
    auditor: dict[str, str]

    def order(self, msisdn: str | None = None) -> str:
        msisdn = (
            msisdn
            or self.client.get("/v1/numbers", params={"limit": 1}, headers=self.agent).json()[
                "msisdns"
            ][0]
        )
        files = {
            p: (f"{p}.jpg", (ORDERS / f"good_{s}.jpg").read_bytes(), "image/jpeg")
            for p, s in PARTS.items()
        }
        data = {
            "name": NAME,
            "id_number": ID_NUMBER,
            "msisdn": msisdn,
            "delivery": "door_check",
            "delivery_address": ADDRESS,
        }
        r = self.client.post("/v1/orders", files=files, data=data, headers=self.agent)
        assert r.status_code == 202, r.text
        order_id: str = r.json()["order_id"]
        return order_id

    def decide(self, order_id: str, outcome: Outcome = Outcome.APPROVED) -> None:
        with self.sessions() as s:
            order = s.get(Order, order_id)
            assert order is not None
        mode = ShipMode.ACTIVATE_ON_HANDOVER if outcome == Outcome.APPROVED else None
        reasons = () if outcome == Outcome.APPROVED else ("document.number_invalid",)
        decision = Decision(outcome, mode, reasons, (), "test-policy.1")
        assert record_decision(
            self.sessions,
            self.settings,
            order,
            decision,
            Evidence(delivery=Delivery.DOOR_CHECK),
            card_limit=5,
        )

    @property
    def agent(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.agent_key}"}

    def sim_of(self, order_id: str) -> Sim:
        with self.sessions() as s:
            order = s.get(Order, order_id)
            assert order is not None
            sim = s.scalars(select(Sim).where(Sim.msisdn == order.msisdn)).one()
            s.expunge(sim)
            return sim

    def entries(self, kind: str) -> list[AuditEntry]:
        with self.sessions() as s:
            return list(s.scalars(select(AuditEntry).where(AuditEntry.kind == kind)))


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    settings = Settings(
        data_dir=tmp_path, env="test", redis_url="redis://127.0.0.1:1/0", policy_version="p"
    )
    url = settings.resolved_database_url
    upgrade(url)
    sessions = session_factory(url)
    with sessions() as s, s.begin():
        agent, key = create_agent(s, "Storefront A", agent_id="agt_a")
        agent.agent_number = "SA-0001"
        inventory.seed_inventory(s, per_province=5)
        _, admin = create_staff(s, "Admin", "admin")
        _, auditor = create_staff(s, "Regulator", "auditor")
    monkeypatch.setattr(enqueue, "send", lambda *a, **k: True)
    with TestClient(create_app(settings)) as client:
        yield Api(
            client,
            settings,
            sessions,
            key,
            {"Authorization": f"Bearer {admin}"},
            {"Authorization": f"Bearer {auditor}"},
        )
    engine_for(url).dispose()


def logistics(api: Api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.settings.logistics_token}"}


# --- roles -----------------------------------------------------------------------------

AUDITOR_ONLY = ["/v1/audit/decisions", "/v1/audit/verify", "/v1/audit/orders/ord_x/evidence.zip"]


@pytest.mark.parametrize("path", [*AUDITOR_ONLY, "/v1/trace/sims?iccid=1"])
def test_no_token_and_agent_key_are_refused(api: Api, path: str) -> None:
    r = api.client.get(path)
    assert (r.status_code, r.json()["error"]) == (401, "auth.missing_key")
    r = api.client.get(path, headers=api.agent)
    assert (r.status_code, r.json()["error"]) == (401, "auth.invalid_key")


@pytest.mark.parametrize("path", AUDITOR_ONLY)
def test_admin_is_not_an_auditor(api: Api, path: str) -> None:
    r = api.client.get(path, headers=api.admin)
    assert (r.status_code, r.json()["error"]) == (403, "auth.wrong_role")
    assert api.entries("access.auditor") == []


def test_auditor_may_not_trace(api: Api) -> None:
    r = api.client.get("/v1/trace/sims", params={"iccid": "1"}, headers=api.auditor)
    assert (r.status_code, r.json()["error"]) == (403, "auth.wrong_role")


# --- decisions -------------------------------------------------------------------------


def test_decisions_search(api: Api) -> None:
    approved, rejected, undecided = api.order(), api.order(), api.order()
    api.decide(approved)
    api.decide(rejected, Outcome.REJECTED)

    def ids(**params: Any) -> list[str]:
        r = api.client.get("/v1/audit/decisions", params=params, headers=api.auditor)
        assert r.status_code == 200, r.text
        return [d["order_id"] for d in r.json()["decisions"]]

    assert ids() == [rejected, approved]  # newest decision first; undecided not listed
    assert undecided not in ids()
    assert ids(outcome="approved") == [approved]
    assert ids(outcome="rejected", agent_id="agt_a") == [rejected]
    assert ids(agent_id="agt_other") == []
    with api.sessions() as s:
        order = s.get(Order, approved)
        assert order is not None
        assert order.decided_at is not None
        day = order.decided_at.date()
    assert ids(**{"from": day.isoformat(), "to": day.isoformat()}) == [rejected, approved]
    assert ids(to=str(day.replace(year=day.year - 1))) == []
    assert ids(**{"from": str(day.replace(year=day.year + 1))}) == []

    r = api.client.get("/v1/audit/decisions", params={"limit": 1}, headers=api.auditor)
    page = r.json()
    assert [d["order_id"] for d in page["decisions"]] == [rejected]
    assert ids(limit=1, before=page["next_before"]) == [approved]

    d = next(
        d
        for d in api.client.get("/v1/audit/decisions", headers=api.auditor).json()["decisions"]
        if d["order_id"] == approved
    )
    assert d["agent_name"] == "Storefront A"
    assert d["agent_number"] == "SA-0001"
    assert (d["outcome"], d["ship_mode"]) == ("approved", "activate_on_handover")
    assert d["policy_version"] == "test-policy.1"
    assert d["id_number_masked"] == MASKED
    assert ID_NUMBER not in r.text


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"outcome": "maybe"}, "request.invalid"),
        ({"from": "2026-11-21", "to": "2026-11-20"}, "audit.bad_range"),
        ({"from": "yesterday"}, "audit.bad_time"),
        ({"limit": "0"}, "request.invalid"),
    ],
)
def test_decisions_bad_filters(api: Api, params: dict[str, str], code: str) -> None:
    r = api.client.get("/v1/audit/decisions", params=params, headers=api.auditor)
    assert (r.status_code, r.json()["error"]) == (422, code)


def test_every_auditor_request_is_logged(api: Api) -> None:
    api.client.get("/v1/audit/decisions", params={"outcome": "rejected"}, headers=api.auditor)
    [entry] = api.entries("access.auditor")
    assert entry.payload == {
        "method": "GET",
        "path": "/v1/audit/decisions",
        "query": {"outcome": "rejected"},
    }


# --- the chain -------------------------------------------------------------------------


def test_verify_ok_then_tampered(api: Api) -> None:
    api.order()
    r = api.client.get("/v1/audit/verify", headers=api.auditor)
    body = r.json()
    assert body["ok"] is True
    assert body["first_bad_seq"] is None
    with api.sessions() as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert last is not None
    assert body["head"] == {"seq": last.seq, "hash": last.hash}
    assert body["entries"] == last.seq

    with api.sessions() as s, s.begin():
        s.execute(text("DROP TRIGGER audit_log_no_update"))
        s.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE seq = 1"))
    body = api.client.get("/v1/audit/verify", headers=api.auditor).json()
    assert (body["ok"], body["first_bad_seq"]) == (False, 1)
    assert body["problem"] == "content does not match its hash"


# --- the evidence package ----------------------------------------------------------------


def _zip(api: Api, order_id: str) -> zipfile.ZipFile:
    r = api.client.get(f"/v1/audit/orders/{order_id}/evidence.zip", headers=api.auditor)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == f'attachment; filename="evidence-{order_id}.zip"'
    return zipfile.ZipFile(io.BytesIO(r.content))


def test_evidence_zip_of_an_unread_order(api: Api) -> None:
    order_id = api.order()
    zf = _zip(api, order_id)
    names = set(zf.namelist())
    assert {"order.json", "audit.json", "manifest.json"} <= names
    assert {"id_front.jpg", "id_back.jpg", "selfie.jpg"} <= names
    assert "reading.json" not in names
    # What the agent typed, for the regulator only: in full, with the delivery address.
    declared = json.loads(zf.read("declared.json"))
    assert declared == {"name": NAME, "id_number": ID_NUMBER, "delivery_address": ADDRESS}
    manifest = json.loads(zf.read("manifest.json"))
    assert [p["file"] for p in manifest["problems"]] == ["reading"]
    with api.sessions() as s:
        recorded = {
            b.role: b.sha256 for b in s.scalars(select(Blob).where(Blob.order_id == order_id))
        }
    for f in manifest["files"]:
        assert hashlib.sha256(zf.read(f["name"])).hexdigest() == f["sha256"]
    for role, ext in (("id_front", "jpg"), ("id_back", "jpg"), ("selfie", "jpg")):
        assert hashlib.sha256(zf.read(f"{role}.{ext}")).hexdigest() == recorded[role]
        entry = next(f for f in manifest["files"] if f["name"] == f"{role}.{ext}")
        assert entry["source"]["matches_recorded"] is True
    order = json.loads(zf.read("order.json"))
    assert order["order"]["id"] == order_id
    assert "declared_enc" not in order["order"]
    assert "webhook_secret" not in order["agent"]
    assert ID_NUMBER not in zf.read("order.json").decode()
    assert [e["kind"] for e in json.loads(zf.read("audit.json"))["entries"]] == ["order.received"]

    [exported] = api.entries("evidence.exported")
    assert exported.subject == order_id
    assert (
        exported.payload["files"]["manifest.json"]
        == hashlib.sha256(zf.read("manifest.json")).hexdigest()
    )
    # A second export lists the first one in audit.json.
    kinds = [e["kind"] for e in json.loads(_zip(api, order_id).read("audit.json"))["entries"]]
    assert kinds == ["order.received", "evidence.exported"]


def test_evidence_zip_reports_a_tampered_image(api: Api) -> None:
    order_id = api.order()
    with api.sessions() as s:
        blob = s.scalars(select(Blob).where(Blob.order_id == order_id, Blob.role == "selfie")).one()
    path = api.settings.blob_dir / blob.id[4:6] / blob.id
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    zf = _zip(api, order_id)
    assert "selfie.jpg" not in zf.namelist()
    [problem] = json.loads(zf.read("manifest.json"))["problems"][1:]
    assert problem["file"] == "selfie"
    assert "does not decrypt" in problem["problem"]


def test_evidence_zip_unknown_order(api: Api) -> None:
    r = api.client.get("/v1/audit/orders/ord_nope/evidence.zip", headers=api.auditor)
    assert (r.status_code, r.json()["error"]) == (404, "order.not_found")
    assert api.entries("evidence.exported") == []


# --- leak trace --------------------------------------------------------------------------


def test_trace_by_iccid_and_msisdn(api: Api) -> None:
    order_id = api.order()
    api.decide(order_id)
    sim = api.sim_of(order_id)
    by_iccid = api.client.get("/v1/trace/sims", params={"iccid": sim.iccid}, headers=api.admin)
    by_msisdn = api.client.get("/v1/trace/sims", params={"msisdn": sim.msisdn}, headers=api.admin)
    assert by_iccid.status_code == by_msisdn.status_code == 200, by_iccid.text
    body = by_iccid.json()
    assert body == by_msisdn.json()
    assert body["sim"]["iccid"] == sim.iccid
    assert body["sim"]["status"] == "awaiting_handover"
    assert body["agent"] == {
        "agent_id": "agt_a",
        "name": "Storefront A",
        "agent_number": "SA-0001",
        "status": "active",
    }
    assert body["order"]["order_id"] == order_id
    assert body["order"]["id_number_masked"] == MASKED
    assert [h["kind"] for h in body["history"]] == ["order.received", "order.decided"]
    assert ID_NUMBER not in by_iccid.text
    [access, _] = api.entries("access.admin")
    assert access.payload["query"] == {"iccid": sim.iccid}


def test_trace_a_released_number_finds_its_last_order(api: Api) -> None:
    order_id = api.order()
    api.decide(order_id, Outcome.REJECTED)
    sim = api.sim_of(order_id)
    assert sim.status == "available"
    assert sim.order_id is None
    body = api.client.get("/v1/trace/sims", params={"msisdn": sim.msisdn}, headers=api.admin).json()
    assert body["order"]["order_id"] == order_id
    assert body["order"]["outcome"] == "rejected"
    assert body["agent"]["agent_id"] == "agt_a"


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({}, 422, "trace.one_identifier"),
        ({"iccid": "8986000", "msisdn": "13000000000"}, 422, "trace.one_identifier"),
        ({"iccid": "8986000000000000000000"}, 404, "sim.not_found"),
        ({"msisdn": "19999999999"}, 404, "sim.not_found"),
    ],
)
def test_trace_bad_queries(api: Api, params: dict[str, str], status: int, code: str) -> None:
    r = api.client.get("/v1/trace/sims", params=params, headers=api.admin)
    assert (r.status_code, r.json()["error"]) == (status, code)


# --- usage reports and activation ------------------------------------------------------------


def test_usage_report(api: Api) -> None:
    with api.sessions() as s:
        a, b = s.scalars(select(Sim.iccid).order_by(Sim.iccid).limit(2)).all()
    reports = [
        {"iccid": a, "last_used_at": "2025-11-20T10:00:00Z"},
        {"iccid": b, "last_used_at": None},
        {"iccid": "89860000000000000000", "last_used_at": None},
        {"iccid": a, "last_used_at": "2025-11-19T10:00:00+08:00"},  # older: ignored
    ]
    r = api.client.post("/v1/carrier/usage", json={"reports": reports}, headers=logistics(api))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "received": 4,
        "updated": 2,
        "unknown": ["89860000000000000000"],
        "in_future": [],
    }
    with api.sessions() as s:
        sa, sb = s.get(Sim, a), s.get(Sim, b)
        assert sa is not None
        assert sb is not None
        assert sa.last_used_at is not None
        assert sa.last_used_at.replace(tzinfo=None).isoformat() == "2025-11-20T10:00:00"
        assert sb.last_used_at is None
        assert sa.usage_reported_at is not None
        assert sb.usage_reported_at is not None
    # A later null report keeps the traffic seen before.
    r = api.client.post(
        "/v1/carrier/usage",
        json={"reports": [{"iccid": a, "last_used_at": None}]},
        headers=logistics(api),
    )
    assert r.json()["updated"] == 1
    with api.sessions() as s:
        sa = s.get(Sim, a)
        assert sa is not None
        assert sa.last_used_at is not None
    assert len(api.entries("carrier.usage_reported")) == 2


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"reports": []}, {"Authorization": "Bearer wrong"}, 401),
        ({"reports": []}, {}, 401),
        ({"reports": [{"iccid": "1", "last_used_at": "2026-11-20T10:00:00"}]}, None, 422),
        ({"reports": [{"iccid": "1", "last_used_at": None}] * 10_001}, None, 422),
    ],
)
def test_usage_report_refused(
    api: Api, body: dict[str, Any], headers: dict[str, str] | None, status: int
) -> None:
    r = api.client.post(
        "/v1/carrier/usage", json=body, headers=logistics(api) if headers is None else headers
    )
    assert r.status_code == status, r.text
    assert api.entries("carrier.usage_reported") == []


def test_usage_in_the_future_is_ignored(api: Api) -> None:
    with api.sessions() as s:
        a = s.scalars(select(Sim.iccid).limit(1)).one()
    r = api.client.post(
        "/v1/carrier/usage",
        json={"reports": [{"iccid": a, "last_used_at": "2999-01-01T00:00:00Z"}]},
        headers=logistics(api),
    )
    assert r.json()["in_future"] == [a]
    with api.sessions() as s:
        sim = s.get(Sim, a)
        assert sim is not None
        assert sim.last_used_at is None
        assert sim.usage_reported_at is not None


def test_activation_stamps_activated_at(api: Api) -> None:
    order_id = api.order()
    api.decide(order_id)
    assert api.sim_of(order_id).activated_at is None
    with api.sessions() as s, s.begin():
        assert inventory.transition(
            s, order_id, SimStatus.ACTIVE, expected=SimStatus.AWAITING_HANDOVER
        )
    sim = api.sim_of(order_id)
    assert sim.status == "active"
    assert sim.activated_at is not None
    body = api.client.get("/v1/trace/sims", params={"iccid": sim.iccid}, headers=api.admin).json()
    assert body["sim"]["activated_at"] is not None
