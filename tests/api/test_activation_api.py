"""Activation codes in-process: the per-address limit and a used code (no worker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from services.agents import create_agent
from services.api.app import create_app
from services.carrier import inventory
from services.config import Settings
from services.domain.states import LIVENESS_ACTIONS, SimStatus
from services.storage.db import engine_for, session_factory, upgrade
from services.storage.models import ActivationCode, Order, Sim, utcnow
from services.workers import enqueue


@pytest.fixture
def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, str, str]]:
    settings = Settings(
        data_dir=tmp_path, env="test", redis_url="redis://127.0.0.1:1/0",
        activation_tries_per_addr=3,
    )  # fmt: skip
    upgrade(settings.resolved_database_url)
    sessions = session_factory(settings.resolved_database_url)
    with sessions() as s, s.begin():
        agent, _ = create_agent(s, "shop")
        inventory.seed_inventory(s, per_province=2)
        sim = s.scalars(select(Sim).limit(1)).one()
        s.add(
            Order(
                id="ord_x", agent_id=agent.id, request_hash="x", msisdn=sim.msisdn,
                province=sim.province, delivery="no_door_check", declared_enc="x",
                declared_number_masked="x", status="decided", outcome="approved",
                ship_mode="ship_inactive",
            )
        )  # fmt: skip
        s.flush()
        s.execute(
            update(Sim)
            .where(Sim.iccid == sim.iccid)
            .values(status=SimStatus.SHIPPED_INACTIVE, order_id="ord_x")
        )
        code = inventory.issue_activation_code(s, "ord_x", settings.blob_key_bytes)
        iccid = sim.iccid
    assert code is not None
    monkeypatch.setattr(enqueue, "send", lambda *a, **k: True)
    with TestClient(create_app(settings)) as c:
        yield c, iccid, code
    engine_for(settings.resolved_database_url).dispose()


def test_the_api_asks_only_known_actions() -> None:
    from vision.liveness import ACTIONS

    assert tuple(LIVENESS_ACTIONS) == tuple(ACTIONS)


def test_wrong_codes_from_one_address_are_rate_limited(
    client: tuple[TestClient, str, str],
) -> None:
    c, iccid, code = client
    for _ in range(3):
        r = c.post("/v1/activations", json={"iccid": "8986" + "1" * 16, "code": "00000000"})
        assert r.status_code == 401
    r = c.post("/v1/activations", json={"iccid": iccid, "code": code})
    assert r.status_code == 429
    assert r.json()["error"] == "activation.rate_limited"


def test_a_used_code_starts_nothing(client: tuple[TestClient, str, str], tmp_path: Path) -> None:
    c, iccid, code = client
    assert c.post("/v1/activations", json={"iccid": iccid, "code": code}).status_code == 201
    settings = Settings(data_dir=tmp_path, env="test")
    with session_factory(settings.resolved_database_url)() as s, s.begin():
        s.execute(update(ActivationCode).values(used_at=utcnow()))
    r = c.post("/v1/activations", json={"iccid": iccid, "code": code})
    assert r.status_code == 401
    assert r.json()["error"] == "activation.bad_code"
