"""A reviewer's recheck over real HTTP against the real stack: an order the lookup
outage sent to review (``lookup.unavailable``) cannot be approved by a person (R5); the
admin sends it back to the checks with a reason, the worker asks the lookup again (up
by then) and decides it approved on the number held for it since the first decision.
The audit log holds both decisions and the recheck, and its chain verifies; the
storefront hears of each decision through its own webhook delivery."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import select

from services.domain.states import SimStatus
from services.storage import audit
from services.storage.models import AuditEntry, Order, Sim, WebhookDelivery
from tests.integration.conftest import LiveStack, release_cards

pytestmark = [pytest.mark.slow, pytest.mark.integration]


class _Receiver(BaseHTTPRequestHandler):
    """The storefront's callback endpoint: accepts every delivery."""

    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.bodies.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simgate-callback"
    finally:
        server.shutdown()


def _sim(live: LiveStack, order_id: str) -> Sim:
    with live.sessions() as session:
        sim = session.scalars(select(Sim).where(Sim.order_id == order_id)).one()
        session.expunge(sim)
        return sim


def test_recheck_sends_the_order_back_and_the_worker_decides_again(
    live: LiveStack, receiver: str
) -> None:
    release_cards(live, "good")
    live.set_faults(mode="outage")
    try:
        r = live.post("good", callback_url=receiver)
        assert r.status_code == 202, r.text
        order_id = r.json()["order_id"]
        first = live.wait_decided([order_id])[order_id]
    finally:
        live.set_faults(mode="none")
    assert first["outcome"] == "needs_review", first
    assert first["reasons"] == ["lookup.unavailable"]
    held = _sim(live, order_id)
    assert held.status == SimStatus.RESERVED  # kept for the order while a person looks

    url = f"{live.api}/v1/review/orders/{order_id}"
    r = httpx.post(
        f"{url}/decision",
        json={"decision": "approve", "reason": "照片人工核对一致"},
        headers=live.admin,
        timeout=10,
    )
    assert (r.status_code, r.json()["error"]) == (409, "review.lookup_required")

    r = httpx.post(
        f"{url}/recheck", json={"reason": "核查系统已恢复"}, headers=live.admin, timeout=10
    )
    assert r.status_code == 202, r.text
    assert r.json()["review"] is None
    assert [c["previous_reasons"] for c in r.json()["rechecks"]] == [["lookup.unavailable"]]

    second = live.wait_decided([order_id])[order_id]
    assert second["outcome"] == "approved", second
    sim = _sim(live, order_id)
    assert (sim.iccid, sim.order_id) == (held.iccid, order_id)
    assert sim.status in (SimStatus.AWAITING_HANDOVER, SimStatus.SHIPPED_INACTIVE)
    assert sim.holder_id_hash is not None

    with live.sessions() as session:
        order = session.get(Order, order_id)
        assert order is not None
        entries = list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.subject == order_id).order_by(AuditEntry.seq)
            )
        )
        assert audit.verify(session).ok
    assert order.evidence["lookup"]["result"] == "match"
    [asked] = order.reasons["rechecks"]
    assert asked["reason"] == "核查系统已恢复"
    assert asked["by"] == "stf_demo_admin"
    kinds = [e.kind for e in entries if e.kind in ("order.decided", "order.recheck")]
    assert kinds == ["order.decided", "order.recheck", "order.decided"]
    decided = [e.payload["outcome"] for e in entries if e.kind == "order.decided"]
    assert decided == ["needs_review", "approved"]
    [recheck] = [e for e in entries if e.kind == "order.recheck"]
    assert (recheck.actor, recheck.payload["previous_reasons"]) == (
        "stf_demo_admin",
        ["lookup.unavailable"],
    )

    # One webhook delivery per decision, each under its own id, both delivered.
    deadline = time.monotonic() + 60
    while True:
        with live.sessions() as session:
            hooks = list(
                session.scalars(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.order_id == order_id)
                    .order_by(WebhookDelivery.created_at)
                )
            )
        if len(hooks) == 2 and all(h.status == "delivered" for h in hooks):
            break
        assert time.monotonic() < deadline, (
            [(h.id, h.status) for h in hooks],
            live.logs(),
        )
        time.sleep(0.3)
    assert hooks[0].id != hooks[1].id
    outcomes = [b["outcome"] for b in _Receiver.bodies if b["order_id"] == order_id]
    assert sorted(outcomes) == ["approved", "needs_review"]
