"""Recording an order's decision, shared by the worker pipeline and the back office
(an agent's revocation stops its undecided orders from the API process).

No vision and no Celery here: the API may import it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.carrier import inventory
from services.config import Settings
from services.domain.decide import Decision, Evidence
from services.domain.states import Delivery, OrderStatus, Outcome, ShipMode, SimStatus
from services.storage import audit
from services.storage.models import Order, WebhookDelivery, utcnow

log = logging.getLogger(__name__)
UNDECIDED = (
    OrderStatus.RECEIVED,
    OrderStatus.VERIFYING,
    OrderStatus.CHECKING,
    OrderStatus.WAITING_LOOKUP,
)


def set_status(
    session: Session,
    order_id: str,
    to: OrderStatus,
    allowed: tuple[OrderStatus, ...],
    **values: Any,
) -> bool:
    """Move an order only from one of ``allowed``: a replayed or raced step is a no-op."""
    res = session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status.in_([s.value for s in allowed]))
        .values(status=to.value, updated_at=utcnow(), **values)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def scores_of(
    order: Order, lookup_result: str | None, similarity: float | None, cards: Evidence
) -> dict[str, Any]:
    vision_summary = order.evidence.get("vision", {})
    selfie = vision_summary.get("selfie") or {}
    return {
        "face_match": selfie.get("face_match"),
        "card_portrait_match": selfie.get("card_portrait_match"),
        "card_number": selfie.get("card_number"),
        "document_quality": (vision_summary.get("document") or {}).get("quality"),
        "lookup": {"result": lookup_result, "photo_similarity": similarity},
        "cards_held": {"province": cards.cards_in_province, "reseller": cards.cards_at_reseller},
    }


def decision_webhook_id(order_id: str, previous_decisions: int = 0) -> str:
    """The outbox id of an order's ``order.decided`` webhook: the first decision's is
    ``whk_`` + sha256(order id); each decision after a recheck seeds its number in, so
    the ids never collide and a replayed step still finds its own row."""
    seed = order_id if not previous_decisions else f"{order_id}/decision/{previous_decisions}"
    return "whk_" + hashlib.sha256(seed.encode()).hexdigest()[:24]


def record_decision(
    sessions: sessionmaker[Session],
    settings: Settings,
    order: Order,
    decision: Decision,
    evidence: Evidence,
    *,
    lookup_meta: dict[str, Any] | None = None,
    lookup_result: str | None = None,
    similarity: float | None = None,
    card_limit: int,
    actor: str = "pipeline",
) -> str | bool:
    """Decide ``order`` once: status, SIM transition, activation code, audit entry and
    webhook outbox row commit together. Returns the webhook delivery id (``True`` when
    there is no callback), or ``False`` when the order was decided by someone else.

    ``needs_review`` keeps the SIM reserved for the order. An order a reviewer sent
    back to the checks (``reasons["rechecks"]``) is undecided again and decided here a
    second time: a second ``order.decided`` audit entry, and a webhook row whose id
    counts the decisions before it (:func:`decision_webhook_id`)."""
    lookup_meta = lookup_meta or {}
    now = utcnow()
    scores = scores_of(order, lookup_result, similarity, evidence)
    ev = dict(order.evidence)
    ev.update(
        {
            "scores": scores,
            "lookup": {**lookup_meta, "result": lookup_result},
            "declared_matches": evidence.declared_matches,
            "policy": {"version": decision.policy_version, "card_limit": card_limit},
        }
    )
    # needs_review keeps the number reserved for the order while a person looks (the
    # review releases it on rejection); any other outcome without a ship mode gives it
    # back to the inventory.
    sim_to: SimStatus | None = {
        ShipMode.ACTIVATE_ON_HANDOVER: SimStatus.AWAITING_HANDOVER,
        ShipMode.SHIP_INACTIVE: SimStatus.SHIPPED_INACTIVE,
        None: None if decision.outcome == Outcome.NEEDS_REVIEW else SimStatus.AVAILABLE,
    }[decision.ship_mode]
    # A rechecked order (services/reviews.py recheck_order) is decided again: its
    # history stays with the new reason codes, and its webhook row gets its own id.
    rechecks = list((order.reasons or {}).get("rechecks") or [])
    reasons: dict[str, Any] = {"reasons": list(decision.reasons), "notes": list(decision.notes)}
    if rechecks:
        reasons["rechecks"] = rechecks
    payload = {
        "outcome": decision.outcome.value,
        "ship_mode": decision.ship_mode.value if decision.ship_mode else None,
        "reasons": list(decision.reasons),
        "notes": list(decision.notes),
        "policy_version": decision.policy_version,
        "id_number": order.id_number_masked,
        "scores": scores,
        "versions": order.evidence.get("vision", {}).get("versions"),
        "evidence_sha256": order.evidence.get("evidence_sha256"),
    }
    webhook_id: str | None = None
    for _ in range(audit.MAX_RACES):
        try:
            with sessions() as session, session.begin():
                decided = set_status(
                    session,
                    order.id,
                    OrderStatus.DECIDED,
                    UNDECIDED,
                    outcome=decision.outcome.value,
                    ship_mode=decision.ship_mode.value if decision.ship_mode else None,
                    reasons=reasons,
                    evidence=ev,
                    decided_at=now,
                )
                if not decided:
                    return False  # someone else decided it
                if sim_to is not None:
                    inventory.transition(
                        session,
                        order.id,
                        sim_to,
                        holder_id_hash=order.id_hash
                        if decision.outcome == Outcome.APPROVED
                        else None,
                    )
                if decision.ship_mode == ShipMode.SHIP_INACTIVE:
                    # R7: the pack carries a one-time code the customer activates with.
                    inventory.issue_activation_code(session, order.id, settings.blob_key_bytes)
                audit.append(
                    session,
                    kind="order.decided",
                    subject=order.id,
                    actor=actor,
                    payload=payload,
                )
                if order.callback_url:
                    webhook_id = decision_webhook_id(order.id, len(rechecks))
                    body = {
                        "event": "order.decided",
                        "order_id": order.id,
                        "outcome": payload["outcome"],
                        "ship_mode": payload["ship_mode"],
                        "reasons": payload["reasons"],
                        "decided_at": now.isoformat(),
                    }
                    session.add(
                        WebhookDelivery(
                            id=webhook_id,
                            order_id=order.id,
                            url=order.callback_url,
                            body=json.dumps(body, ensure_ascii=False, sort_keys=True),
                        )
                    )
            break
        except IntegrityError:
            webhook_id = None
            continue  # lost the audit seq race: replay
    else:
        raise RuntimeError(f"order {order.id}: could not record the decision (audit races)")
    log.info(
        "order %s decided: %s %s %s",
        order.id,
        decision.outcome.value,
        decision.ship_mode.value if decision.ship_mode else "-",
        ",".join(decision.reasons),
    )
    return webhook_id or True


def stop_order(
    sessions: sessionmaker[Session],
    settings: Settings,
    order_id: str,
    *,
    reason: str,
    actor: str,
    card_limit: int,
) -> str | bool:
    """Reject an undecided order with ``reason`` (e.g. ``agent.revoked``), through the
    same recording as any decision; ``False`` when it was decided already."""
    with sessions() as session:
        order = session.get(Order, order_id)
    if order is None or order.status == OrderStatus.DECIDED:
        return False
    decision = Decision(Outcome.REJECTED, None, (reason,), (), settings.policy_version)
    return record_decision(
        sessions,
        settings,
        order,
        decision,
        Evidence(delivery=Delivery(order.delivery), agent_codes=(reason,)),
        card_limit=card_limit,
        actor=actor,
    )
