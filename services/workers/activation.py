"""Video activation (R7) as a pipeline step: liveness, replay and face, then the SIM.

A recorded video offered again (the same bytes, or the same recording by its perceptual
fingerprint, :data:`vision.video.FINGERPRINT_SAME_MAX`) is a replay, whichever SIM it
was first used for. Each upload is compared with every earlier one: fine at this scale;
an index of fingerprint prefixes is the next step for millions of activations.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services.carrier import inventory
from services.domain.states import SimStatus
from services.reports import match_to_dict
from services.storage import audit
from services.storage.models import ActivationCode, Challenge, Order, utcnow
from services.workers.handover import order_reference
from services.workers.pipeline import AlreadyDecided, Context, StepResult

log = logging.getLogger(__name__)


def verify_activation(ctx: Context, challenge_id: str) -> StepResult:
    from vision.errors import VisionError
    from vision.liveness import check_liveness
    from vision.video import (
        FINGERPRINT_SAME_MAX,
        decode_video,
        fingerprint,
        fingerprint_distance,
    )

    with ctx.sessions() as session, session.begin():
        c = session.get(Challenge, challenge_id)
        if c is None or c.status not in ("received", "verifying"):
            return StepResult()
        c.status = "verifying"
        order = session.get(Order, c.order_id)
        assert order is not None
    reasons: list[str] = []
    evidence: dict[str, Any] = dict(c.evidence or {})
    assert c.video_blob_id is not None
    data = ctx.blobs.get(c.video_blob_id)
    fp: str | None = None
    try:
        video = decode_video(data, max_bytes=ctx.settings.max_video_bytes)
    except VisionError as exc:
        reasons.append("liveness.video_unreadable")
        evidence["video_error"] = exc.code
    else:
        fp = fingerprint(video)
        with ctx.sessions() as session:
            earlier = session.execute(
                select(Challenge.id, Challenge.fingerprint, Challenge.evidence).where(
                    Challenge.id != challenge_id, Challenge.fingerprint.is_not(None)
                )
            ).all()
        sha = evidence.get("video_sha256")
        for other_id, other_fp, other_ev in earlier:
            same_bytes = sha is not None and (other_ev or {}).get("video_sha256") == sha
            if same_bytes or fingerprint_distance(fp, other_fp) <= FINGERPRINT_SAME_MAX:
                reasons.append("liveness.replay_suspected")
                evidence["replay_of"] = other_id
                break
        _, reference = order_reference(ctx, order)
        actions = list(c.actions.get("actions", []))
        result = check_liveness(
            video, actions, reference_encoding=reference, mirrored=bool(evidence.get("mirrored"))
        )
        reasons.extend(r for r in result.reasons if r not in reasons)
        evidence.update(
            {
                "actions": [
                    {
                        "action": a.action,
                        "seen": a.seen,
                        "t_start": a.t_start,
                        "t_end": a.t_end,
                        "measured": round(float(a.measured), 4),
                    }
                    for a in result.actions
                ],
                "face_match": match_to_dict(result.face_match),
                "replay_signals": {k: round(float(v), 4) for k, v in result.replay_signals.items()},
                "frames_analysed": result.frames_analysed,
                "duration_s": round(video.duration_s, 2),
                "codec": video.codec,
            }
        )
    return _record(ctx, c, reasons, evidence, fp)


def _record(
    ctx: Context, c: Challenge, reasons: list[str], evidence: dict[str, Any], fp: str | None
) -> StepResult:
    now = utcnow()
    for _ in range(audit.MAX_RACES):
        try:
            with ctx.sessions() as session, session.begin():
                result = "failed"
                final = list(reasons)
                if not final:
                    if inventory.transition(
                        session, c.order_id, SimStatus.ACTIVE, expected=SimStatus.SHIPPED_INACTIVE
                    ):
                        result = "activated"
                        session.execute(
                            update(ActivationCode)
                            .where(ActivationCode.iccid == c.iccid)
                            .values(used_at=now)
                        )
                    else:
                        final.append("sim.not_pending_activation")
                done = session.execute(
                    update(Challenge)
                    .where(Challenge.id == c.id, Challenge.status == "verifying")
                    .values(
                        status="decided",
                        result=result,
                        reasons={"reasons": final},
                        evidence=evidence,
                        fingerprint=fp,
                        decided_at=now,
                    )
                )
                if not done.rowcount:  # type: ignore[attr-defined]
                    raise AlreadyDecided  # roll the whole transaction back
                audit.append(
                    session,
                    kind="activation.decided",
                    subject=c.iccid,
                    actor="pipeline",
                    payload={
                        "challenge_id": c.id,
                        "order_id": c.order_id,
                        "result": result,
                        "reasons": final,
                        "actions": evidence.get("actions"),
                        "face_match": evidence.get("face_match"),
                        "video_sha256": evidence.get("video_sha256"),
                    },
                )
            break
        except AlreadyDecided:
            return StepResult()
        except IntegrityError:
            continue
    log.info("activation %s: %s %s", c.id, result, ",".join(final))
    return StepResult(decided=True)
