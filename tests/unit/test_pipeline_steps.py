"""Pipeline steps called directly (no Celery, no lookup needed): a poison order goes to
review after MAX_ATTEMPTS, and replaying a step never decides twice."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import func, select, update

from services.agents import create_agent
from services.carrier import inventory
from services.config import Settings
from services.domain.states import OrderStatus, SimStatus
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
        assert sim.status == SimStatus.AVAILABLE  # released: not approved
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
