"""Video activation (R7) through real processes: codes, challenges, uploads, limits.

The liveness checks themselves (genuine clips, attacks) are in
test_activation_liveness.py; these tests need no face video."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from services.storage.models import Challenge
from tests.integration.conftest import LiveStack, approved_order, logistics

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def inactive_sim(live: LiveStack) -> dict[str, Any]:
    """An approved no-door-check order: its pack (ICCID + activation code)."""
    order_id = approved_order(live, delivery="no_door_check")
    r = httpx.get(f"{live.api}/v1/logistics/orders/{order_id}/pack", headers=logistics(live))
    assert r.status_code == 200, r.text
    pack: dict[str, Any] = r.json()
    assert pack["ship_mode"] == "ship_inactive"
    assert pack["activation_code"]
    assert len(pack["activation_code"]) == 8
    return pack


def start(live: LiveStack, iccid: str, code: str) -> httpx.Response:
    return httpx.post(f"{live.api}/v1/activations", json={"iccid": iccid, "code": code})


def test_a_challenge_asks_two_or_three_known_actions_and_expires(live: LiveStack) -> None:
    pack = inactive_sim(live)
    r = start(live, pack["iccid"], pack["activation_code"])
    assert r.status_code == 201, r.text
    c = r.json()
    assert 2 <= len(c["actions"]) <= 3
    assert len(set(c["actions"])) == len(c["actions"])
    assert set(c["actions"]) <= {"blink_twice", "turn_left", "turn_right", "open_mouth", "nod"}
    expires = dt.datetime.fromisoformat(c["expires_at"])
    assert dt.timedelta(0) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=10)
    # Expired: refused before anything is stored, and the challenge is closed.
    with live.sessions() as session, session.begin():
        session.execute(
            update(Challenge)
            .where(Challenge.id == c["challenge_id"])
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    auth = {"Authorization": f"Bearer {c['token']}"}
    video = {"video": ("v.webm", b"\x1a\x45\xdf\xa3" + b"\0" * 4000, "video/webm")}
    late = httpx.post(f"{live.api}{c['upload_url']}", files=video, headers=auth)
    assert late.status_code == 410
    assert late.json()["error"] == "liveness.expired"
    status = httpx.get(f"{live.api}/v1/activations/{c['challenge_id']}", headers=auth).json()
    assert status["result"] == "failed"
    assert status["reasons"] == ["liveness.expired"]
    again = httpx.post(f"{live.api}{c['upload_url']}", files=video, headers=auth)
    assert again.status_code == 409
    assert again.json()["error"] == "liveness.challenge_used"


def test_the_challenge_token_is_required(live: LiveStack) -> None:
    pack = inactive_sim(live)
    c = start(live, pack["iccid"], pack["activation_code"]).json()
    r = httpx.get(f"{live.api}/v1/activations/{c['challenge_id']}")
    assert r.status_code == 404
    bad = {"Authorization": "Bearer sgt_wrong"}
    r = httpx.get(f"{live.api}/v1/activations/{c['challenge_id']}", headers=bad)
    assert r.status_code == 404


def test_not_a_video_is_refused(live: LiveStack) -> None:
    pack = inactive_sim(live)
    c = start(live, pack["iccid"], pack["activation_code"]).json()
    auth = {"Authorization": f"Bearer {c['token']}"}
    r = httpx.post(
        f"{live.api}{c['upload_url']}",
        files={"video": ("v.txt", b"hello, not a video" * 10, "text/plain")},
        headers=auth,
    )
    assert r.status_code == 422
    assert r.json()["error"] == "upload.not_a_video"


def test_brute_forcing_the_code_locks_the_sim(live: LiveStack) -> None:
    pack = inactive_sim(live)
    tries = live.stack.settings.activation_code_max_tries
    for n in range(tries):
        wrong = f"{(int(pack['activation_code']) + 1 + n) % 10**8:08d}"
        r = start(live, pack["iccid"], wrong)
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "activation.bad_code"
    locked = start(live, pack["iccid"], pack["activation_code"])
    assert locked.status_code == 429
    assert locked.json()["error"] == "activation.locked"
    unknown = start(live, "8986" + "0" * 16, "12345678")
    assert unknown.status_code == 401
