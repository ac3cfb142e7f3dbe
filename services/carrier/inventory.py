"""SIM inventory and the cards-per-ID count of R2.

Every state change is a conditional UPDATE (``WHERE status = <expected>``), so two
orders can never take the same number and a replayed task changes nothing twice.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.domain.states import HELD_STATUSES, SimStatus
from services.storage.blobs import seal_text
from services.storage.models import ActivationCode, Sim, utcnow

# Mobile number prefixes of the demo inventory, by province code (first two digits of
# the region code). The numbers are invented; any 11-digit 1xx number is accepted.
DEMO_PROVINCES: dict[str, str] = {"11": "北京", "31": "上海", "44": "广东", "51": "四川"}


@dataclass(frozen=True, slots=True)
class CardCount:
    in_province: int
    at_reseller: int


def iccid_for(msisdn: str) -> str:
    """A deterministic 20-digit ICCID (89 86 ...) for the demo inventory."""
    return "8986" + msisdn.rjust(16, "0")[-16:]


def add_sims(session: Session, province: str, msisdns: list[str]) -> int:
    existing = set(session.scalars(select(Sim.msisdn).where(Sim.msisdn.in_(msisdns))))
    added = 0
    for m in msisdns:
        if m not in existing:
            session.add(Sim(iccid=iccid_for(m), msisdn=m, province=province))
            added += 1
    return added


def seed_inventory(session: Session, per_province: int = 200, seed: int = 1) -> int:
    rng = random.Random(seed)
    added = 0
    for i, province in enumerate(sorted(DEMO_PROVINCES)):
        prefix = f"13{i}{province}"
        numbers = sorted({prefix + f"{rng.randrange(10**6):06d}" for _ in range(per_province)})
        added += add_sims(session, province, numbers)
    return added


def get_sim(session: Session, msisdn: str) -> Sim | None:
    return session.scalars(select(Sim).where(Sim.msisdn == msisdn)).first()


def reserve(session: Session, msisdn: str, order_id: str, agent_id: str) -> bool:
    res = session.execute(
        update(Sim)
        .where(Sim.msisdn == msisdn, Sim.status == SimStatus.AVAILABLE)
        .values(
            status=SimStatus.RESERVED, order_id=order_id, agent_id=agent_id, updated_at=utcnow()
        )
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def transition(
    session: Session,
    order_id: str,
    to: SimStatus,
    *,
    expected: SimStatus = SimStatus.RESERVED,
    holder_id_hash: str | None = None,
) -> bool:
    now = utcnow()
    values: dict[str, object] = {"status": to, "updated_at": now}
    if to == SimStatus.ACTIVE:
        values["activated_at"] = now  # R8: "activated but never used" counts from here
    if to == SimStatus.AVAILABLE:
        values.update(order_id=None, agent_id=None, holder_id_hash=None)
    elif holder_id_hash is not None:
        values["holder_id_hash"] = holder_id_hash
    res = session.execute(
        update(Sim).where(Sim.order_id == order_id, Sim.status == expected).values(**values)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def count_cards(session: Session, holder_id_hash: str, province: str, agent_id: str) -> CardCount:
    held = [s.value for s in HELD_STATUSES]
    base = (
        select(func.count())
        .select_from(Sim)
        .where(Sim.holder_id_hash == holder_id_hash, Sim.status.in_(held))
    )
    in_province = session.scalar(base.where(Sim.province == province)) or 0
    at_reseller = session.scalar(base.where(Sim.agent_id == agent_id)) or 0
    return CardCount(int(in_province), int(at_reseller))


def issue_existing(
    session: Session, holder_id_hash: str, province: str, count: int, *, agent_id: str = "legacy"
) -> list[str]:
    """Record ``count`` active cards already held by an ID (data migration, tests, demo)."""
    out = []
    for _ in range(count):
        sim = session.scalars(
            select(Sim)
            .where(Sim.province == province, Sim.status == SimStatus.AVAILABLE)
            .order_by(Sim.msisdn.desc())
            .limit(1)
        ).first()
        if sim is None:
            raise RuntimeError(f"no available SIM left in province {province}")
        sim.status = SimStatus.ACTIVE
        sim.holder_id_hash = holder_id_hash
        sim.agent_id = agent_id
        sim.updated_at = utcnow()
        session.flush()
        out.append(sim.msisdn)
    return out


ACTIVATION_CODE_DIGITS = 8


def activation_code_hash(iccid: str, code: str) -> str:
    return hashlib.sha256(f"{iccid}:{code.strip()}".encode()).hexdigest()


def issue_activation_code(session: Session, order_id: str, key: bytes) -> str | None:
    """A one-time code for the order's inactive SIM (idempotent: one per ICCID)."""
    sim = session.scalars(select(Sim).where(Sim.order_id == order_id)).first()
    if sim is None or session.get(ActivationCode, sim.iccid) is not None:
        return None
    code = "".join(secrets.choice("0123456789") for _ in range(ACTIVATION_CODE_DIGITS))
    session.add(
        ActivationCode(
            iccid=sim.iccid,
            order_id=order_id,
            code_hash=activation_code_hash(sim.iccid, code),
            code_sealed=seal_text(key, code, sim.iccid),
        )
    )
    return code
