"""The storefront API in-process (FastAPI TestClient): auth, validation of every part,
nothing stored for a refused upload, encryption at rest, idempotency, agent isolation,
masking, and a dead broker that must not fail an accepted order.

No worker runs: orders stay ``received``. ``enqueue.send`` is replaced by a recorder,
except in the broker-down test, which sends for real to a closed port.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from services.agents import create_agent
from services.api.app import BODY_OVERHEAD, create_app
from services.carrier import inventory
from services.config import Settings
from services.storage.blobs import open_text
from services.storage.db import engine_for, session_factory, upgrade
from services.storage.models import AuditEntry, Blob, Order, Sim
from services.workers import enqueue
from services.workers.celery_app import make_celery
from tests.conftest import FIXTURES

ORDERS = FIXTURES / "orders"
PARTS = ("id_front", "id_back", "selfie")
NAME, ID_NUMBER = "姚亚金", "53232819960626246X"
MASKED = "532***********246X"
MAX_UPLOAD = 256 * 1024  # the fixture images are 90-130 KB
REAL_SEND = enqueue.send


@dataclass
class Api:
    client: TestClient
    settings: Settings
    sessions: sessionmaker[Session]
    key_a: str
    key_b: str
    agent_a: str
    sent: list[tuple[str, str]] = field(default_factory=list)

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key_a}"}

    def numbers(self, n: int = 1, key: str | None = None, **params: Any) -> list[str]:
        r = self.client.get("/v1/numbers", params={"limit": n, **params}, headers=self.auth(key))
        assert r.status_code == 200, r.text
        out: list[str] = r.json()["msisdns"]
        return out

    def post(
        self,
        *,
        files: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        key: str | None = None,
        headers: dict[str, str] | None = None,
        **fields: str,
    ) -> Any:
        images = {p: (f"{p}.jpg", image(p), "image/jpeg") for p in PARTS}
        images.update(files or {})
        data = {
            "name": NAME,
            "id_number": ID_NUMBER,
            "msisdn": fields.pop("msisdn", None) or self.numbers(1)[0],
            "delivery": "door_check",
            **fields,
        }
        for name in drop:
            images.pop(name, None)
            data.pop(name, None)
        return self.client.post(
            "/v1/orders",
            files=images,
            data=data,
            headers={**self.auth(key), **(headers or {})},
        )

    def counts(self) -> tuple[int, int]:
        with self.sessions() as s:
            return (
                s.scalar(select(func.count()).select_from(Order)) or 0,
                s.scalar(select(func.count()).select_from(Blob)) or 0,
            )

    def blob_files(self) -> list[Path]:
        root = self.settings.blob_dir
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

    def assert_nothing_stored(self) -> None:
        assert self.counts() == (0, 0)
        assert self.blob_files() == []
        with self.sessions() as s:
            assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0
            reserved = s.scalar(
                select(func.count()).select_from(Sim).where(Sim.status != "available")
            )
            assert reserved == 0


def image(part: str, set_name: str = "good") -> bytes:
    suffix = {"id_front": "front", "id_back": "back", "selfie": "selfie"}[part]
    return (ORDERS / f"{set_name}_{suffix}.jpg").read_bytes()


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    settings = Settings(
        data_dir=tmp_path,
        env="test",
        redis_url="redis://127.0.0.1:1/0",
        max_upload_bytes=MAX_UPLOAD,
    )
    url = settings.resolved_database_url
    upgrade(url)
    sessions = session_factory(url)
    with sessions() as s, s.begin():
        agent_a, key_a = create_agent(s, "Storefront A", agent_id="agt_a")
        _, key_b = create_agent(s, "Storefront B", agent_id="agt_b", provinces=["11"])
        inventory.seed_inventory(s, per_province=5)
    sent: list[tuple[str, str]] = []

    def record(task: str, arg: str, *, countdown: float | None = None, app: object = None) -> bool:
        sent.append((task, arg))
        return True

    monkeypatch.setattr(enqueue, "send", record)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings, sessions, key_a, key_b, agent_a.id, sent)
    engine_for(url).dispose()


# --- auth -----------------------------------------------------------------------------


def test_no_auth(api: Api) -> None:
    r = api.client.post("/v1/orders", files={"id_front": ("a.jpg", image("id_front"))})
    assert r.status_code == 401
    assert r.json()["error"] == "auth.missing_key"
    r = api.client.get("/v1/orders/ord_x", headers={"Authorization": "Basic abc"})
    assert (r.status_code, r.json()["error"]) == (401, "auth.missing_key")
    api.assert_nothing_stored()


def test_bad_key(api: Api) -> None:
    r = api.post(key="sgk_not-a-real-key")
    assert r.status_code == 401
    assert r.json() == {"error": "auth.invalid_key", "detail": "unknown API key"}
    assert api.client.get("/v1/numbers", headers=api.auth("sgk_nope")).status_code == 401
    api.assert_nothing_stored()


def test_revoked_agent(api: Api) -> None:
    with api.sessions() as s, s.begin():
        s.execute(text("UPDATE agents SET status = 'revoked' WHERE id = 'agt_b'"))
    r = api.client.get("/v1/numbers", headers=api.auth(api.key_b))
    assert (r.status_code, r.json()["error"]) == (403, "agent.revoked")


# --- refused uploads: the right error, and nothing stored -----------------------------


@pytest.mark.parametrize("missing", ["id_front", "id_back", "selfie", "name", "msisdn", "delivery"])
def test_missing_part(api: Api, missing: str) -> None:
    r = api.post(drop=(missing,))
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "request.missing_field"
    assert [p["field"] for p in body["detail"]] == [missing]
    api.assert_nothing_stored()


def test_text_file_as_image(api: Api) -> None:
    r = api.post(
        files={"id_back": ("back.jpg", b"just some text, not a photo\n" * 40, "image/jpeg")}
    )
    assert r.status_code == 415
    body = r.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == "upload.not_an_image"
    assert body["detail"].startswith("id_back: ")
    api.assert_nothing_stored()


@pytest.mark.parametrize("part", PARTS)
def test_truncated_jpeg(api: Api, part: str) -> None:
    data = image(part)
    r = api.post(files={part: (f"{part}.jpg", data[: len(data) // 2], "image/jpeg")})
    assert (r.status_code, r.json()["error"]) == (422, "upload.truncated")
    assert r.json()["detail"].startswith(f"{part}: ")
    api.assert_nothing_stored()


def test_empty_part(api: Api) -> None:
    r = api.post(files={"selfie": ("selfie.jpg", b"", "image/jpeg")})
    assert r.json() == {"error": "upload.empty", "detail": "selfie: the file is empty"}
    assert r.status_code == 422
    api.assert_nothing_stored()


def test_body_over_limit_refused_before_reading(api: Api) -> None:
    limit = 3 * MAX_UPLOAD + BODY_OVERHEAD
    big = image("selfie") + b"\x00" * limit
    r = api.post(files={"selfie": ("selfie.jpg", big, "image/jpeg")})
    assert (r.status_code, r.json()["error"]) == (413, "upload.too_large")
    assert str(limit) in r.json()["detail"]
    api.assert_nothing_stored()


def test_non_numeric_content_length_refused(api: Api) -> None:
    r = api.client.post("/v1/orders", content=b"x", headers={**api.auth(), "Content-Length": "1e9"})
    assert (r.status_code, r.json()["error"]) == (413, "upload.too_large")


def test_one_part_over_limit(api: Api) -> None:
    # The whole body is under the limit; the selfie alone is over max_upload_bytes.
    big = b"\xff\xd8\xff\xe0" + b"\x00" * MAX_UPLOAD + b"\xff\xd9"
    r = api.post(files={"selfie": ("selfie.jpg", big, "image/jpeg")})
    assert (r.status_code, r.json()["error"]) == (413, "upload.too_large")
    assert r.json()["detail"].startswith("selfie: ")
    api.assert_nothing_stored()


def test_unknown_msisdn(api: Api) -> None:
    r = api.post(msisdn="19900000000")
    assert (r.status_code, r.json()["error"]) == (422, "order.unknown_msisdn")
    api.assert_nothing_stored()


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"id_number": "12345"}, "order.bad_id_number"),
        ({"id_number": "11010519900101123Y"}, "order.bad_id_number"),
        ({"id_number": "010105199001011234"}, "order.bad_id_number"),
        ({"msisdn": "12345"}, "order.bad_msisdn"),
        ({"msisdn": "2300000000a"}, "order.bad_msisdn"),
        ({"name": "x" * 65}, "order.bad_name"),
        ({"name": "   "}, "order.bad_name"),
        ({"delivery": "drone"}, "request.invalid"),
        ({"callback_url": "ftp://example.com/hook"}, "order.bad_callback_url"),
    ],
    ids=[
        "id_short",
        "id_bad_check_char",
        "id_leading_zero",
        "msisdn_short",
        "msisdn_letters",
        "name_long",
        "name_blank",
        "delivery",
        "callback_url",
    ],
)
def test_bad_fields(api: Api, fields: dict[str, str], code: str) -> None:
    r = api.post(**fields)
    assert r.status_code == 422
    assert r.json()["error"] == code
    if code == "request.invalid":
        assert [p["field"] for p in r.json()["detail"]] == list(fields)
    api.assert_nothing_stored()


def test_out_of_scope_number(api: Api) -> None:
    guangdong = api.numbers(1, province="44")[0]  # agent A sells everywhere
    r = api.post(key=api.key_b, msisdn=guangdong)  # agent B only in 11
    assert (r.status_code, r.json()["error"]) == (403, "agent.out_of_scope")
    api.assert_nothing_stored()


# --- accepted orders ------------------------------------------------------------------


def test_good_post(api: Api) -> None:
    msisdn = api.numbers(1)[0]
    r = api.post(msisdn=msisdn, callback_url="https://shop.example/hook")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["order_id"].startswith("ord_")
    assert body["status"] == "received"
    assert body["idempotent_replay"] is False
    assert body["status_url"].endswith(f"/v1/orders/{body['order_id']}")
    assert api.sent == [(enqueue.VERIFY, body["order_id"])]

    view = api.client.get(body["status_url"], headers=api.auth())
    assert view.status_code == 200
    v = view.json()
    assert (v["order_id"], v["status"], v["msisdn"], v["delivery"]) == (
        body["order_id"], "received", msisdn, "door_check",
    )  # fmt: skip
    assert v["outcome"] is None
    assert v["reasons"] == []
    assert v["id_number_masked"] == MASKED

    assert api.counts() == (1, 3)
    assert msisdn not in api.numbers(50)  # reserved
    with api.sessions() as s:
        order = s.get(Order, body["order_id"])
        assert order is not None
        assert order.agent_id == "agt_a"
        declared = json.loads(open_text(api.settings.blob_key_bytes, order.declared_enc, order.id))
        assert declared == {"name": NAME, "id_number": ID_NUMBER}
        assert ID_NUMBER not in order.declared_enc
        assert order.declared_number_masked == MASKED
        sim = inventory.get_sim(s, msisdn)
        assert sim is not None
        assert (sim.status, sim.order_id) == ("reserved", order.id)
        blobs = {b.role: b for b in s.scalars(select(Blob).where(Blob.order_id == order.id))}
        assert set(blobs) == set(PARTS)
        assert all(b.content_type == "image/jpeg" for b in blobs.values())
        entries = list(s.scalars(select(AuditEntry)))
        assert [(e.kind, e.subject, e.actor) for e in entries] == [
            ("order.received", order.id, "agt_a")
        ]
        assert entries[0].payload["declared_number"] == MASKED


def test_blobs_encrypted_at_rest(api: Api) -> None:
    r = api.post()
    assert r.status_code == 202
    files = api.blob_files()
    assert len(files) == 3
    originals = [image(p) for p in PARTS]
    for path in files:
        raw = path.read_bytes()
        assert raw.startswith(b"SGB1")
        assert b"\xff\xd8\xff" not in raw[:64]
        assert b"JFIF" not in raw
        assert b"Exif" not in raw
        assert all(o[100:164] not in raw for o in originals)
    order_id = r.json()["order_id"]
    app_blobs = api.client.app.state.simgate.blobs  # type: ignore[attr-defined]
    with api.sessions() as s:
        rows = {b.role: b.id for b in s.scalars(select(Blob).where(Blob.order_id == order_id))}
    assert {p: app_blobs.get(rows[p]) for p in PARTS} == {p: image(p) for p in PARTS}


def test_no_full_id_number_in_the_database(api: Api) -> None:
    assert api.post().status_code == 202
    with api.sessions() as s:
        for table in ("orders", "blobs", "audit_log", "sims", "agents"):
            for row in s.execute(text(f"SELECT * FROM {table}")):
                dumped = json.dumps([str(v) for v in row], ensure_ascii=False)
                assert ID_NUMBER not in dumped, table
                assert NAME not in dumped, table


def test_idempotent_replay(api: Api) -> None:
    msisdn = api.numbers(1)[0]
    key = {"Idempotency-Key": "order-42"}
    first = api.post(msisdn=msisdn, headers=key)
    assert first.status_code == 202
    second = api.post(msisdn=msisdn, headers=key)
    assert second.status_code == 200
    assert second.json()["idempotent_replay"] is True
    assert second.json()["order_id"] == first.json()["order_id"]
    assert api.counts() == (1, 3)
    assert len(api.blob_files()) == 3
    assert len(api.sent) == 1
    # The same key of another agent is another order.
    other = api.post(key=api.key_b, msisdn=api.numbers(1, key=api.key_b)[0], headers=key)
    assert other.status_code == 202
    assert other.json()["order_id"] != first.json()["order_id"]


def test_idempotency_key_reused_for_another_order(api: Api) -> None:
    a, b = api.numbers(2)
    key = {"Idempotency-Key": "order-43"}
    assert api.post(msisdn=a, headers=key).status_code == 202
    for changed in ({"msisdn": b}, {"delivery": "no_door_check"}, {"name": "李芸"}):
        r = api.post(headers=key, **{"msisdn": a, **changed})
        assert (r.status_code, r.json()["error"]) == (409, "idempotency.key_reused")
    other_selfie = {"selfie": ("selfie.jpg", image("selfie", "expired"), "image/jpeg")}
    r = api.post(msisdn=a, headers=key, files=other_selfie)
    assert (r.status_code, r.json()["error"]) == (409, "idempotency.key_reused")
    assert api.counts() == (1, 3)
    assert len(api.blob_files()) == 3


@pytest.mark.parametrize("with_key", [False, True], ids=["no_key", "other_key"])
def test_msisdn_taken(api: Api, with_key: bool) -> None:
    msisdn = api.numbers(1)[0]
    assert api.post(msisdn=msisdn).status_code == 202
    headers = {"Idempotency-Key": "another-order"} if with_key else {}
    r = api.post(msisdn=msisdn, key=api.key_a, headers=headers)
    assert (r.status_code, r.json()["error"]) == (409, "order.msisdn_unavailable")
    assert api.counts() == (1, 3)
    assert len(api.blob_files()) == 3  # the refused order's files were deleted
    assert len(api.sent) == 1


def test_agents_are_isolated(api: Api) -> None:
    r = api.post(msisdn=api.numbers(1, province="44")[0])
    order_id = r.json()["order_id"]
    other = api.client.get(f"/v1/orders/{order_id}", headers=api.auth(api.key_b))
    missing = api.client.get("/v1/orders/ord_doesnotexist", headers=api.auth(api.key_b))
    assert other.status_code == missing.status_code == 404
    assert other.json()["error"] == missing.json()["error"] == "order.not_found"
    assert api.client.get("/v1/orders", headers=api.auth(api.key_b)).json()["orders"] == []
    mine = api.client.get("/v1/orders", headers=api.auth()).json()["orders"]
    assert [o["order_id"] for o in mine] == [order_id]


def test_get_and_list_are_masked(api: Api) -> None:
    ids = [api.post().json()["order_id"] for _ in range(3)]
    for order_id in ids:
        r = api.client.get(f"/v1/orders/{order_id}", headers=api.auth())
        assert r.json()["id_number_masked"] == MASKED
        assert ID_NUMBER not in r.text
        assert NAME not in r.text
    r = api.client.get("/v1/orders", headers=api.auth())
    assert r.status_code == 200
    listed = r.json()["orders"]
    assert sorted(o["order_id"] for o in listed) == sorted(ids)
    assert {o["id_number_masked"] for o in listed} == {MASKED}
    assert ID_NUMBER not in r.text
    assert NAME not in r.text
    assert r.json()["next_before"] is None


def test_list_pagination(api: Api) -> None:
    ids = [api.post().json()["order_id"] for _ in range(3)]
    page1 = api.client.get("/v1/orders", params={"limit": 2}, headers=api.auth()).json()
    assert len(page1["orders"]) == 2
    assert page1["next_before"]
    page2 = api.client.get(
        "/v1/orders", params={"limit": 2, "before": page1["next_before"]}, headers=api.auth()
    ).json()
    seen = [o["order_id"] for o in page1["orders"] + page2["orders"]]
    assert sorted(seen) == sorted(ids)


def test_numbers(api: Api) -> None:
    everything = api.numbers(100)
    assert len(everything) == 20  # 5 per demo province
    assert everything == sorted(everything)
    assert all(len(m) == 11 and m.startswith("1") for m in everything)
    assert api.numbers(3) == everything[:3]
    scoped = api.numbers(100, key=api.key_b)
    with api.sessions() as s:
        provinces = {s.scalar(select(Sim.province).where(Sim.msisdn == m)) for m in scoped}
    assert len(scoped) == 5
    assert provinces == {"11"}
    r = api.client.get("/v1/numbers", params={"province": "x1"}, headers=api.auth())
    assert (r.status_code, r.json()["error"]) == (422, "request.invalid")
    me = api.client.get("/v1/agent", headers=api.auth(api.key_b)).json()
    assert (me["agent_id"], me["provinces"]) == ("agt_b", ["11"])


def test_openapi_and_docs(api: Api) -> None:
    spec = api.client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {"/v1/orders", "/v1/orders/{order_id}", "/v1/numbers"} <= set(paths)
    docs = api.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert api.client.get("/healthz").json() == {"status": "ok"}
    nope = api.client.get("/nope")
    assert nope.status_code == 404
    assert nope.json()["error"] == "not_found"


# --- the broker is down ---------------------------------------------------------------


def test_broker_down_does_not_fail_the_order(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens on port 1: the order is committed, the answer is 202, and the
    order stays ``received`` for the sweeper."""
    monkeypatch.setattr(enqueue, "send", REAL_SEND)
    # enqueue uses the process-wide Celery app of get_settings(), not the app's Settings
    # (see test_enqueue_uses_the_apps_broker): point it at the dead broker explicitly.
    monkeypatch.setattr(enqueue, "get_app", lambda: make_celery(api.settings))
    caplog.set_level(logging.WARNING, logger="services.workers.enqueue")
    started = time.monotonic()
    r = api.post()
    elapsed = time.monotonic() - started
    assert r.status_code == 202, r.text
    assert elapsed < 10, f"a dead broker held the request for {elapsed:.1f} s"
    order_id = r.json()["order_id"]
    view = api.client.get(f"/v1/orders/{order_id}", headers=api.auth()).json()
    assert view["status"] == "received"
    assert api.counts() == (1, 3)
    assert any("the sweeper will retry" in rec.getMessage() for rec in caplog.records)


def test_enqueue_uses_the_apps_broker(api: Api) -> None:
    celery = api.client.app.state.simgate.celery  # type: ignore[attr-defined]
    assert celery.conf.broker_url == api.settings.resolved_redis_url
