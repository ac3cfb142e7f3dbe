"""Pipeline steps called directly (no Celery, no lookup needed): a poison order goes to
review after MAX_ATTEMPTS, and replaying a step never decides twice; an order a reviewer
sends back to the checks is decided again from the stored reading, with a new lookup
deadline."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from services.agents import create_agent
from services.carrier import inventory
from services.config import Settings
from services.domain.states import OrderStatus, SimStatus
from services.reviews import recheck_order
from services.storage.blobs import seal_text
from services.storage.db import upgrade
from services.storage.models import AuditEntry, Order, Sim, utcnow
from services.workers import enqueue, pipeline


def _context(tmp_path: Path) -> pipeline.Context:
    settings = Settings(data_dir=tmp_path, env="test", lookup_url="http://127.0.0.1:9")
    upgrade(settings.resolved_database_url)
    return pipeline.Context(settings)


def _order(ctx: pipeline.Context, attempts: int) -> str:
    with ctx.sessions() as session, session.begin():
        agent, _ = create_agent(session, "shop")
        inventory.seed_inventory(session, per_province=2)
        msisdn = session.scalars(select(Sim.msisdn).limit(1)).one()
        assert inventory.reserve(session, msisdn, "ord_poison", agent.id)
        declared = json.dumps({"name": "张三", "id_number": "11010519491231002X"})
        session.add(
            Order(
                id="ord_poison",
                agent_id=agent.id,
                request_hash="x",
                msisdn=msisdn,
                province="11",
                delivery="door_check",
                declared_enc=seal_text(ctx.settings.blob_key_bytes, declared, "ord_poison"),
                declared_number_masked="110***********002X",
                status=OrderStatus.VERIFYING,
                attempts=attempts,
            )
        )
    return "ord_poison"


def test_poison_order_goes_to_review_and_is_decided_once(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    order_id = _order(ctx, attempts=pipeline.MAX_ATTEMPTS)
    assert pipeline.verify_images(ctx, order_id) is True
    first = pipeline.check_and_decide(ctx, order_id)
    again = pipeline.check_and_decide(ctx, order_id)
    assert first.decided
    assert not again.decided
    assert pipeline.verify_images(ctx, order_id) is False  # decided: nothing to do
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        assert order is not None
        assert order.outcome == "needs_review"
        assert "processing.failed" in order.reasons["reasons"]
        sim = session.scalars(select(Sim).where(Sim.msisdn == order.msisdn)).one()
        # Held for the order while a person looks (the review releases it on rejection).
        assert (sim.status, sim.order_id) == (SimStatus.RESERVED, order_id)
        decided = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.kind == "order.decided")
        )
    assert decided == 1


def test_sweeper_re_enqueues_stuck_orders_and_gives_up_on_a_poison_one(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    order_id = _order(ctx, attempts=0)
    old = utcnow() - dt.timedelta(seconds=ctx.settings.stuck_after_s + 1)
    with ctx.sessions() as session, session.begin():
        session.execute(update(Order).values(status=OrderStatus.CHECKING, updated_at=old))
    assert pipeline.sweep(ctx) == [(enqueue.CHECK, order_id)]
    assert pipeline.sweep(ctx) == []  # touched: not enqueued again while it runs
    with ctx.sessions() as session, session.begin():
        session.execute(update(Order).values(attempts=2 * pipeline.MAX_ATTEMPTS, updated_at=old))
    assert pipeline.sweep(ctx) == []
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        assert order is not None
    assert order.status == OrderStatus.DECIDED
    assert order.outcome == "needs_review"
    assert order.reasons["reasons"] == ["processing.failed"]


def _decided(ctx: pipeline.Context, order_id: str) -> int:
    with ctx.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.kind == "order.decided", AuditEntry.subject == order_id)
            )
            or 0
        )


def _no_images(*_: object) -> dict[str, bytes]:
    raise AssertionError("a recheck must not read the images again")


def test_a_rechecked_order_is_decided_again_from_the_stored_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _context(tmp_path)
    order_id = _order(ctx, attempts=pipeline.MAX_ATTEMPTS)
    assert pipeline.verify_images(ctx, order_id) is True
    assert pipeline.check_and_decide(ctx, order_id).decided
    result = recheck_order(ctx.sessions, order_id, reason="再查一次", reviewer="stf_test")
    assert (result.status, result.rechecks) == ("checking", 1)

    monkeypatch.setattr(pipeline, "_read_images", _no_images)
    again = pipeline.check_and_decide(ctx, order_id)
    assert again.decided
    assert not pipeline.check_and_decide(ctx, order_id).decided  # replayed: a no-op
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        assert order is not None
        sim = session.scalars(select(Sim).where(Sim.msisdn == order.msisdn)).one()
    assert (order.status, order.outcome) == ("decided", "needs_review")
    assert "processing.failed" in order.reasons["reasons"]
    [entry] = order.reasons["rechecks"]
    assert entry["by"] == "stf_test"
    assert "processing.failed" in entry["previous_reasons"]
    assert (sim.status, sim.order_id) == (SimStatus.RESERVED, order_id)
    assert _decided(ctx, order_id) == 2


def test_a_recheck_gives_the_lookup_a_new_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lookup (nothing listens on port 9) is down. A new order older than the
    deadline is decided lookup.unavailable at once; sent back to the checks, it waits
    for the lookup again, counting from the recheck."""
    ctx = _context(tmp_path)
    order_id = _order(ctx, attempts=0)
    number = "11010519491231002X"
    reading = {
        "codes": [],
        "document": {"fields": {"id_number": number, "name": "张三"}},
        "live_face_encoding": None,
    }
    pipeline._store_evidence(ctx, order_id, reading, {"codes": []}, number)
    long_ago = utcnow() - dt.timedelta(seconds=2 * ctx.settings.lookup_deadline_s)
    with ctx.sessions() as session, session.begin():
        session.execute(update(Order).where(Order.id == order_id).values(created_at=long_ago))
    first = pipeline.check_and_decide(ctx, order_id)
    assert first.decided
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        assert order is not None
    assert order.reasons["reasons"] == ["lookup.unavailable"]

    recheck_order(ctx.sessions, order_id, reason="查询系统已恢复", reviewer="stf_test")
    monkeypatch.setattr(pipeline, "_read_images", _no_images)
    waiting = pipeline.check_and_decide(ctx, order_id)
    assert not waiting.decided
    assert waiting.retry_in_s == ctx.settings.lookup_retry_every_s
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        assert order is not None
    assert order.status == OrderStatus.WAITING_LOOKUP
    assert _decided(ctx, order_id) == 1
