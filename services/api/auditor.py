"""The regulator's view (R10), ``auditor`` role only, read-only: search decisions, verify
the audit chain, export one order's evidence package as a zip.

The evidence package is the only way the full reading of an ID card (and the decrypted
images) leaves the system; every export is itself an audit entry, and the ``Auditor``
dependency has already logged the request (``access.auditor``) before a handler runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from services.api.deps import Auditor, DbSession, State
from services.api.orders import ERRORS
from services.domain.states import OrderStatus, Outcome
from services.errors import NotFound, Unprocessable
from services.storage import audit
from services.storage.blobs import BlobError, BlobStore, open_text
from services.storage.models import (
    Agent,
    AuditEntry,
    Blob,
    Challenge,
    Delivery,
    HandoverAttempt,
    Order,
    Sim,
    utcnow,
)

router = APIRouter(prefix="/v1/audit", tags=["regulator"])

# The full machine reading of an order (services/workers/pipeline.py EVIDENCE_ROLE).
EVIDENCE_ROLE = "evidence"
ORDER_IMAGES = ("id_front", "id_back", "selfie")
# Sealed columns: ciphertext means nothing to a reader; the masked forms are exported.
SEALED_COLUMNS = frozenset({"declared_enc", "delivery_address_enc"})
AGENT_SECRETS = frozenset({"webhook_secret"})
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "application/json": "json",
    "video/webm": "webm",
    "video/mp4": "mp4",
    "video/x-msvideo": "avi",
}


# --- shared helpers (also used by the leak trace) --------------------------------------


def iso(value: dt.datetime | None) -> str | None:
    """UTC ISO time; SQLite hands back naive datetimes, which are UTC here."""
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).isoformat()


def row_dict(row: object, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in inspect(row).mapper.column_attrs:
        if attr.key in exclude:
            continue
        value = getattr(row, attr.key)
        out[attr.key] = iso(value) if isinstance(value, dt.datetime) else value
    return out


def audit_entries(session: Session, subjects: list[str]) -> list[AuditEntry]:
    """Every audit entry about these subjects (an order id, its SIM's ICCID), in order."""
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.subject.in_(subjects)).order_by(AuditEntry.seq)
        )
    )


def audit_head(session: Session) -> dict[str, Any]:
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    return {"seq": last[0], "hash": last[1]} if last else {"seq": 0, "hash": audit.GENESIS}


# --- decisions search ------------------------------------------------------------------


class DecisionView(BaseModel):
    order_id: str
    agent_id: str
    agent_name: str | None
    agent_number: str | None
    outcome: str | None
    ship_mode: str | None
    reasons: list[str]
    notes: list[str]
    id_number_masked: str | None
    msisdn: str
    province: str
    delivery: str
    created_at: dt.datetime
    decided_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    policy_version: str | None
    evidence_sha256: str | None


class DecisionList(BaseModel):
    decisions: list[DecisionView]
    next_before: str | None


class HeadView(BaseModel):
    seq: int
    hash: str


class VerifyView(BaseModel):
    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str | None
    head: HeadView


def parse_when(value: str | None, field: str, *, end_of_day: bool = False) -> dt.datetime | None:
    """An ISO time (naive = UTC) or a bare date: its start, or with ``end_of_day`` the
    start of the next day (so ``to=2026-11-20`` covers that whole day)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            return start + dt.timedelta(days=1) if end_of_day else start
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Unprocessable(
            f"{field}: an ISO date (2026-11-20) or time (2026-11-20T10:00:00Z)",
            code="audit.bad_time",
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _decision_view(order: Order, agent: Agent | None) -> DecisionView:
    reasons = order.reasons or {}
    evidence = order.evidence or {}
    return DecisionView(
        order_id=order.id,
        agent_id=order.agent_id,
        agent_name=agent.name if agent else None,
        agent_number=agent.agent_number if agent else None,
        outcome=order.outcome,
        ship_mode=order.ship_mode,
        reasons=list(reasons.get("reasons", [])),
        notes=list(reasons.get("notes", [])),
        id_number_masked=order.id_number_masked or order.declared_number_masked,
        msisdn=order.msisdn,
        province=order.province,
        delivery=order.delivery,
        created_at=order.created_at,
        decided_at=order.decided_at,
        cancelled_at=order.cancelled_at,
        policy_version=(evidence.get("policy") or {}).get("version"),
        evidence_sha256=evidence.get("evidence_sha256"),
    )


@router.get("/decisions", response_model=DecisionList, responses=ERRORS)
def decisions(
    _: Auditor,
    session: DbSession,
    from_: Annotated[
        str | None, Query(alias="from", description="decided at or after (date or ISO time)")
    ] = None,
    to: Annotated[
        str | None, Query(description="decided at or before (a bare date: that whole day)")
    ] = None,
    agent_id: Annotated[str | None, Query(max_length=40)] = None,
    outcome: Outcome | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[str | None, Query(description="decided_at cursor (next_before)")] = None,
) -> DecisionList:
    """Decided orders, newest decision first."""
    start = parse_when(from_, "from")
    end = parse_when(to, "to", end_of_day=True)
    cursor = parse_when(before, "before")
    # A bare date's end is the next midnight, exclusive; a time is inclusive.
    end_exclusive = to is not None and len(to) == 10
    if start is not None and end is not None and (start >= end if end_exclusive else start > end):
        raise Unprocessable("from is after to", code="audit.bad_range")
    q = select(Order, Agent).outerjoin(Agent, Agent.id == Order.agent_id)
    q = q.where(Order.status == OrderStatus.DECIDED, Order.decided_at.is_not(None))
    if start is not None:
        q = q.where(Order.decided_at >= start)
    if end is not None:
        q = q.where(Order.decided_at < end if end_exclusive else Order.decided_at <= end)
    if agent_id is not None:
        q = q.where(Order.agent_id == agent_id)
    if outcome is not None:
        q = q.where(Order.outcome == outcome.value)
    if cursor is not None:
        q = q.where(Order.decided_at < cursor)
    rows = list(session.execute(q.order_by(Order.decided_at.desc()).limit(limit)))
    nxt = iso(rows[-1][0].decided_at) if len(rows) == limit else None
    return DecisionList(decisions=[_decision_view(o, a) for o, a in rows], next_before=nxt)


# --- the audit chain -------------------------------------------------------------------


@router.get("/verify", response_model=VerifyView, responses=ERRORS)
def verify(_: Auditor, session: DbSession) -> VerifyView:
    """Recompute every link of the hash chain; the head lets a regulator who kept an
    earlier head see that nothing newer was cut off."""
    result = audit.verify(session)
    head = audit_head(session)
    return VerifyView(
        ok=result.ok,
        entries=result.entries,
        first_bad_seq=result.first_bad_seq,
        problem=result.problem,
        head=HeadView(**head),
    )


# --- the evidence package --------------------------------------------------------------


def _sniff(data: bytes) -> str:
    """The content type of a file stored without one (door-check photos, videos)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "video/x-msvideo"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return "application/octet-stream"


class _Package:
    """The files of one evidence zip and the manifest describing them."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self.files: dict[str, bytes] = {}
        self.entries: list[dict[str, Any]] = []
        self.problems: list[dict[str, Any]] = []

    def add(self, name: str, data: bytes, source: dict[str, Any] | None = None) -> None:
        self.files[name] = data
        entry: dict[str, Any] = {
            "name": name,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if source is not None:
            recorded = source.get("recorded_sha256")
            entry["source"] = {
                **source,
                "matches_recorded": None if recorded is None else recorded == entry["sha256"],
            }
        self.entries.append(entry)

    def add_json(self, name: str, value: Any) -> None:
        text = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)
        self.add(name, text.encode())

    def add_blob(
        self,
        stem: str,
        blob_id: str,
        *,
        role: str,
        content_type: str | None = None,
        recorded_sha256: str | None = None,
    ) -> bytes | None:
        """Decrypt a blob into the package; a missing or tampered one is listed in the
        manifest's ``problems`` instead of stopping the export."""
        try:
            data = self.blobs.get(blob_id)
        except BlobError as exc:
            self.problems.append({"file": stem, "blob_id": blob_id, "problem": str(exc)})
            return None
        kind = content_type or _sniff(data)
        self.add(
            f"{stem}.{EXTENSIONS.get(kind, 'bin')}",
            data,
            {
                "blob_id": blob_id,
                "role": role,
                "content_type": kind,
                "recorded_sha256": recorded_sha256,
            },
        )
        return data

    def zip(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in self.files.items():
                # Images and videos are compressed already: deflating them again would
                # only spend the API's CPU. The JSON files shrink well.
                method = zipfile.ZIP_DEFLATED if name.endswith(".json") else zipfile.ZIP_STORED
                zf.writestr(name, data, compress_type=method)
        return buf.getvalue()


@router.get(
    "/orders/{order_id}/evidence.zip",
    responses={**ERRORS, 200: {"content": {"application/zip": {}}}},
    response_class=Response,
)
def evidence_zip(order_id: str, auditor: Auditor, state: State) -> Response:
    """One order's evidence package: the order row, the decrypted full reading and
    images, door-check photos, activation videos, the order's audit entries and a
    manifest of SHA-256 hashes. The export is written to the audit log."""
    pkg = _Package(state.blobs)
    with state.sessions() as session:
        order = session.get(Order, order_id)
        if order is None:
            raise NotFound(f"no order {order_id}", code="order.not_found")
        agent = session.get(Agent, order.agent_id)
        sim = session.scalars(select(Sim).where(Sim.order_id == order.id)).first()
        blobs = {b.role: b for b in session.scalars(select(Blob).where(Blob.order_id == order.id))}
        delivery = session.get(Delivery, order.id)
        attempts = list(
            session.scalars(
                select(HandoverAttempt)
                .where(HandoverAttempt.order_id == order.id)
                .order_by(HandoverAttempt.created_at)
            )
        )
        challenges = list(
            session.scalars(
                select(Challenge)
                .where(Challenge.order_id == order.id)
                .order_by(Challenge.created_at)
            )
        )
        # Activation entries are about the SIM (subject = ICCID), not the order.
        iccids = sorted({c.iccid for c in challenges} | ({sim.iccid} if sim else set()))
        entries = audit_entries(session, [order.id, *iccids])
        head = audit_head(session)

        pkg.add_json(
            "order.json",
            {
                "order": row_dict(order, SEALED_COLUMNS),
                "agent": row_dict(agent, AGENT_SECRETS) if agent else None,
                "sim": row_dict(sim) if sim else None,
                "blobs": [row_dict(b) for b in blobs.values()],
                "delivery": row_dict(delivery) if delivery else None,
                "handover_attempts": [row_dict(a) for a in attempts],
                "challenges": [
                    row_dict(c, frozenset({"token_hash", "fingerprint"})) for c in challenges
                ],
            },
        )
    # What the agent typed (R1 cross-check), decrypted for the regulator only.
    declared = json.loads(open_text(state.settings.blob_key_bytes, order.declared_enc, order.id))
    if order.delivery_address_enc:
        declared["delivery_address"] = open_text(
            state.settings.blob_key_bytes, order.delivery_address_enc, order.id + "/address"
        )
    pkg.add_json("declared.json", declared)
    reading = blobs.get(EVIDENCE_ROLE)
    if reading is not None:
        pkg.add_blob(
            "reading",
            reading.id,
            role=EVIDENCE_ROLE,
            content_type="application/json",
            recorded_sha256=reading.sha256,
        )
    else:
        pkg.problems.append({"file": "reading", "problem": "the images were not read yet"})
    for role in ORDER_IMAGES:
        blob = blobs.get(role)
        if blob is None:
            pkg.problems.append({"file": role, "problem": "no such blob recorded"})
            continue
        pkg.add_blob(
            role, blob.id, role=role, content_type=blob.content_type, recorded_sha256=blob.sha256
        )
    for a in attempts:
        for part, blob_id in sorted((a.evidence or {}).get("blobs", {}).items()):
            pkg.add_blob(f"handover/{a.id}/{part}", blob_id, role=f"handover.{part}")
    for c in challenges:
        if c.video_blob_id:
            pkg.add_blob(
                f"activation/{c.id}/video",
                c.video_blob_id,
                role="activation.video",
                recorded_sha256=(c.evidence or {}).get("video_sha256"),
            )
    pkg.add_json(
        "audit.json",
        {
            "subjects": [order.id, *iccids],
            "hash_rule": "hash = sha256(prev_hash + canonical JSON of "
            "{seq, at, kind, subject, actor, payload}, keys sorted, no spaces)",
            "entries": [
                {
                    "seq": e.seq,
                    "at": iso(e.at),
                    "kind": e.kind,
                    "subject": e.subject,
                    "actor": e.actor,
                    "payload": e.payload,
                    "prev_hash": e.prev_hash,
                    "hash": e.hash,
                }
                for e in entries
            ],
        },
    )
    manifest = {
        "order_id": order.id,
        "exported_at": iso(utcnow()),
        "exported_by": auditor.id,
        "files": pkg.entries,
        "problems": pkg.problems,
        "audit_head": head,
    }
    pkg.add_json("manifest.json", manifest)
    hashes = {e["name"]: e["sha256"] for e in pkg.entries}
    # The export is on the record before a byte leaves: no entry, no zip.
    audit.append_now(
        state.sessions,
        kind="evidence.exported",
        subject=order.id,
        actor=auditor.id,
        payload={"files": hashes, "problems": len(pkg.problems), "audit_head": head},
    )
    return Response(
        content=pkg.zip(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="evidence-{order.id}.zip"'},
    )
