"""Storefront API: post an order (ID front, back, handheld selfie, typed identity), read it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from services.agents import in_scope
from services.api.deps import CurrentAgent, DbSession, State
from services.api.schemas import ErrorBody, OrderAccepted, OrderList, OrderView
from services.api.uploads import CheckedImage, check_image
from services.carrier import inventory
from services.domain.states import Delivery, HandoverStatus, OrderStatus, Outcome, SimStatus
from services.errors import Conflict, Forbidden, NotFound, PayloadTooLarge, Unprocessable
from services.privacy import keyed_hash, mask_id_number, normalise_address
from services.storage import audit
from services.storage.blobs import new_blob_id, seal_text
from services.storage.models import Agent, Blob, Order, utcnow
from services.storage.models import Delivery as DeliveryRow
from services.workers import enqueue

router = APIRouter(prefix="/v1/orders", tags=["storefront"])

ID_NUMBER_RE = re.compile(r"^[1-9]\d{16}[\dXx]$")
MSISDN_RE = re.compile(r"^1\d{10}$")
IMAGE_PARTS = ("id_front", "id_back", "selfie")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 415, 422)
}


async def read_limited(part: str, upload: UploadFile, limit: int) -> bytes:
    chunks, total = [], 0
    while chunk := await upload.read(1 << 20):
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"{part}: larger than {limit} bytes", code="upload.too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _validate_fields(name: str, id_number: str, msisdn: str, callback_url: str | None) -> None:
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise Unprocessable("name: 1 to 64 characters", code="order.bad_name")
    if not ID_NUMBER_RE.match(id_number.strip()):
        raise Unprocessable(
            "id_number: 18 characters, 17 digits and a digit or X", code="order.bad_id_number"
        )
    if not MSISDN_RE.match(msisdn):
        raise Unprocessable("msisdn: an 11-digit mobile number", code="order.bad_msisdn")
    if callback_url is not None and not re.match(r"^https?://[^\s]{1,1990}$", callback_url):
        raise Unprocessable("callback_url: an http(s) URL", code="order.bad_callback_url")


def _view(order: Order) -> OrderView:
    reasons = order.reasons or {}
    waited = (
        (order.decided_at - order.created_at).total_seconds()
        if order.decided_at is not None
        else None
    )
    return OrderView(
        order_id=order.id,
        status=order.status,
        outcome=order.outcome,
        ship_mode=order.ship_mode,
        reasons=list(reasons.get("reasons", [])),
        notes=list(reasons.get("notes", [])),
        msisdn=order.msisdn,
        delivery=order.delivery,
        id_number_masked=order.id_number_masked or order.declared_number_masked,
        scores=dict(order.evidence.get("scores", {})) if order.evidence else {},
        attempts=order.attempts,
        created_at=order.created_at,
        updated_at=order.updated_at,
        decided_at=order.decided_at,
        cancelled_at=order.cancelled_at,
        seconds_to_decision=round(waited, 3) if waited is not None else None,
    )


def _existing(session: Session, agent_id: str, key: str) -> Order | None:
    return session.scalars(
        select(Order).where(Order.agent_id == agent_id, Order.idempotency_key == key)
    ).first()


def _accepted(request: Request, order: Order, *, replay: bool) -> JSONResponse:
    body = OrderAccepted(
        order_id=order.id,
        status=order.status,
        status_url=str(request.url_for("get_order", order_id=order.id)),
        idempotent_replay=replay,
    )
    return JSONResponse(body.model_dump(), status_code=200 if replay else 202)


class _Replay(Exception):
    """The number is taken, possibly by a concurrent request with the same key."""


def _replay(request: Request, found: Order, request_hash: str) -> JSONResponse:
    if found.request_hash != request_hash:
        raise Conflict(
            "this Idempotency-Key was used for a different order", code="idempotency.key_reused"
        )
    return _accepted(request, found, replay=True)


@router.post(
    "",
    status_code=202,
    response_model=OrderAccepted,
    responses=ERRORS,
    summary="Post an order: the buyer's ID card (both sides), handheld selfie, typed identity",
)
async def create_order(
    request: Request,
    state: State,
    agent: CurrentAgent,
    id_front: Annotated[UploadFile, File(description="photo of the ID card's portrait side")],
    id_back: Annotated[UploadFile, File(description="photo of the ID card's emblem side")],
    selfie: Annotated[UploadFile, File(description="the buyer holding the portrait side")],
    name: Annotated[str, Form(description="typed name; cross-checked, never trusted (R1)")],
    id_number: Annotated[str, Form(description="typed ID number; cross-checked (R1)")],
    msisdn: Annotated[str, Form(description="the chosen mobile number")],
    delivery: Annotated[Delivery, Form(description="door_check or no_door_check")],
    callback_url: Annotated[str | None, Form()] = None,
    delivery_address: Annotated[
        str | None,
        Form(max_length=300, description="where the card goes; sealed, clustered by hash (R8)"),
    ] = None,
    client: Annotated[
        str | None,
        Form(
            max_length=200,
            description="the buyer's client as the storefront saw it (IP address or device "
            "id); kept only as a keyed hash, to find many orders from one client (R8)",
        ),
    ] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    settings = state.settings
    _validate_fields(name, id_number, msisdn, callback_url)
    images: dict[str, CheckedImage] = {}
    uploads = {"id_front": id_front, "id_back": id_back, "selfie": selfie}
    for part in IMAGE_PARTS:
        data = await read_limited(part, uploads[part], settings.max_upload_bytes)
        images[part] = check_image(
            part, data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels
        )
    # Database, files and the broker are blocking I/O: off the event loop.
    return await run_in_threadpool(
        _store,
        request,
        state,
        agent,
        images,
        name.strip(),
        id_number.strip().upper(),
        msisdn,
        delivery,
        callback_url,
        idempotency_key,
        (delivery_address or "").strip() or None,
        (client or "").strip() or None,
    )


def _store(
    request: Request,
    state: State,
    agent: Agent,
    images: dict[str, CheckedImage],
    name: str,
    id_number: str,
    msisdn: str,
    delivery: Delivery,
    callback_url: str | None,
    idempotency_key: str | None,
    delivery_address: str | None = None,
    client: str | None = None,
) -> JSONResponse:
    settings = state.settings
    digest = hashlib.sha256()
    for part in IMAGE_PARTS:
        digest.update(hashlib.sha256(images[part].data).digest())
    digest.update(
        json.dumps([name, id_number, msisdn, delivery, callback_url, delivery_address]).encode()
    )
    request_hash = digest.hexdigest()

    with state.sessions() as session:
        found = _existing(session, agent.id, idempotency_key) if idempotency_key else None
        sim = inventory.get_sim(session, msisdn)
    if found is not None:
        return _replay(request, found, request_hash)
    if sim is None:
        raise Unprocessable(
            f"msisdn {msisdn} is not in the carrier's inventory", code="order.unknown_msisdn"
        )
    if not in_scope(agent, sim.province):
        raise Forbidden(
            f"agent {agent.id} may not sell numbers of province {sim.province}",
            code="agent.out_of_scope",
        )

    order_id = "ord_" + secrets.token_hex(12)
    blob_ids = {part: new_blob_id() for part in IMAGE_PARTS}
    # Files first, row second: a crash in between leaves orphan ciphertext, never a row
    # pointing at a missing file.
    for part in IMAGE_PARTS:
        state.blobs.put(blob_ids[part], images[part].data)
    try:
        for _ in range(audit.MAX_RACES):
            try:
                with state.sessions() as session, session.begin():
                    # Re-read the agent inside the transaction (locking its row on
                    # PostgreSQL): an order either commits before a revocation, which then
                    # stops it, or is refused; none slips through half-way.
                    current = session.scalars(
                        select(Agent).where(Agent.id == agent.id).with_for_update()
                    ).one()
                    if current.status != "active":
                        raise Forbidden(
                            f"agent {agent.id} is {current.status}", code=f"agent.{current.status}"
                        )
                    if not inventory.reserve(session, msisdn, order_id, agent.id):
                        # A concurrent retry of this very request may have taken it.
                        if idempotency_key:
                            raise _Replay()
                        raise Conflict(
                            f"msisdn {msisdn} is not available", code="order.msisdn_unavailable"
                        )
                    now = utcnow()
                    session.add(
                        Order(
                            id=order_id,
                            agent_id=agent.id,
                            idempotency_key=idempotency_key,
                            request_hash=request_hash,
                            msisdn=msisdn,
                            province=sim.province,
                            delivery=delivery.value,
                            callback_url=callback_url,
                            declared_enc=seal_text(
                                settings.blob_key_bytes,
                                json.dumps(
                                    {"name": name, "id_number": id_number}, ensure_ascii=False
                                ),
                                order_id,
                            ),
                            declared_number_masked=mask_id_number(id_number) or "",
                            delivery_address_enc=seal_text(
                                settings.blob_key_bytes, delivery_address, order_id + "/address"
                            )
                            if delivery_address
                            else None,
                            address_hash=keyed_hash(
                                settings.id_hash_key, "address", normalise_address(delivery_address)
                            )
                            if delivery_address
                            else None,
                            client_hash=keyed_hash(settings.id_hash_key, "client", client)
                            if client
                            else None,
                            status=OrderStatus.RECEIVED,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    session.flush()
                    for part in IMAGE_PARTS:
                        session.add(
                            Blob(
                                id=blob_ids[part],
                                order_id=order_id,
                                role=part,
                                content_type=images[part].content_type,
                                size=len(images[part].data),
                                sha256=hashlib.sha256(images[part].data).hexdigest(),
                            )
                        )
                    audit.append(
                        session,
                        kind="order.received",
                        subject=order_id,
                        actor=agent.id,
                        payload={
                            "msisdn": msisdn,
                            "delivery": delivery.value,
                            "declared_number": mask_id_number(id_number),
                            "request_hash": request_hash,
                            "blobs": {p: blob_ids[p] for p in IMAGE_PARTS},
                        },
                    )
                break
            except (IntegrityError, OperationalError, _Replay) as exc:
                if idempotency_key:
                    with state.sessions() as session:
                        found = _existing(session, agent.id, idempotency_key)
                    if found is not None:
                        for part in IMAGE_PARTS:
                            state.blobs.delete(blob_ids[part])
                        return _replay(request, found, request_hash)
                if isinstance(exc, _Replay):
                    raise Conflict(
                        f"msisdn {msisdn} is not available", code="order.msisdn_unavailable"
                    ) from None
                continue  # lost the audit seq race: replay the transaction
        else:
            raise Conflict("too many concurrent writers, retry", code="order.busy")
    except BaseException:
        for part in IMAGE_PARTS:
            state.blobs.delete(blob_ids[part])
        raise
    enqueue.send(enqueue.VERIFY, order_id, app=state.celery)
    with state.sessions() as session:
        order = session.get(Order, order_id)
        assert order is not None
    return _accepted(request, order, replay=False)


@router.get("/{order_id}", response_model=OrderView, responses=ERRORS, name="get_order")
def get_order(order_id: str, agent: CurrentAgent, session: DbSession) -> OrderView:
    order = session.get(Order, order_id)
    # Another agent's order is indistinguishable from a missing one.
    if order is None or order.agent_id != agent.id:
        raise NotFound(f"no order {order_id}", code="order.not_found")
    return _view(order)


@router.get("", response_model=OrderList, responses=ERRORS)
def list_orders(
    agent: CurrentAgent,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[dt.datetime | None, Query(description="created_at cursor")] = None,
) -> OrderList:
    q = select(Order).where(Order.agent_id == agent.id)
    if before is not None:
        q = q.where(Order.created_at < before)
    rows = list(session.scalars(q.order_by(Order.created_at.desc()).limit(limit)))
    nxt = rows[-1].created_at.isoformat() if len(rows) == limit else None
    return OrderList(orders=[_view(o) for o in rows], next_before=nxt)


@router.post("/{order_id}/cancel", response_model=OrderView, responses=ERRORS)
def cancel_order(order_id: str, agent: CurrentAgent, state: State) -> OrderView:
    """Cancel a decided order whose SIM is not active yet: the number goes back to the
    inventory, and a later door check or video activation finds nothing to activate.
    An order waiting for a person (``needs_review``) holds its number reserved: it goes
    back too, and the order can no longer be reviewed or rechecked."""
    with state.sessions() as session, session.begin():
        order = session.get(Order, order_id)
        if order is None or order.agent_id != agent.id:
            raise NotFound(f"no order {order_id}", code="order.not_found")
        if order.cancelled_at is not None:
            return _view(order)
        if order.status != OrderStatus.DECIDED:
            raise Conflict("the order is still being verified", code="order.not_decided")
        held: tuple[SimStatus, ...] = (SimStatus.AWAITING_HANDOVER, SimStatus.SHIPPED_INACTIVE)
        if order.outcome == Outcome.NEEDS_REVIEW:
            held = (SimStatus.RESERVED,)  # kept for the order while a person looks
        released = any(
            inventory.transition(session, order.id, SimStatus.AVAILABLE, expected=status)
            for status in held
        )
        if order.outcome == "approved" and not released:
            raise Conflict("the SIM is active already", code="order.sim_active")
        order.cancelled_at = utcnow()
        session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.order_id == order.id)
            .values(status=HandoverStatus.CANCELLED)
        )
        audit.append(session, kind="order.cancelled", subject=order.id, actor=agent.id, payload={})
        session.flush()
        return _view(order)
