"""Video activation of an inactive SIM (R7).

The customer enters the ICCID and the one-time code from the SIM pack and gets a
challenge: 2-3 random actions, a nonce, an expiry and a token. They upload one short
video doing the actions; a worker checks liveness, replay and the face against the
portrait verified with the order, and only then activates the SIM.

Brute force: wrong codes lock the ICCID after ``activation_code_max_tries`` for
``activation_lock_s``; each client address has ``activation_tries_per_addr`` tries per
``activation_window_s``. Codes are compared by hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.agents import hash_key
from services.api.deps import DbSession, State
from services.api.orders import ERRORS
from services.carrier.inventory import activation_code_hash
from services.domain.states import LIVENESS_ACTIONS, SimStatus
from services.errors import (
    Conflict,
    Gone,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from services.storage import audit
from services.storage.blobs import new_blob_id
from services.storage.models import ActivationCode, Challenge, CodeTry, Sim, utcnow
from services.workers import enqueue

router = APIRouter(prefix="/v1/activations", tags=["customer"])
VIDEO_SIGNATURES = {
    b"\x1a\x45\xdf\xa3": "video/webm",  # EBML (WebM / Matroska)
}
MAX_FAILED_CHALLENGES = 5


class ActivationRequest(BaseModel):
    iccid: str = Field(pattern=r"^\d{19,20}$")
    code: str = Field(min_length=4, max_length=16)


class ChallengeIssued(BaseModel):
    challenge_id: str
    actions: list[str]
    nonce: str
    expires_at: dt.datetime
    token: str  # Bearer for the upload and the status; shown once
    upload_url: str


class ChallengeView(BaseModel):
    challenge_id: str
    status: str
    result: str | None
    reasons: list[str]
    actions: list[str]
    evidence: dict[str, Any]
    expires_at: dt.datetime
    decided_at: dt.datetime | None


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _video_type(data: bytes) -> str | None:
    if data[:4] in VIDEO_SIGNATURES:
        return VIDEO_SIGNATURES[data[:4]]
    if data[4:8] == b"ftyp":
        return "video/mp4"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "video/x-msvideo"
    return None


@router.post("", response_model=ChallengeIssued, status_code=201, responses=ERRORS)
def start(body: ActivationRequest, request: Request, state: State) -> ChallengeIssued:
    s = state.settings
    addr = request.client.host if request.client else "unknown"
    now = utcnow()
    with state.sessions() as session, session.begin():
        window = now - dt.timedelta(seconds=s.activation_window_s)
        tries = session.scalar(
            select(func.count())
            .select_from(CodeTry)
            .where(CodeTry.client_addr == addr, CodeTry.at > window, CodeTry.ok.is_(False))
        )
        if (tries or 0) >= s.activation_tries_per_addr:
            raise TooManyRequests(
                "too many wrong codes from this address; try later", code="activation.rate_limited"
            )
        code = session.get(ActivationCode, body.iccid)
        if code is not None and code.locked_until and _aware(code.locked_until) > now:
            raise TooManyRequests(
                "too many wrong codes for this SIM; try later", code="activation.locked"
            )
        ok = (
            code is not None
            and code.used_at is None
            and secrets.compare_digest(code.code_hash, activation_code_hash(body.iccid, body.code))
        )
        session.add(CodeTry(client_addr=addr, iccid=body.iccid, ok=ok))
        if not ok:
            if code is not None:
                code.failed_tries += 1
                if code.failed_tries >= s.activation_code_max_tries:
                    code.locked_until = now + dt.timedelta(seconds=s.activation_lock_s)
                    code.failed_tries = 0
                    audit.append(
                        session,
                        kind="activation.locked",
                        subject=body.iccid,
                        actor=addr,
                        payload={"until": code.locked_until.isoformat()},
                    )
            # The transaction must commit the try (and a lock): raise after it.
    if not ok:
        raise Unauthorized("unknown ICCID or wrong activation code", code="activation.bad_code")
    assert code is not None
    with state.sessions() as session, session.begin():
        sim = session.get(Sim, body.iccid)
        if sim is None or sim.status != SimStatus.SHIPPED_INACTIVE:
            raise Conflict("this SIM is not waiting for activation", code="activation.not_pending")
        failed = session.scalar(
            select(func.count())
            .select_from(Challenge)
            .where(Challenge.iccid == body.iccid, Challenge.result == "failed")
        )
        if (failed or 0) >= MAX_FAILED_CHALLENGES:
            raise Conflict(
                "too many failed video checks: the carrier reviews this activation",
                code="activation.review",
            )
        rng = secrets.SystemRandom()
        actions = rng.sample(LIVENESS_ACTIONS, rng.choice((2, 3)))
        token = "sgt_" + secrets.token_urlsafe(24)
        challenge = Challenge(
            id="chl_" + secrets.token_hex(12),
            iccid=body.iccid,
            order_id=code.order_id,
            token_hash=hash_key(token),
            actions={"actions": actions},
            nonce=secrets.token_hex(16),
            expires_at=now + dt.timedelta(seconds=s.challenge_ttl_s),
            client_addr=addr,
        )
        session.add(challenge)
        session.flush()
        audit.append(
            session,
            kind="activation.challenge",
            subject=body.iccid,
            actor=addr,
            payload={"challenge_id": challenge.id, "actions": actions},
        )
    return ChallengeIssued(
        challenge_id=challenge.id,
        actions=actions,
        nonce=challenge.nonce,
        expires_at=challenge.expires_at,
        token=token,
        upload_url=f"/v1/activations/{challenge.id}/video",
    )


def _challenge(session: Session, challenge_id: str, authorization: str | None) -> Challenge:
    token = (authorization or "").removeprefix("Bearer ").strip()
    c = session.get(Challenge, challenge_id)
    if c is None or not token or not secrets.compare_digest(c.token_hash, hash_key(token)):
        raise NotFound(f"no challenge {challenge_id}", code="activation.not_found")
    return c


@router.post(
    "/{challenge_id}/video", response_model=ChallengeView, status_code=202, responses=ERRORS
)
async def upload_video(
    challenge_id: str,
    state: State,
    video: Annotated[UploadFile, File(description="WebM (VP8/VP9) or MP4 (H.264), <= 15 s")],
    mirrored: Annotated[
        bool, Form(description="true if the client flipped the picture (a selfie preview)")
    ] = False,
    authorization: Annotated[str | None, Header()] = None,
) -> ChallengeView:
    limit = state.settings.max_video_bytes
    chunks, total = [], 0
    while chunk := await video.read(1 << 20):
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"video: larger than {limit} bytes", code="upload.too_large")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise Unprocessable("video: the file is empty", code="upload.empty")
    kind = _video_type(data)
    if kind is None:
        raise Unprocessable("video: not a WebM, MP4 or AVI file", code="upload.not_a_video")
    return await run_in_threadpool(_store_video, state, challenge_id, authorization, data, mirrored)


def _store_video(
    state: State, challenge_id: str, authorization: str | None, data: bytes, mirrored: bool
) -> ChallengeView:
    blob_id = new_blob_id()
    with state.sessions() as session, session.begin():
        c = _challenge(session, challenge_id, authorization)
        if c.status != "open":
            # One video per challenge: a second upload is a replay of the challenge.
            raise Conflict("this challenge was used already", code="liveness.challenge_used")
        if _aware(c.expires_at) < utcnow():
            c.status, c.result = "expired", "failed"
            c.reasons = {"reasons": ["liveness.expired"]}
            c.decided_at = utcnow()
            audit.append(
                session,
                kind="activation.decided",
                subject=c.iccid,
                actor="api",
                payload={"challenge_id": c.id, "result": "failed", "reasons": ["liveness.expired"]},
            )
            expired = True
        else:
            expired = False
            state.blobs.put(blob_id, data)
            c.status = "received"
            c.video_blob_id = blob_id
            c.evidence = {
                "video_sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "mirrored": mirrored,
            }
    if expired:
        raise Gone("the challenge expired; start again with the code", code="liveness.expired")
    enqueue.send(enqueue.ACTIVATION, challenge_id, app=state.celery)
    with state.sessions() as session:
        return _view(_challenge(session, challenge_id, authorization))


def _view(c: Challenge) -> ChallengeView:
    return ChallengeView(
        challenge_id=c.id,
        status=c.status,
        result=c.result,
        reasons=list((c.reasons or {}).get("reasons", [])),
        actions=list(c.actions.get("actions", [])),
        evidence=dict(c.evidence or {}),
        expires_at=c.expires_at,
        decided_at=c.decided_at,
    )


@router.get("/{challenge_id}", response_model=ChallengeView, responses=ERRORS)
def status(
    challenge_id: str,
    session: DbSession,
    authorization: Annotated[str | None, Header()] = None,
) -> ChallengeView:
    return _view(_challenge(session, challenge_id, authorization))
