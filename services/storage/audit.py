"""Hash-chained, append-only audit log.

Each entry's hash covers the previous entry's hash and the entry's canonical JSON
(seq, time, kind, subject, actor, payload), so changing, removing or reordering any
entry breaks every later link; :func:`verify` finds the first broken one. Entries are
appended with an explicit ``seq = last + 1``: two writers racing for the same seq
collide on the primary key and the loser retries, on SQLite and PostgreSQL alike.
Payloads carry masked identity data only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.storage.models import AuditEntry, utcnow

GENESIS = "0" * 64
MAX_RACES = 20
AUDIT_LOCK_KEY = 0x51_6A_7E_00  # pg_advisory_xact_lock key of the audit log


def _canonical(
    seq: int, at: dt.datetime, kind: str, subject: str, actor: str, payload: dict[str, Any]
) -> bytes:
    at_utc = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    body = {
        "seq": seq,
        "at": at_utc.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "kind": kind,
        "subject": subject,
        "actor": actor,
        "payload": payload,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def entry_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


def append(
    session: Session, *, kind: str, subject: str, actor: str, payload: dict[str, Any]
) -> AuditEntry:
    """Append inside the caller's transaction (so the entry commits with what it records).

    Raises IntegrityError when another writer took the same seq; callers that cannot
    replay their whole transaction use :func:`append_now`.
    """
    if session.get_bind().dialect.name == "postgresql":
        # Serialise appenders for this transaction: without it the writer that just
        # committed keeps winning the next seq and the others starve in retries.
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY})
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    # Round-trip the payload through JSON now, so what is hashed is what is stored.
    clean = json.loads(json.dumps(payload, ensure_ascii=False, default=str))
    at = utcnow()
    entry = AuditEntry(
        seq=seq,
        at=at,
        kind=kind,
        subject=subject,
        actor=actor,
        payload=clean,
        prev_hash=prev,
        hash=entry_hash(prev, _canonical(seq, at, kind, subject, actor, clean)),
    )
    session.add(entry)
    session.flush()
    return entry


def append_now(
    factory: sessionmaker[Session], *, kind: str, subject: str, actor: str, payload: dict[str, Any]
) -> int:
    """Append in a transaction of its own, retrying when a concurrent writer won the seq."""
    for _ in range(MAX_RACES):
        try:
            with factory() as session, session.begin():
                return append(session, kind=kind, subject=subject, actor=actor, payload=payload).seq
        except IntegrityError:
            continue
    raise RuntimeError("audit log: too many concurrent writers")


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str | None


def _entries(session: Session, batch: int = 1000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.seq > last)
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(session: Session) -> VerifyResult:
    prev, expected_seq, count = GENESIS, 1, 0
    for e in _entries(session):
        count += 1
        if e.seq != expected_seq:
            return VerifyResult(False, count, e.seq, f"gap or reorder: expected seq {expected_seq}")
        if e.prev_hash != prev:
            return VerifyResult(False, count, e.seq, "link to the previous entry is broken")
        want = entry_hash(prev, _canonical(e.seq, e.at, e.kind, e.subject, e.actor, e.payload))
        if want != e.hash:
            return VerifyResult(False, count, e.seq, "content does not match its hash")
        prev, expected_seq = e.hash, expected_seq + 1
    return VerifyResult(True, count, None, None)
