"""The regulator's view and leak tracing through real processes: an order verified by
the worker and handed over at the door, then searched, exported and traced over HTTP;
the carrier's usage report lands on the SIM row."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from services.storage.models import AuditEntry, Blob, Order, Sim
from tests.integration.conftest import ORDERS, SPEC, LiveStack, approved_order, logistics
from tests.integration.test_door_check import HANDOVER, _assign, _check, _courier

pytestmark = [pytest.mark.slow, pytest.mark.integration]
IDENTITY = SPEC["sets"]["good"]["identity"]


@pytest.fixture(scope="module")
def handed_over(live: LiveStack) -> dict[str, Any]:
    """One order approved by the worker and handed over at the door (SIM active)."""
    order_id = approved_order(live)
    courier_id, auth = _courier(live)
    _assign(live, order_id, courier_id)
    body = _check(live, order_id, auth, "good_front.jpg", "recipient_face.jpg")
    assert body["result"] == "handed_over", body
    with live.sessions() as session:
        order = session.get(Order, order_id)
        assert order is not None
        sim = session.scalars(select(Sim).where(Sim.order_id == order_id)).one()
        return {
            "order_id": order_id,
            "agent_id": order.agent_id,
            "decided_at": order.decided_at,
            "iccid": sim.iccid,
            "msisdn": sim.msisdn,
            "attempt_id": body["attempt_id"],
        }


def _iso(when: dt.datetime) -> str:
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).isoformat()


def _kinds(live: LiveStack, kind: str, **where: str) -> list[AuditEntry]:
    with live.sessions() as session:
        q = select(AuditEntry).where(AuditEntry.kind == kind)
        for column, value in where.items():
            q = q.where(getattr(AuditEntry, column) == value)
        return list(session.scalars(q))


def test_decisions_search(live: LiveStack, handed_over: dict[str, Any]) -> None:
    order_id, at = handed_over["order_id"], _iso(handed_over["decided_at"])

    def ids(**params: str) -> list[str]:
        r = httpx.get(
            f"{live.api}/v1/audit/decisions",
            params={"limit": "500", **params},
            headers=live.auditor,
        )
        assert r.status_code == 200, r.text
        assert IDENTITY["id_number"] not in r.text
        return [d["order_id"] for d in r.json()["decisions"]]

    exact = {"from": at, "to": at}
    assert ids(**exact) == [order_id]
    assert ids(**exact, agent_id=handed_over["agent_id"], outcome="approved") == [order_id]
    assert ids(**exact, outcome="rejected") == []
    assert ids(**exact, agent_id="agt_someone_else") == []
    day = handed_over["decided_at"].date()
    assert order_id in ids(**{"from": str(day), "to": str(day)}, outcome="approved")
    assert order_id not in ids(to=str(day - dt.timedelta(days=1)))

    r = httpx.get(f"{live.api}/v1/audit/decisions", params=exact, headers=live.auditor)
    [row] = r.json()["decisions"]
    assert row["id_number_masked"] == "532***********246X"
    assert row["outcome"] == "approved"
    assert row["ship_mode"] == "activate_on_handover"
    assert row["policy_version"] == live.stack.settings.policy_version
    assert row["evidence_sha256"]
    bad = httpx.get(
        f"{live.api}/v1/audit/decisions", params={"outcome": "nope"}, headers=live.auditor
    )
    assert bad.status_code == 422
    assert [e.payload["query"] for e in _kinds(live, "access.auditor")][-1] == {"outcome": "nope"}


def test_verify(live: LiveStack, handed_over: dict[str, Any]) -> None:
    r = httpx.get(f"{live.api}/v1/audit/verify", headers=live.auditor, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    assert body["problem"] is None
    with live.sessions() as session:
        head = session.scalars(
            select(AuditEntry).where(AuditEntry.seq == body["head"]["seq"])
        ).one()
    assert body["head"]["hash"] == head.hash
    assert body["entries"] >= head.seq


def test_evidence_zip(live: LiveStack, handed_over: dict[str, Any]) -> None:
    order_id = handed_over["order_id"]
    r = httpx.get(
        f"{live.api}/v1/audit/orders/{order_id}/evidence.zip", headers=live.auditor, timeout=60
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith("attachment;")
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.testzip() is None
    attempt = handed_over["attempt_id"]
    handover = {f"handover/{attempt}/id_photo.jpg", f"handover/{attempt}/face_photo.jpg"}
    base = {"order.json", "declared.json", "reading.json", "audit.json", "manifest.json"}
    images = {"id_front.jpg", "id_back.jpg", "selfie.jpg"}
    assert set(zf.namelist()) == base | images | handover

    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["problems"] == []
    assert {f["name"] for f in manifest["files"]} == set(zf.namelist()) - {"manifest.json"}
    for f in manifest["files"]:
        assert hashlib.sha256(zf.read(f["name"])).hexdigest() == f["sha256"], f["name"]
    with live.sessions() as session:
        recorded = {
            b.role: b.sha256 for b in session.scalars(select(Blob).where(Blob.order_id == order_id))
        }
    uploaded = {
        "id_front": "good_front.jpg",
        "id_back": "good_back.jpg",
        "selfie": "good_selfie.jpg",
    }
    for role, fixture in uploaded.items():
        data = zf.read(f"{role}.jpg")
        # What the regulator gets is what the storefront uploaded, byte for byte.
        assert hashlib.sha256(data).hexdigest() == recorded[role]
        assert data == (ORDERS / fixture).read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == "JPEG"
            img.load()
            assert min(img.size) > 100
    assert (
        zf.read(f"handover/{attempt}/face_photo.jpg")
        == (HANDOVER / "recipient_face.jpg").read_bytes()
    )
    reading_bytes = zf.read("reading.json")
    assert hashlib.sha256(reading_bytes).hexdigest() == recorded["evidence"]
    reading = json.loads(reading_bytes)
    # The full ID number leaves the system here only.
    assert reading["document"]["fields"]["id_number"] == IDENTITY["id_number"]
    order_json = zf.read("order.json").decode()
    assert IDENTITY["id_number"] not in order_json
    order = json.loads(order_json)
    assert order["order"]["id_number_masked"] == "532***********246X"
    assert order["order"]["evidence"]["evidence_sha256"] == recorded["evidence"]
    assert order["sim"]["iccid"] == handed_over["iccid"]
    assert order["sim"]["activated_at"] is not None

    entries = json.loads(zf.read("audit.json"))["entries"]
    kinds = [e["kind"] for e in entries]
    assert kinds[:2] == ["order.received", "order.decided"]
    assert {"handover.received", "handover.decided"} <= set(kinds)
    with live.sessions() as session:
        for e in entries:
            stored = session.get(AuditEntry, e["seq"])
            assert stored is not None
            assert (stored.hash, stored.prev_hash) == (e["hash"], e["prev_hash"])
    assert manifest["audit_head"]["seq"] >= entries[-1]["seq"]

    [exported] = [
        e
        for e in _kinds(live, "evidence.exported", subject=order_id)
        if e.actor == "stf_demo_auditor"
    ]
    assert (
        exported.payload["files"]["manifest.json"]
        == hashlib.sha256(zf.read("manifest.json")).hexdigest()
    )
    access = _kinds(live, "access.auditor", actor="stf_demo_auditor")
    assert f"/v1/audit/orders/{order_id}/evidence.zip" in [e.payload["path"] for e in access]


@pytest.mark.parametrize(("who", "status"), [("admin", 403), ("agent", 401), ("nobody", 401)])
def test_only_auditors_export(
    live: LiveStack, handed_over: dict[str, Any], who: str, status: int
) -> None:
    headers = {"admin": live.admin, "agent": live.auth, "nobody": {}}[who]
    before = len(_kinds(live, "evidence.exported"))
    for path in ("orders/" + handed_over["order_id"] + "/evidence.zip", "decisions", "verify"):
        r = httpx.get(f"{live.api}/v1/audit/{path}", headers=headers, timeout=30)
        assert r.status_code == status, (path, r.text)
    assert len(_kinds(live, "evidence.exported")) == before


def test_leak_trace(live: LiveStack, handed_over: dict[str, Any]) -> None:
    order_id = handed_over["order_id"]
    url = f"{live.api}/v1/trace/sims"
    by_iccid = httpx.get(url, params={"iccid": handed_over["iccid"]}, headers=live.admin)
    by_msisdn = httpx.get(url, params={"msisdn": handed_over["msisdn"]}, headers=live.admin)
    assert by_iccid.status_code == 200, by_iccid.text
    assert by_msisdn.status_code == 200, by_msisdn.text
    body = by_iccid.json()
    assert by_msisdn.json() == body
    assert body["sim"]["status"] == "active"
    assert body["sim"]["activated_at"] is not None
    assert body["agent"]["agent_id"] == handed_over["agent_id"]
    assert body["order"]["order_id"] == order_id
    assert body["order"]["outcome"] == "approved"
    assert body["order"]["id_number_masked"] == "532***********246X"
    assert IDENTITY["id_number"] not in by_iccid.text
    assert body["delivery"]["status"] == "handed_over"
    assert [a["result"] for a in body["handover_attempts"]] == ["handed_over"]
    kinds = [h["kind"] for h in body["history"]]
    assert kinds[:2] == ["order.received", "order.decided"]
    assert "handover.decided" in kinds
    seqs = [h["seq"] for h in body["history"]]
    assert seqs == sorted(seqs)
    queries = [e.payload["query"] for e in _kinds(live, "access.admin")]
    assert {"iccid": handed_over["iccid"]} in queries

    assert (
        httpx.get(url, params={"iccid": "89860000000000000000"}, headers=live.admin).status_code
        == 404
    )
    both = {"iccid": handed_over["iccid"], "msisdn": handed_over["msisdn"]}
    assert httpx.get(url, params=both, headers=live.admin).status_code == 422
    r = httpx.get(url, params={"iccid": handed_over["iccid"]}, headers=live.auditor)
    assert (r.status_code, r.json()["error"]) == (403, "auth.wrong_role")


def test_usage_report(live: LiveStack, handed_over: dict[str, Any]) -> None:
    iccid = handed_over["iccid"]
    body = {
        "reports": [
            {"iccid": iccid, "last_used_at": "2025-11-20T10:00:00Z"},
            {"iccid": "89869999999999999999", "last_used_at": None},
        ]
    }
    url = f"{live.api}/v1/carrier/usage"
    refused = httpx.post(url, json=body, headers={"Authorization": "Bearer not-the-token"})
    assert refused.status_code == 401
    with live.sessions() as session:
        sim = session.get(Sim, iccid)
        assert sim is not None
        assert sim.usage_reported_at is None
    r = httpx.post(url, json=body, headers=logistics(live))
    assert r.status_code == 200, r.text
    assert r.json()["updated"] == 1
    assert r.json()["unknown"] == ["89869999999999999999"]
    with live.sessions() as session:
        sim = session.get(Sim, iccid)
        assert sim is not None
        assert sim.usage_reported_at is not None
        assert sim.last_used_at is not None
        assert _iso(sim.last_used_at) == "2025-11-20T10:00:00+00:00"
