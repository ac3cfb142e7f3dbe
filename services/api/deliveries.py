"""The door check (R6): the carrier's logistics system assigns approved orders to
couriers; at the door the courier photographs the recipient's ID card and face, a
worker compares both with the order verified online, and only a match activates the SIM.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.api.deps import CurrentCourier, DbSession, Logistics, State
from services.api.orders import ERRORS, read_limited
from services.api.uploads import check_image
from services.couriers import create_courier
from services.domain.states import HandoverStatus, Outcome, ShipMode, SimStatus
from services.errors import Conflict, NotFound
from services.storage import audit
from services.storage.blobs import new_blob_id, open_text
from services.storage.models import ActivationCode, Courier, Delivery, HandoverAttempt, Order, Sim
from services.workers import enqueue

logistics = APIRouter(prefix="/v1/logistics", tags=["logistics"], dependencies=[Logistics])
couriers = APIRouter(prefix="/v1/deliveries", tags=["courier"])


class NewCourier(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class CourierCreated(BaseModel):
    courier_id: str
    token: str  # shown once


class Assignment(BaseModel):
    order_id: str
    courier_id: str


class DeliveryView(BaseModel):
    order_id: str
    msisdn: str
    iccid: str | None
    status: str
    failed_attempts: int
    assigned_at: dt.datetime


class Pack(BaseModel):
    order_id: str
    msisdn: str
    iccid: str
    ship_mode: str
    activation_code: str | None  # printed on the pack of an inactive SIM (R7)


class AttemptAccepted(BaseModel):
    attempt_id: str
    status: str
    status_url: str


class AttemptView(BaseModel):
    attempt_id: str
    order_id: str
    status: str
    result: str | None
    reasons: list[str]
    scores: dict[str, Any]
    created_at: dt.datetime
    decided_at: dt.datetime | None


@logistics.post("/couriers", response_model=CourierCreated, status_code=201, responses=ERRORS)
def new_courier(body: NewCourier, session: DbSession) -> CourierCreated:
    with session.begin():
        courier, token = create_courier(session, body.name)
    return CourierCreated(courier_id=courier.id, token=token)


def _deliverable(session: Any, order_id: str) -> tuple[Order, Sim]:
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}", code="order.not_found")
    sim = session.scalars(select(Sim).where(Sim.order_id == order_id)).first()
    if (
        order.outcome != Outcome.APPROVED
        or order.ship_mode != ShipMode.ACTIVATE_ON_HANDOVER
        or order.cancelled_at is not None
        or sim is None
    ):
        raise Conflict(
            f"order {order_id} is not an approved order awaiting a door check",
            code="delivery.not_deliverable",
        )
    return order, sim


@logistics.post("/deliveries", response_model=DeliveryView, status_code=201, responses=ERRORS)
def assign(body: Assignment, session: DbSession) -> DeliveryView:
    with session.begin():
        order, sim = _deliverable(session, body.order_id)
        if sim.status != SimStatus.AWAITING_HANDOVER:
            raise Conflict(f"the SIM is {sim.status}", code="delivery.not_deliverable")
        courier = session.get(Courier, body.courier_id)
        if courier is None:
            raise NotFound(f"no courier {body.courier_id}", code="courier.not_found")
        delivery = session.get(Delivery, order.id)
        if delivery is None:
            delivery = Delivery(order_id=order.id, courier_id=courier.id)
            session.add(delivery)
        elif delivery.status in (HandoverStatus.ASSIGNED, HandoverStatus.FAILED):
            delivery.courier_id = courier.id  # re-assigned to another round
        else:
            raise Conflict(f"the delivery is {delivery.status}", code="delivery.closed")
        session.flush()
        audit.append(
            session,
            kind="delivery.assigned",
            subject=order.id,
            actor="logistics",
            payload={"courier_id": courier.id},
        )
    return _delivery_view(delivery, order, sim)


@logistics.get("/orders/{order_id}/pack", response_model=Pack, responses=ERRORS)
def pack(order_id: str, state: State, session: DbSession) -> Pack:
    """What the pack printer needs: ICCID, number, and for an inactive SIM its code."""
    order = session.get(Order, order_id)
    sim = session.scalars(select(Sim).where(Sim.order_id == order_id)).first()
    if order is None or sim is None or order.outcome != Outcome.APPROVED or not order.ship_mode:
        raise NotFound(f"no approved order {order_id}", code="order.not_found")
    code = session.get(ActivationCode, sim.iccid)
    plain = (
        open_text(state.settings.blob_key_bytes, code.code_sealed, sim.iccid)
        if code is not None and code.used_at is None
        else None
    )
    return Pack(
        order_id=order.id,
        msisdn=sim.msisdn,
        iccid=sim.iccid,
        ship_mode=order.ship_mode,
        activation_code=plain,
    )


def _delivery_view(d: Delivery, order: Order, sim: Sim | None) -> DeliveryView:
    return DeliveryView(
        order_id=order.id,
        msisdn=order.msisdn,
        iccid=sim.iccid if sim else None,
        status=d.status,
        failed_attempts=d.failed_attempts,
        assigned_at=d.assigned_at,
    )


@couriers.get("", response_model=list[DeliveryView], responses=ERRORS)
def my_deliveries(courier: CurrentCourier, session: DbSession) -> list[DeliveryView]:
    rows = session.scalars(
        select(Delivery).where(Delivery.courier_id == courier.id).order_by(Delivery.assigned_at)
    ).all()
    out = []
    for d in rows:
        order = session.get(Order, d.order_id)
        sim = session.scalars(select(Sim).where(Sim.order_id == d.order_id)).first()
        assert order is not None
        out.append(_delivery_view(d, order, sim))
    return out


@couriers.post(
    "/{order_id}/handover",
    response_model=AttemptAccepted,
    status_code=202,
    responses=ERRORS,
    summary="The door check: the recipient's ID card (portrait side) and face",
)
async def handover(
    order_id: str,
    state: State,
    courier: CurrentCourier,
    id_photo: Annotated[UploadFile, File(description="the recipient's ID card, portrait side")],
    face_photo: Annotated[UploadFile, File(description="the recipient's face")],
) -> AttemptAccepted:
    s = state.settings
    images = {}
    for part, upload in (("id_photo", id_photo), ("face_photo", face_photo)):
        data = await read_limited(part, upload, s.max_upload_bytes)
        images[part] = check_image(
            part, data, max_bytes=s.max_upload_bytes, max_pixels=s.max_upload_pixels
        )
    return await run_in_threadpool(_store_attempt, state, courier, order_id, images)


def _store_attempt(
    state: State, courier: Courier, order_id: str, images: dict[str, Any]
) -> AttemptAccepted:
    with state.sessions() as session:
        delivery = session.get(Delivery, order_id)
        # Only the courier of this order's round may act on it; others see nothing.
        if delivery is None or delivery.courier_id != courier.id:
            raise NotFound(f"no delivery {order_id} in your round", code="delivery.not_found")
        if delivery.status != HandoverStatus.ASSIGNED and delivery.status != HandoverStatus.FAILED:
            raise Conflict(f"the delivery is {delivery.status}", code="delivery.closed")
        pending = session.scalars(
            select(HandoverAttempt).where(
                HandoverAttempt.order_id == order_id, HandoverAttempt.result.is_(None)
            )
        ).first()
        if pending is not None:
            raise Conflict("a handover check of this order is still running", code="delivery.busy")
    attempt_id = "hov_" + secrets.token_hex(12)
    blobs = {part: new_blob_id() for part in images}
    for part, img in images.items():
        state.blobs.put(blobs[part], img.data)
    try:
        with state.sessions() as session, session.begin():
            session.add(
                HandoverAttempt(
                    id=attempt_id,
                    order_id=order_id,
                    courier_id=courier.id,
                    evidence={"blobs": blobs},
                )
            )
            audit.append(
                session,
                kind="handover.received",
                subject=order_id,
                actor=courier.id,
                payload={"attempt_id": attempt_id, "blobs": blobs},
            )
    except BaseException:
        for b in blobs.values():
            state.blobs.delete(b)
        raise
    enqueue.send(enqueue.HANDOVER, attempt_id, app=state.celery)
    return AttemptAccepted(
        attempt_id=attempt_id,
        status="received",
        status_url=f"/v1/deliveries/{order_id}/handover/{attempt_id}",
    )


@couriers.get("/{order_id}/handover/{attempt_id}", response_model=AttemptView, responses=ERRORS)
def handover_result(
    order_id: str, attempt_id: str, courier: CurrentCourier, session: DbSession
) -> AttemptView:
    a = session.get(HandoverAttempt, attempt_id)
    if a is None or a.order_id != order_id or a.courier_id != courier.id:
        raise NotFound(f"no handover attempt {attempt_id}", code="handover.not_found")
    return AttemptView(
        attempt_id=a.id,
        order_id=a.order_id,
        status=a.status,
        result=a.result,
        reasons=list((a.reasons or {}).get("reasons", [])),
        scores=dict((a.evidence or {}).get("scores", {})),
        created_at=a.created_at,
        decided_at=a.decided_at,
    )
