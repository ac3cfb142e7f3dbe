"""An in-process back office for the review tests (API and pages): a temporary SQLite
database, an agent, the demo inventory, an admin and an auditor, and orders posted
through the real storefront API. No worker runs: decisions are recorded through
services.decisions.record_decision, the pipeline's own code path, with the display
evidence a worker would have stored (face scores with thresholds, quality signals)."""

from __future__ import annotations

import hashlib
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
from services.decisions import record_decision
from services.domain.decide import Decision, Evidence
from services.domain.states import Delivery, Outcome, ShipMode
from services.privacy import id_hash, mask_id_number
from services.staff import create_staff
from services.storage.blobs import BlobStore
from services.storage.db import engine_for, session_factory, upgrade
from services.storage.models import AuditEntry, Blob, Order, Sim
from services.workers import enqueue
from services.workers.pipeline import EVIDENCE_ROLE, blob_id_for
from tests.conftest import FIXTURES

ORDERS = FIXTURES / "orders"
SPEC: dict[str, Any] = json.loads((ORDERS / "orders.json").read_text())
IDENTITIES: dict[str, dict[str, str]] = {n: s["identity"] for n, s in SPEC["sets"].items()}
PARTS = {"id_front": "front", "id_back": "back", "selfie": "selfie"}
FACE_MATCH = {
    "verdict": "match",
    "score": 0.91,
    "distance": 0.31,
    "use": "selfie_vs_portrait",
    "thresholds": {"match": 0.62, "no_match": 0.4},
}


def vision_summary(face_verdict: str = "match") -> dict[str, Any]:
    """The masked summary a worker stores after reading the images (pipeline.py)."""
    return {
        "document": {
            "fields_read": ["address", "id_number", "name"],
            "checks": {"number_checksum": True},
            "quality": {"portrait": {"quality.blur": 12}, "emblem": {}},
        },
        "selfie": {
            "face_match": {**FACE_MATCH, "verdict": face_verdict},
            "card_portrait_match": {**FACE_MATCH, "use": "portrait_vs_portrait"},
            "card_number": "match",
            "faces_found": 1,
        },
        "codes": [],
    }


@dataclass
class Desk:
    client: TestClient
    settings: Settings
    sessions: sessionmaker[Session]
    agent_key: str
    admin: dict[str, str]
    auditor: dict[str, str]
    tokens: dict[str, str]
    sent: list[tuple[str, str]] = field(default_factory=list)

    @property
    def agent(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.agent_key}"}

    def msisdn(self) -> str:
        r = self.client.get("/v1/numbers", params={"limit": 1}, headers=self.agent)
        assert r.status_code == 200, r.text
        number: str = r.json()["msisdns"][0]
        return number

    def order(
        self,
        set_name: str = "good",
        *,
        msisdn: str | None = None,
        delivery: str = "door_check",
        callback: bool = True,
    ) -> str:
        identity = IDENTITIES[set_name]
        files = {
            p: (f"{p}.jpg", (ORDERS / f"{set_name}_{s}.jpg").read_bytes(), "image/jpeg")
            for p, s in PARTS.items()
        }
        data = {
            "name": identity["name"],
            "id_number": identity["id_number"],
            "msisdn": msisdn or self.msisdn(),
            "delivery": delivery,
        }
        if callback:
            data["callback_url"] = "https://shop.example/cb"
        r = self.client.post("/v1/orders", files=files, data=data, headers=self.agent)
        assert r.status_code == 202, r.text
        order_id: str = r.json()["order_id"]
        return order_id

    def read(self, order_id: str, set_name: str = "good", face_verdict: str = "match") -> None:
        """What the worker's image step leaves: the number read (hash, masked), the
        display summary, the encrypted reading (the ``evidence`` blob a recheck reuses)."""
        number = IDENTITIES[set_name]["id_number"]
        reading = json.dumps({"codes": [], "document": None}).encode()
        blob_id = blob_id_for(order_id, EVIDENCE_ROLE)
        BlobStore(self.settings.blob_dir, self.settings.blob_key_bytes).put(blob_id, reading)
        with self.sessions() as s, s.begin():
            s.add(
                Blob(
                    id=blob_id,
                    order_id=order_id,
                    role=EVIDENCE_ROLE,
                    content_type="application/json",
                    size=len(reading),
                    sha256=hashlib.sha256(reading).hexdigest(),
                )
            )
            s.execute(
                update(Order)
                .where(Order.id == order_id)
                .values(
                    status="checking",
                    id_hash=id_hash(self.settings.id_hash_key, number),
                    id_number_masked=mask_id_number(number),
                    evidence={"vision": vision_summary(face_verdict), "evidence_sha256": "0" * 64},
                )
            )

    def decide(
        self,
        order_id: str,
        outcome: Outcome = Outcome.NEEDS_REVIEW,
        reasons: tuple[str, ...] = ("lookup.unavailable",),
        lookup_result: str | None = "unavailable",
    ) -> None:
        with self.sessions() as s:
            order = s.get(Order, order_id)
            assert order is not None
        mode = ShipMode.ACTIVATE_ON_HANDOVER if outcome == Outcome.APPROVED else None
        if outcome == Outcome.APPROVED:
            reasons, lookup_result = (), "match"
        decision = Decision(outcome, mode, reasons, ("quality.blur",), "test-policy.1")
        assert record_decision(
            self.sessions,
            self.settings,
            order,
            decision,
            Evidence(delivery=Delivery(order.delivery)),
            lookup_meta={"error": "timeout", "waited_s": 15.2},
            lookup_result=lookup_result,
            card_limit=5,
        )

    def needs_review(
        self,
        set_name: str = "good",
        *,
        reasons: tuple[str, ...] = ("lookup.unavailable",),
        lookup_result: str | None = "unavailable",
        **kw: Any,
    ) -> str:
        """An order the rules sent to a person: by default the lookup was down (no
        approval then, R5); ``reasons=("quality.photocopy",), lookup_result="match"``
        for one a person may approve."""
        face = kw.pop("face_verdict", "match")
        order_id = self.order(set_name, **kw)
        self.read(order_id, set_name, face)
        self.decide(order_id, Outcome.NEEDS_REVIEW, reasons, lookup_result)
        return order_id

    def approvable(self, set_name: str = "good", **kw: Any) -> str:
        """An order in review for a reason that is not the lookup's (it answered match)."""
        return self.needs_review(
            set_name, reasons=("quality.photocopy",), lookup_result="match", **kw
        )

    def row(self, order_id: str) -> Order:
        with self.sessions() as s:
            order = s.get(Order, order_id)
            assert order is not None
            s.expunge(order)
            return order

    def sim(self, msisdn: str) -> Sim:
        with self.sessions() as s:
            sim = s.scalars(select(Sim).where(Sim.msisdn == msisdn)).one()
            s.expunge(sim)
            return sim

    def entries(self, kind: str) -> list[AuditEntry]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(AuditEntry).where(AuditEntry.kind == kind).order_by(AuditEntry.seq)
                )
            )


def desk_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    settings = Settings(
        data_dir=tmp_path, env="test", redis_url="redis://127.0.0.1:1/0", policy_version="p"
    )
    url = settings.resolved_database_url
    upgrade(url)
    sessions = session_factory(url)
    with sessions() as s, s.begin():
        agent, key = create_agent(
            s, "Storefront A", agent_id="agt_a", provinces=["11", "31", "44", "51"]
        )
        agent.agent_number = "SA-0001"
        inventory.seed_inventory(s, per_province=5)
        _, admin = create_staff(s, "Reviewer", "admin")
        _, auditor = create_staff(s, "Regulator", "auditor")
    sent: list[tuple[str, str]] = []

    def record(task: str, arg: str, *, countdown: float | None = None, app: object = None) -> bool:
        sent.append((task, arg))
        return True

    monkeypatch.setattr(enqueue, "send", record)
    with TestClient(create_app(settings)) as client:
        yield Desk(
            client,
            settings,
            sessions,
            key,
            {"Authorization": f"Bearer {admin}"},
            {"Authorization": f"Bearer {auditor}"},
            {"admin": admin, "auditor": auditor},
            sent,
        )
    engine_for(url).dispose()
