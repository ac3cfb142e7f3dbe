"""An order's verification, step by step. No Celery here: tasks.py calls these.

Every step is idempotent: it re-reads the order, does nothing once the order is decided,
and moves the status only with a conditional UPDATE. A step replayed after a killed
worker (late ack, or the sweeper) therefore re-does work but never decides twice.

- :func:`verify_images` (CPU, ``vision`` queue): decode, quality, card, both sides,
  ID validation, selfie checks; stores the full reading encrypted and a masked summary.
- :func:`check_and_decide` (I/O, ``default`` queue): cross-check the typed identity,
  national lookup, card count (R2), :func:`services.domain.decide.decide`, record
  (decision + audit entry + webhook outbox row in one transaction).
- :func:`deliver_webhook`, :func:`sweep`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import metadata
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from services.agents import in_scope
from services.carrier import inventory
from services.config import Settings
from services.decisions import record_decision
from services.decisions import set_status as _set_status
from services.domain.decide import Decision, Evidence, Policy, decide
from services.domain.states import Delivery, OrderStatus, Outcome
from services.lookup.client import (
    CircuitBreaker,
    LookupClient,
    LookupRequestError,
    LookupUnavailable,
)
from services.privacy import id_hash, mask_id_number
from services.reports import match_to_dict, reading_to_dict
from services.storage.blobs import BlobStore, open_text
from services.storage.db import session_factory
from services.storage.models import Agent, Blob, Order, WebhookAttempt, WebhookDelivery, utcnow

log = logging.getLogger(__name__)
EVIDENCE_ROLE = "evidence"
MAX_ATTEMPTS = 5  # image-reading attempts per order before it goes to review


@dataclass
class Context:
    """Per-process resources of a worker (created once, reused by every task)."""

    settings: Settings
    sessions: sessionmaker[Session] = field(init=False)
    blobs: BlobStore = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = session_factory(self.settings.resolved_database_url)
        self.blobs = BlobStore(self.settings.blob_dir, self.settings.blob_key_bytes)

    @cached_property
    def lookup(self) -> LookupClient:
        s = self.settings
        return LookupClient(
            s.lookup_url,
            timeout_s=s.lookup_timeout_s,
            retries=s.lookup_retries,
            breaker=CircuitBreaker(failure_threshold=5, reset_after_s=s.lookup_retry_every_s),
        )

    @cached_property
    def policy(self) -> Policy:
        return Policy(version=self.settings.policy_version)

    def today(self) -> dt.date:
        return (
            dt.date.fromisoformat(self.settings.today) if self.settings.today else dt.date.today()
        )


@lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    from vision import face

    out = {}
    for dist in ("rapidocr", "dlib-bin", "face-recognition-models", "opencv-python-headless"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    cal = face.calibration()
    out["face_calibration"] = f"{cal.info.get('pipeline', '?')}/{cal.method}"
    return out


def blob_id_for(order_id: str, role: str) -> str:
    # Deterministic per order and role: a replayed step overwrites, never duplicates.
    return "blb_" + hashlib.sha256(f"{order_id}/{role}".encode()).hexdigest()[:24]


def _mask_name(name: str | None) -> str | None:
    if not name:
        return None
    return name[0] + "*" * (len(name) - 1)


def _read_images(ctx: Context, order_id: str) -> dict[str, bytes]:
    with ctx.sessions() as session:
        blobs = session.scalars(select(Blob).where(Blob.order_id == order_id)).all()
    return {b.role: ctx.blobs.get(b.id) for b in blobs if b.role != EVIDENCE_ROLE}


def verify_images(ctx: Context, order_id: str) -> bool:
    """The CPU part. True when the order should go on to :func:`check_and_decide`."""
    from vision import face
    from vision.errors import VisionError
    from vision.idcard import read_id_card
    from vision.io import decode_image
    from vision.layout import Side
    from vision.selfie import check_selfie

    with ctx.sessions() as session, session.begin():
        order = session.get(Order, order_id)
        if order is None:
            log.warning("verify_images: no order %s", order_id)
            return False
        if order.status in (OrderStatus.CHECKING, OrderStatus.WAITING_LOOKUP):
            return True  # images done already (replayed message)
        if order.status == OrderStatus.DECIDED:
            return False
        _set_status(
            session,
            order_id,
            OrderStatus.VERIFYING,
            (OrderStatus.RECEIVED, OrderStatus.VERIFYING),
            attempts=order.attempts + 1,
        )
        attempt = order.attempts + 1

    if attempt > MAX_ATTEMPTS:
        # A poison order (its images crash or hang the worker every time) goes to a
        # person instead of looping through the queue forever.
        _store_evidence(
            ctx, order_id, {"codes": ["processing.failed"]}, {"codes": ["processing.failed"]}, None
        )
        return True

    started = time.process_time()
    files = _read_images(ctx, order_id)
    codes: list[str] = []
    full: dict[str, Any] = {"document": None, "selfie": None, "image_errors": {}}
    pixels = {}
    for role in ("id_front", "id_back", "selfie"):
        try:
            pixels[role] = decode_image(files[role]).pixels
        except VisionError as exc:
            full["image_errors"][role] = {"code": exc.code, "detail": exc.message}
            if "image.unreadable" not in codes:
                codes.append("image.unreadable")
    number: str | None = None
    summary: dict[str, Any] = {}
    live_encoding: list[float] | None = None
    if "id_front" in pixels and "id_back" in pixels:
        reading = read_id_card([pixels["id_front"], pixels["id_back"]], today=ctx.today())
        fields = {k: v.value for k, v in reading.fields.items()}
        number = fields.get("id_number")
        codes.extend(c for c in (*reading.errors, *reading.warnings) if c not in codes)
        full["document"] = reading_to_dict(reading)  # the `simgate read-id --json` shape
        summary["document"] = {
            "fields_read": sorted(k for k, v in fields.items() if v),
            "checks": dict(reading.checks),
            # Per side, each signal's 0-100 strength (higher = worse).
            "quality": {
                s.side.value: {q.code: q.score for q in s.quality.signals} for s in reading.sides
            },
        }
        front = next((s for s in reading.sides if s.side == Side.PORTRAIT), None)
        if "selfie" in pixels and front is not None and front.portrait is not None:
            sc = check_selfie(
                pixels["selfie"], scanned_portrait=front.portrait, scanned_id_number=number
            )
            uses = face.calibration().uses
            codes.extend(c for c in sc.reasons if c not in codes)
            face_match = match_to_dict(sc.face_match, _thresholds(uses, "selfie_vs_portrait"))
            card_match = match_to_dict(
                sc.card_portrait_match, _thresholds(uses, "portrait_vs_portrait")
            )
            full["selfie"] = {
                "reasons": list(sc.reasons),
                "face_match": face_match,
                "card_portrait_match": card_match,
                "card_number": {
                    "verdict": sc.card_number.verdict,
                    "held": sc.card_number.held,
                    "expected": sc.card_number.expected,
                },
                "faces_found": sc.faces_found,
            }
            summary["selfie"] = {
                "face_match": face_match,
                "card_portrait_match": card_match,
                "card_number": sc.card_number.verdict,
                "faces_found": sc.faces_found,
            }
            if sc.live_face_encoding is not None:
                live_encoding = [round(float(x), 6) for x in sc.live_face_encoding]
            if sc.scanned_portrait_encoding is not None:
                full["portrait_encoding"] = [
                    round(float(x), 6) for x in sc.scanned_portrait_encoding
                ]
        elif "selfie" in pixels:
            codes.append("face.portrait_not_found")
    full["codes"] = codes
    full["live_face_encoding"] = live_encoding
    full["cpu_s"] = round(time.process_time() - started, 3)
    summary["codes"] = codes
    summary["cpu_s"] = full["cpu_s"]
    summary["versions"] = _versions()

    _store_evidence(ctx, order_id, full, summary, number)
    return True


def _store_evidence(
    ctx: Context, order_id: str, full: dict[str, Any], summary: dict[str, Any], number: str | None
) -> None:
    codes = full.get("codes", [])
    evidence_id = blob_id_for(order_id, EVIDENCE_ROLE)
    data = json.dumps(full, ensure_ascii=False).encode()
    ctx.blobs.put(evidence_id, data)
    with ctx.sessions() as session, session.begin():
        if session.get(Blob, evidence_id) is None:
            session.add(
                Blob(
                    id=evidence_id,
                    order_id=order_id,
                    role=EVIDENCE_ROLE,
                    content_type="application/json",
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
        else:
            session.execute(
                update(Blob)
                .where(Blob.id == evidence_id)
                .values(size=len(data), sha256=hashlib.sha256(data).hexdigest())
            )
        moved = _set_status(
            session,
            order_id,
            OrderStatus.CHECKING,
            (OrderStatus.VERIFYING, OrderStatus.RECEIVED),
            id_hash=id_hash(ctx.settings.id_hash_key, number) if number else None,
            id_number_masked=mask_id_number(number),
            evidence={"vision": summary, "evidence_sha256": hashlib.sha256(data).hexdigest()},
        )
    if moved:
        log.info("order %s: images read (%s)", order_id, ",".join(codes) or "no findings")


def _thresholds(uses: Any, use: str) -> dict[str, float] | None:
    t = uses.get(use)
    return None if t is None else {"match": t.match, "no_match": t.no_match}


class AlreadyDecided(Exception):
    """Raised inside a transaction to roll it back: another run decided first."""


@dataclass(frozen=True, slots=True)
class StepResult:
    decided: bool = False
    retry_in_s: float | None = None  # lookup down: try again later
    webhook_id: str | None = None


def _normalise_name(name: str | None) -> str:
    return "".join((name or "").split())


def check_and_decide(ctx: Context, order_id: str) -> StepResult:
    """Ask the lookup, count the cards, decide. Works from the stored reading (the
    encrypted evidence blob), never the images: an order a reviewer sent back to the
    checks (status ``checking`` again) is decided without reading its photos again."""
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None or order.status == OrderStatus.DECIDED:
            return StepResult()
        if order.status not in (OrderStatus.CHECKING, OrderStatus.WAITING_LOOKUP):
            return StepResult()  # images not read yet: verify_images will call us
        agent = session.get(Agent, order.agent_id)
        assert agent is not None
        evidence_blob = session.get(Blob, blob_id_for(order_id, EVIDENCE_ROLE))
    assert evidence_blob is not None
    full = json.loads(ctx.blobs.get(evidence_blob.id))
    declared = json.loads(open_text(ctx.settings.blob_key_bytes, order.declared_enc, order.id))
    codes: list[str] = list(full.get("codes", []))
    doc = full.get("document") or {}
    fields = doc.get("fields") or {}
    number, name = fields.get("id_number"), fields.get("name")
    declared_matches = True
    if number and name:
        declared_matches = declared["id_number"].upper() == number.upper() and _normalise_name(
            declared["name"]
        ) == _normalise_name(name)

    # The lookup is asked only about a number that was read and validates; an order
    # already rejected on its document needs no national check.
    lookup_result: str | None = "skipped"
    similarity: float | None = None
    lookup_meta: dict[str, Any] = {}
    if number and name and "document.number_invalid" not in codes:
        try:
            answer = ctx.lookup.verify(name or "", number, full.get("live_face_encoding"))
            lookup_result, similarity = answer.result, answer.photo_similarity
            lookup_meta = {"request_id": answer.request_id, "attempts": answer.attempts}
        except LookupRequestError as exc:
            # The lookup refused what we sent: a bug or a contract change, for a person.
            lookup_result, lookup_meta = "refused", {"error": exc.code}
        except LookupUnavailable as exc:
            waited = (utcnow() - _checks_started(order)).total_seconds()
            if waited < ctx.settings.lookup_deadline_s:
                with ctx.sessions() as session, session.begin():
                    _set_status(
                        session,
                        order_id,
                        OrderStatus.WAITING_LOOKUP,
                        (OrderStatus.CHECKING, OrderStatus.WAITING_LOOKUP),
                    )
                log.info("order %s: lookup unavailable (%s), retrying", order_id, exc.reason)
                return StepResult(retry_in_s=ctx.settings.lookup_retry_every_s)
            lookup_result = "unavailable"
            lookup_meta = {"error": exc.reason, "waited_s": round(waited, 1)}

    cards = inventory.CardCount(0, 0)
    if order.id_hash:
        with ctx.sessions() as session:
            cards = inventory.count_cards(session, order.id_hash, order.province, order.agent_id)
    agent_codes: list[str] = []
    if agent.status == "suspended":
        agent_codes.append("agent.suspended")
    elif agent.status != "active":
        agent_codes.append("agent.revoked")
    elif not in_scope(agent, order.province):
        agent_codes.append("agent.out_of_scope")

    vision_summary = order.evidence.get("vision", {})
    face_match = (vision_summary.get("selfie") or {}).get("face_match") or {}
    selfie_prefixes = ("face.", "selfie.")
    evidence = Evidence(
        delivery=Delivery(order.delivery),
        document_codes=tuple(c for c in codes if not c.startswith(selfie_prefixes)),
        declared_matches=declared_matches,
        selfie_codes=tuple(c for c in codes if c.startswith(selfie_prefixes)),
        face_verdict=face_match.get("verdict"),
        lookup_result=lookup_result,
        lookup_photo_similarity=similarity,
        cards_in_province=cards.in_province,
        cards_at_reseller=cards.at_reseller,
        agent_codes=tuple(agent_codes),
    )
    links = _link_faces(ctx, order_id, full.get("live_face_encoding"))
    if links:
        # Recorded with the decision for inspection; no effect on it (R8 risk signal).
        order.evidence = {**order.evidence, "face_links": links}
    decision = decide(evidence, ctx.policy)
    return _record(ctx, order, decision, evidence, lookup_meta, lookup_result, similarity)


def _link_faces(ctx: Context, order_id: str, encoding: list[float] | None) -> int:
    """Index the live face across orders and count the orders showing the same person
    under another ID number. A failure is logged and never holds up the decision."""
    if not encoding:
        return 0
    try:
        from services.face_index import index_and_link

        return len(index_and_link(ctx.sessions, ctx.settings, order_id, encoding))
    except Exception:
        log.exception("order %s: face index failed; deciding without it", order_id)
        return 0


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _checks_started(order: Order) -> dt.datetime:
    """Where the lookup's deadline counts from: the order's creation, or the last time a
    reviewer sent it back to the checks (services/reviews.py recheck_order), so a
    recheck during an outage waits for the lookup like a new order."""
    started = _aware(order.created_at)
    rechecks = (order.reasons or {}).get("rechecks") or []
    if rechecks and isinstance(rechecks[-1], dict) and rechecks[-1].get("at"):
        try:
            started = max(started, _aware(dt.datetime.fromisoformat(str(rechecks[-1]["at"]))))
        except ValueError:
            pass
    return started


def _record(
    ctx: Context,
    order: Order,
    decision: Decision,
    evidence: Evidence,
    lookup_meta: dict[str, Any],
    lookup_result: str | None,
    similarity: float | None,
) -> StepResult:
    webhook_id = record_decision(
        ctx.sessions,
        ctx.settings,
        order,
        decision,
        evidence,
        lookup_meta=lookup_meta,
        lookup_result=lookup_result,
        similarity=similarity,
        card_limit=ctx.policy.card_limit,
    )
    if webhook_id is False:
        return StepResult()
    return StepResult(decided=True, webhook_id=webhook_id if isinstance(webhook_id, str) else None)


def sign(secret: str, timestamp: str, body: str) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"v1={mac}"


def deliver_webhook(ctx: Context, delivery_id: str) -> StepResult:
    """One attempt; every attempt is recorded. Returns a retry delay while attempts remain."""
    s = ctx.settings
    with ctx.sessions() as session:
        d = session.get(WebhookDelivery, delivery_id)
        if d is None or d.status != "pending":
            return StepResult()
        agent_id = d.agent_id
        if d.order_id is not None:
            order = session.get(Order, d.order_id)
            assert order is not None
            agent_id = order.agent_id
        agent = session.get(Agent, agent_id)
        assert agent is not None
        secret = agent.webhook_secret
    ts = str(int(time.time()))
    status_code: int | None = None
    error: str | None = None
    t0 = time.monotonic()
    try:
        r = httpx.post(
            d.url,
            content=d.body.encode(),
            headers={
                "Content-Type": "application/json",
                "X-Simgate-Event": d.event,
                "X-Simgate-Delivery": d.id,
                "X-Simgate-Timestamp": ts,
                "X-Simgate-Signature": sign(secret, ts, d.body),
            },
            timeout=s.webhook_timeout_s,
        )
        status_code = r.status_code
        if not 200 <= r.status_code < 300:
            error = f"HTTP {r.status_code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    ms = int((time.monotonic() - t0) * 1000)
    attempts = d.attempts + 1
    delay = s.webhook_backoff_s * (2 ** (attempts - 1))
    if error is None:
        status = "delivered"
    elif attempts >= s.webhook_max_attempts:
        status = "failed"
    else:
        status = "pending"
    with ctx.sessions() as session, session.begin():
        session.add(
            WebhookAttempt(delivery_id=d.id, status_code=status_code, error=error, duration_ms=ms)
        )
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == d.id)
            .values(
                attempts=attempts,
                status=status,
                next_attempt_at=utcnow() + dt.timedelta(seconds=delay),
            )
        )
    if status == "pending":
        return StepResult(retry_in_s=delay)
    return StepResult()


def sweep(ctx: Context) -> list[tuple[str, str]]:
    """Orders not decided and untouched for ``stuck_after_s`` are re-enqueued (a lost
    message, a worker killed with its message unacked); so are due webhooks."""
    from services.workers.enqueue import CHECK, VERIFY, WEBHOOK

    s = ctx.settings
    cutoff = utcnow() - dt.timedelta(seconds=s.stuck_after_s)
    out: list[tuple[str, str]] = []
    with ctx.sessions() as session, session.begin():
        stuck = session.scalars(
            select(Order)
            .where(Order.status != OrderStatus.DECIDED, Order.updated_at < cutoff)
            .limit(500)
        ).all()
        give_up: list[str] = []
        for o in stuck:
            if o.status in (OrderStatus.RECEIVED, OrderStatus.VERIFYING):
                out.append((VERIFY, o.id))  # verify_images counts its own attempts
                values: dict[str, Any] = {"updated_at": utcnow()}
            elif o.attempts >= 2 * MAX_ATTEMPTS:
                give_up.append(o.id)
                continue
            else:
                out.append((CHECK, o.id))
                values = {"updated_at": utcnow(), "attempts": o.attempts + 1}
            # Touch it, so the next sweep does not enqueue it again while it runs.
            session.execute(update(Order).where(Order.id == o.id).values(**values))
        due = session.scalars(
            select(WebhookDelivery.id).where(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at < cutoff,
            )
        ).all()
        out.extend((WEBHOOK, d) for d in due)
        out.extend(_stuck_checks(session, cutoff, s.stuck_after_s))
    for order_id in give_up:
        fail_order(ctx, order_id)
    return out


def _stuck_checks(
    session: Session, cutoff: dt.datetime, stuck_after_s: float
) -> list[tuple[str, str]]:
    """Door checks and video checks whose message was lost. One that keeps failing is
    closed as refused/failed with ``processing.failed`` after ten stuck periods."""
    from services.storage.models import Challenge, HandoverAttempt
    from services.workers.enqueue import ACTIVATION, HANDOVER

    out: list[tuple[str, str]] = []
    give_up = utcnow() - dt.timedelta(seconds=10 * stuck_after_s)
    for a in session.scalars(
        select(HandoverAttempt).where(
            HandoverAttempt.result.is_(None), HandoverAttempt.created_at < cutoff
        )
    ):
        if _aware(a.created_at) < give_up:
            a.result, a.status = "refused", "decided"
            a.reasons = {"reasons": ["processing.failed"]}
            a.decided_at = utcnow()
        else:
            out.append((HANDOVER, a.id))
    for c in session.scalars(
        select(Challenge).where(
            Challenge.status.in_(("received", "verifying")), Challenge.created_at < cutoff
        )
    ):
        if _aware(c.created_at) < give_up:
            c.result, c.status = "failed", "decided"
            c.reasons = {"reasons": ["processing.failed"]}
            c.decided_at = utcnow()
        else:
            out.append((ACTIVATION, c.id))
    return out


def fail_order(ctx: Context, order_id: str) -> StepResult:
    """Decide ``needs_review`` with ``processing.failed``: the checks failed on this
    order again and again (a poison message); a person looks instead of the queue."""
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
    if order is None or order.status == OrderStatus.DECIDED:
        return StepResult()
    decision = Decision(Outcome.NEEDS_REVIEW, None, ("processing.failed",), (), ctx.policy.version)
    evidence = Evidence(delivery=Delivery(order.delivery))
    log.error("order %s: giving up after %d attempts: review", order_id, order.attempts)
    return _record(ctx, order, decision, evidence, {}, None, None)
