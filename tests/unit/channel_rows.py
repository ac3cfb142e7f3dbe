"""Hand-built agents, orders, SIMs and face links for the inspection and risk tests:
rows written straight to a migrated SQLite database, no pipeline."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from services.agents import create_agent
from services.storage.db import make_engine, upgrade
from services.storage.models import FaceLink, Order, Sim

DAY0 = dt.date(2026, 11, 2)
_seq = itertools.count(1)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'inspection.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def at(day: int, hour: float = 9.0) -> dt.datetime:
    """``day`` days after DAY0, at ``hour`` (UTC)."""
    base = dt.datetime.combine(DAY0, dt.time(), tzinfo=dt.UTC)
    return base + dt.timedelta(days=day, hours=hour)


def h(label: str) -> str:
    """A stand-in keyed hash (64 hex characters)."""
    return hashlib.sha256(label.encode()).hexdigest()


def agent(session: Session, name: str) -> str:
    row, _ = create_agent(session, name, agent_number=f"NO-{name}", legal_name=f"{name} Co.")
    return row.id


def order(
    session: Session,
    agent_id: str,
    created: dt.datetime,
    *,
    ident: str | None = None,
    outcome: str | None = "approved",
    reasons: Iterable[str] = (),
    notes: Iterable[str] = (),
    address: str | None = None,
    client: str | None = None,
) -> str:
    """One order row; ``ident`` names the ID number (a fresh one when None)."""
    n = next(_seq)
    ident = ident or f"person-{n}"
    oid = f"ord_test{n:06d}"
    session.add(
        Order(
            id=oid,
            agent_id=agent_id,
            request_hash=h(oid),
            msisdn=f"139{n:08d}",
            province="11",
            delivery="door_check",
            declared_enc="sealed",
            declared_number_masked="110***********0000",
            id_hash=h("id:" + ident),
            id_number_masked=f"110***********{n % 10000:04d}",
            status="decided" if outcome else "checking",
            outcome=outcome,
            reasons={"reasons": list(reasons), "notes": list(notes)},
            created_at=created,
            updated_at=created,
            decided_at=created + dt.timedelta(seconds=30) if outcome else None,
            address_hash=h("address:" + address) if address else None,
            client_hash=h("client:" + client) if client else None,
        )
    )
    session.flush()
    return oid


def link(session: Session, a: str, b: str, distance: float = 0.3) -> None:
    session.add(FaceLink(order_id=a, other_order_id=b, distance=distance))
    session.flush()


def sim(
    session: Session,
    agent_id: str,
    order_id: str,
    activated: dt.datetime,
    *,
    reported_after_days: float | None = 14,
    used: bool = True,
) -> None:
    n = next(_seq)
    session.add(
        Sim(
            iccid=f"8986{n:016d}",
            msisdn=f"138{n:08d}",
            province="11",
            status="active",
            order_id=order_id,
            agent_id=agent_id,
            activated_at=activated,
            usage_reported_at=None
            if reported_after_days is None
            else activated + dt.timedelta(days=reported_after_days),
            last_used_at=activated + dt.timedelta(days=1) if used else None,
        )
    )
    session.flush()


def honest_shop(session: Session, name: str, *, days: int = 5, per_day: int = 6) -> str:
    """An ordinary shop: one order an hour, a new person each time, each to their own
    address from their own client, one rejection in ten for varied reasons."""
    agent_id = agent(session, name)
    reasons = ["document.expired", "lookup.name_mismatch", "face.mismatch"]
    for d in range(days):
        for i in range(per_day):
            k = d * per_day + i
            rejected = k % 10 == 9
            oid = order(
                session,
                agent_id,
                at(d, 9 + i),
                outcome="rejected" if rejected else "approved",
                reasons=[reasons[k % 3]] if rejected else [],
                address=f"{name}-addr-{k}",
                client=f"{name}-client-{k}",
            )
            if not rejected:
                sim(session, agent_id, oid, at(d, 12 + i), used=True)
    return agent_id
