"""Video activation end to end with real clips: the committed sample of
fixtures/liveness (a genuine clip per challenge, and every attack kind), uploaded
through the API and judged by a worker with vision.liveness.

Test setup gives each case a fresh inactive SIM whose verified portrait is the case's
reference person (the order's evidence is rewritten: the clips' people are not on the
fixture ID cards), and asks the actions the clip shows (the challenge generator is
random; ``fixtures/liveness/manifest.jsonl`` holds what each clip contains)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from services import devstack
from services.storage.models import Challenge, Sim
from services.workers.pipeline import EVIDENCE_ROLE, blob_id_for
from tests.integration.conftest import LiveStack, approved_order, logistics

pytestmark = [pytest.mark.slow, pytest.mark.integration]
LIVENESS = devstack.REPO / "fixtures" / "liveness"
CASES = [json.loads(line) for line in (LIVENESS / "manifest.jsonl").read_text().splitlines()]
ATTACKS = [c for c in CASES if c["label"] == "attack"]
GENUINE = [c for c in CASES if c["label"] == "genuine"]


def _reference(identity: str) -> list[float]:
    from vision import face
    from vision.io import load_image

    found = face.largest_face(
        load_image(devstack.REPO / "fixtures" / "references" / f"{identity}.jpg").pixels
    )
    assert found is not None
    return [float(x) for x in found.encoding]


def _inactive_sim_of(live: LiveStack, identity: str) -> dict[str, Any]:
    order_id = approved_order(live, delivery="no_door_check")
    blobs = live.stack.settings
    from services.storage.blobs import BlobStore

    store = BlobStore(blobs.blob_dir, blobs.blob_key_bytes)
    bid = blob_id_for(order_id, EVIDENCE_ROLE)
    evidence = json.loads(store.get(bid))
    evidence["portrait_encoding"] = _reference(identity)
    store.put(bid, json.dumps(evidence).encode())
    r = httpx.get(f"{live.api}/v1/logistics/orders/{order_id}/pack", headers=logistics(live))
    assert r.status_code == 200, r.text
    return {**r.json(), "order_id": order_id}


def _activate(live: LiveStack, case: dict[str, Any], clip: Path) -> dict[str, Any]:
    pack = _inactive_sim_of(live, case["reference"]["identity"])
    r = httpx.post(
        f"{live.api}/v1/activations",
        json={"iccid": pack["iccid"], "code": pack["activation_code"]},
    )
    assert r.status_code == 201, r.text
    c = r.json()
    with live.sessions() as session, session.begin():
        session.execute(
            update(Challenge)
            .where(Challenge.id == c["challenge_id"])
            .values(actions={"actions": case["challenge"]})
        )
    auth = {"Authorization": f"Bearer {c['token']}"}
    files = {"video": (clip.name, clip.read_bytes(), "application/octet-stream")}
    up = httpx.post(f"{live.api}{c['upload_url']}", files=files, headers=auth, timeout=60)
    assert up.status_code == 202, up.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(
            f"{live.api}/v1/activations/{c['challenge_id']}", headers=auth
        ).json()
        if body["result"] is not None:
            with live.sessions() as session:
                body["sim_status"] = session.scalars(
                    select(Sim.status).where(Sim.iccid == pack["iccid"])
                ).one()
            return body
        time.sleep(0.3)
    raise AssertionError(f"activation not decided\n{live.logs()}")


def test_genuine_clip_activates_and_the_same_recording_cannot_be_reused(live: LiveStack) -> None:
    case = GENUINE[-1]
    clip = LIVENESS / case["path"]
    body = _activate(live, case, clip)
    assert body["result"] == "activated", body
    assert body["sim_status"] == "active"
    assert all(a["seen"] for a in body["evidence"]["actions"] if a["action"] in case["challenge"])
    again = _activate(live, case, clip)
    assert again["result"] == "failed"
    assert "liveness.replay_suspected" in again["reasons"]
    assert again["sim_status"] == "shipped_inactive"


@pytest.mark.parametrize("case", ATTACKS, ids=[c["kind"] for c in ATTACKS])
def test_attack_is_refused(live: LiveStack, case: dict[str, Any]) -> None:
    body = _activate(live, case, LIVENESS / case["path"])
    assert body["result"] == "failed", body
    assert set(case["expected_reasons"]) & set(body["reasons"]), body
    assert body["sim_status"] == "shipped_inactive"
