"""The door check (R6), as a pipeline step: no Celery here, tasks.py calls it.

The recipient's card must be the verified card (same number and name, read again from
the photo, and not expired), the recipient's face must match the portrait verified
online, and the portrait on the card shown at the door. Only then does the SIM go from
``awaiting_handover`` to ``active``; every attempt is audited; after
``handover_max_failures`` refusals the delivery locks and a person reviews the order.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services.carrier import inventory
from services.domain.states import HandoverStatus, SimStatus
from services.privacy import mask_id_number
from services.reports import match_to_dict
from services.storage import audit
from services.storage.models import Blob, Delivery, HandoverAttempt, Order, utcnow
from services.workers.pipeline import (
    EVIDENCE_ROLE,
    AlreadyDecided,
    Context,
    StepResult,
    blob_id_for,
)

log = logging.getLogger(__name__)


def order_reference(ctx: Context, order: Order) -> tuple[dict[str, Any], Any]:
    """The fields read at order time and the verified portrait's embedding."""
    from vision import face
    from vision.idcard import read_side
    from vision.io import decode_image

    full = json.loads(ctx.blobs.get(blob_id_for(order.id, EVIDENCE_ROLE)))
    fields = (full.get("document") or {}).get("fields") or {}
    encoding = full.get("portrait_encoding")
    if encoding is not None:
        return fields, np.asarray(encoding, dtype=np.float64)
    # Orders recorded before the embedding was kept: read the scanned front again.
    with ctx.sessions() as session:
        blob = session.scalars(
            select(Blob).where(Blob.order_id == order.id, Blob.role == "id_front")
        ).one()
    portrait = read_side(decode_image(ctx.blobs.get(blob.id)).pixels).portrait
    found = face.largest_face(portrait) if portrait is not None else None
    return fields, None if found is None else found.encoding


def _same(read: str | None, verified: str | None) -> bool:
    """Equal after removing whitespace, case-insensitive (the X of an ID number)."""
    return (
        bool(read)
        and "".join((read or "").split()).upper() == "".join((verified or "").split()).upper()
    )


def _expired(fields: dict[str, Any], today: dt.date) -> bool:
    valid_to = fields.get("valid_to")
    if not valid_to or valid_to == "长期" or valid_to == "long-term":
        return False
    try:
        return dt.date.fromisoformat(valid_to) < today
    except ValueError:
        return False


def verify_handover(ctx: Context, attempt_id: str) -> StepResult:
    from vision import face
    from vision.errors import VisionError
    from vision.idcard import read_side
    from vision.io import decode_image
    from vision.layout import Side

    with ctx.sessions() as session, session.begin():
        attempt = session.get(HandoverAttempt, attempt_id)
        if attempt is None or attempt.result is not None:
            return StepResult()
        session.execute(
            update(HandoverAttempt)
            .where(HandoverAttempt.id == attempt_id)
            .values(status="verifying")
        )
        order = session.get(Order, attempt.order_id)
        assert order is not None
    blobs = attempt.evidence.get("blobs", {})
    reasons: list[str] = []
    scores: dict[str, Any] = {}
    fields, reference = order_reference(ctx, order)
    try:
        id_photo = decode_image(ctx.blobs.get(blobs["id_photo"])).pixels
        face_photo = decode_image(ctx.blobs.get(blobs["face_photo"])).pixels
    except VisionError as exc:
        reasons.append("image.unreadable")
        scores["image_error"] = exc.code
    else:
        side = read_side(id_photo)
        shown = {k: v.value for k, v in side.fields.items()}
        card_portrait = side.portrait if side.side == Side.PORTRAIT else None
        number_matches = _same(shown.get("id_number"), fields.get("id_number"))
        name_matches = _same(shown.get("name"), fields.get("name"))
        if side.side != Side.PORTRAIT or not shown.get("id_number"):
            reasons.append("handover.card_unreadable")
        elif not (number_matches and name_matches):
            reasons.append("handover.card_mismatch")
        scores["card"] = {
            "id_number": mask_id_number(shown.get("id_number")),
            "number_matches": number_matches,
            "name_matches": name_matches,
        }
        if _expired(fields, ctx.today()):
            reasons.append("document.expired")
        faces = face.find_faces(face_photo, max_faces=2)
        if not faces:
            reasons.append("face.not_found")
        else:
            if len(faces) > 1 and faces[1].box.width >= 0.6 * faces[0].box.width:
                reasons.append("face.multiple")
            person = faces[0].encoding
            if reference is None:
                reasons.append("face.portrait_not_found")
            else:
                m = face.compare(person, reference, use="selfie_vs_portrait")
                scores["face_vs_verified_portrait"] = match_to_dict(m)
                if m.verdict == "no_match":
                    reasons.append("face.mismatch")
                elif m.verdict == "gray":
                    reasons.append("face.uncertain")
            shown_face = face.largest_face(card_portrait) if card_portrait is not None else None
            if shown_face is not None:
                m2 = face.compare(person, shown_face.encoding, use="selfie_vs_portrait")
                scores["face_vs_card_shown"] = match_to_dict(m2)
                if m2.verdict == "no_match" and "handover.card_mismatch" not in reasons:
                    reasons.append("handover.card_mismatch")
            elif card_portrait is not None:
                reasons.append("handover.card_unreadable")
    return _record_attempt(ctx, attempt, order, reasons, scores)


def _record_attempt(
    ctx: Context,
    attempt: HandoverAttempt,
    order: Order,
    reasons: list[str],
    scores: dict[str, Any],
) -> StepResult:
    now = utcnow()
    reasons = list(dict.fromkeys(reasons))
    for _ in range(audit.MAX_RACES):
        try:
            with ctx.sessions() as session, session.begin():
                delivery = session.get(Delivery, order.id)
                assert delivery is not None
                final = list(reasons)
                result = "refused"
                if not final:
                    # Every transition is conditional: no activation of a rejected,
                    # cancelled or already active SIM.
                    if inventory.transition(
                        session,
                        order.id,
                        SimStatus.ACTIVE,
                        expected=SimStatus.AWAITING_HANDOVER,
                    ):
                        result = "handed_over"
                    else:
                        final.append("sim.not_awaiting_handover")
                if result == "handed_over":
                    delivery.status = HandoverStatus.HANDED_OVER
                else:
                    delivery.failed_attempts += 1
                    locked = delivery.failed_attempts >= ctx.settings.handover_max_failures
                    delivery.status = HandoverStatus.LOCKED if locked else HandoverStatus.FAILED
                delivery.updated_at = now
                # Conditional: a replayed task finds the attempt decided and changes nothing.
                done = session.execute(
                    update(HandoverAttempt)
                    .where(HandoverAttempt.id == attempt.id, HandoverAttempt.result.is_(None))
                    .values(
                        status="decided",
                        result=result,
                        reasons={"reasons": final},
                        evidence={**attempt.evidence, "scores": scores},
                        decided_at=now,
                    )
                )
                if not done.rowcount:  # type: ignore[attr-defined]
                    raise AlreadyDecided  # roll the whole transaction back
                audit.append(
                    session,
                    kind="handover.decided",
                    subject=order.id,
                    actor=attempt.courier_id,
                    payload={
                        "attempt_id": attempt.id,
                        "result": result,
                        "reasons": final,
                        "scores": scores,
                        "delivery_status": delivery.status,
                        "failed_attempts": delivery.failed_attempts,
                    },
                )
                if delivery.status == HandoverStatus.LOCKED:
                    audit.append(
                        session,
                        kind="handover.locked",
                        subject=order.id,
                        actor="pipeline",
                        payload={"failed_attempts": delivery.failed_attempts, "to": "review"},
                    )
            break
        except AlreadyDecided:
            return StepResult()
        except IntegrityError:
            continue
    log.info("handover %s of %s: %s %s", attempt.id, order.id, result, ",".join(final))
    return StepResult(decided=True)
