"""A real stack for the integration tests: redis-server (bundled binary), the mock
lookup, the API (uvicorn) and a Celery worker and beat, each its own process, started
by the same code as ``simgate up`` (services/devstack.py). Only the lookup is a mock.

Timings are shortened through settings (sweeper every 2 s, an order is "stuck" after
8 s, the lookup deadline is 15 s) so failure paths finish within seconds.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from services import devstack
from services.storage.db import session_factory

ORDERS = devstack.ORDER_FIXTURES
SPEC: dict[str, Any] = json.loads((ORDERS / "orders.json").read_text())
DECIDE_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveStack:
    stack: devstack.Stack
    api: str
    lookup: str
    key: str
    sessions: sessionmaker[Session]
    staff: dict[str, str]  # back-office tokens by role: admin, auditor

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.staff['admin']}"}

    @property
    def auditor(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.staff['auditor']}"}

    def numbers(self, n: int) -> list[str]:
        r = httpx.get(f"{self.api}/v1/numbers", params={"limit": n}, headers=self.auth)
        r.raise_for_status()
        out: list[str] = r.json()["msisdns"]
        assert len(out) == n
        return out

    def post(
        self,
        set_name: str,
        *,
        typed: dict[str, str] | None = None,
        msisdn: str | None = None,
        delivery: str = "door_check",
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        identity = SPEC["sets"][set_name]["identity"]
        typed = typed or {"name": identity["name"], "id_number": identity["id_number"]}
        files = {
            part: (f"{part}.jpg", (ORDERS / f"{set_name}_{suffix}.jpg").read_bytes(), "image/jpeg")
            for part, suffix in (("id_front", "front"), ("id_back", "back"), ("selfie", "selfie"))
        }
        data = {**typed, "msisdn": msisdn or self.numbers(1)[0], "delivery": delivery}
        if callback_url:
            data["callback_url"] = callback_url
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return httpx.post(
            f"{self.api}/v1/orders", files=files, data=data, headers=headers, timeout=60
        )

    def get(self, order_id: str, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.get(f"{self.api}/v1/orders/{order_id}", headers=headers, timeout=10)

    def wait_decided(
        self, order_ids: list[str], timeout: float = DECIDE_TIMEOUT_S
    ) -> dict[str, Any]:
        done: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(done) < len(order_ids):
            for oid in order_ids:
                if oid not in done:
                    body = self.get(oid).json()
                    if body["status"] == "decided":
                        done[oid] = body
            time.sleep(0.3)
        missing = [o for o in order_ids if o not in done]
        assert not missing, f"not decided after {timeout} s: {missing}\n{self.logs()}"
        return done

    def set_faults(self, **faults: Any) -> None:
        body = {"mode": "none", "failure_rate": 1.0, "latency_ms": 0, **faults}
        httpx.put(f"{self.lookup}/admin/faults", json=body, timeout=5).raise_for_status()

    def logs(self, lines: int = 30) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(lines)}" for p in self.stack.procs.values())


def start_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """The body of the session fixture ``live`` (tests/conftest.py), which the integration
    and the browser tests share: one stack per test session."""
    data_dir: Path = tmp_path_factory.mktemp("stack")
    api_port, lookup_port = free_port(), free_port()
    env = devstack.base_env(
        data_dir,
        {
            "SIMGATE_ENV": "test",
            "SIMGATE_API_PORT": str(api_port),
            "SIMGATE_LOOKUP_PORT": str(lookup_port),
            "SIMGATE_SWEEP_EVERY_S": "2",
            "SIMGATE_STUCK_AFTER_S": "8",
            "SIMGATE_LOOKUP_DEADLINE_S": "15",
            "SIMGATE_LOOKUP_RETRY_EVERY_S": "1",
            "SIMGATE_LOOKUP_TIMEOUT_S": "1",
            "SIMGATE_WEBHOOK_BACKOFF_S": "0.5",
        },
    )
    env.pop("SIMGATE_REDIS_URL", None)
    env.pop("SIMGATE_DATABASE_URL", None)
    stack = devstack.Stack(data_dir, env)
    try:
        devstack.start_redis(stack)
        key = devstack.prepare(stack.settings)
        staff = devstack.prepare_staff(stack.settings)
        devstack.start_lookup(stack, lookup_port)
        devstack.start_worker(stack, 2)
        devstack.start_beat(stack)
        devstack.start_api(stack, api_port)
        yield LiveStack(
            stack=stack,
            api=f"http://127.0.0.1:{api_port}",
            lookup=f"http://127.0.0.1:{lookup_port}",
            key=key,
            sessions=session_factory(stack.settings.resolved_database_url),
            staff=staff,
        )
    finally:
        stack.stop()


def release_cards(live: LiveStack, set_name: str) -> None:
    """Test setup: the set's identity holds no cards (earlier tests approved some)."""
    from sqlalchemy import update

    from services.privacy import id_hash
    from services.storage.models import Sim

    number = SPEC["sets"][set_name]["identity"]["id_number"]
    h = id_hash(live.stack.settings.id_hash_key, number)
    with live.sessions() as session, session.begin():
        session.execute(update(Sim).where(Sim.holder_id_hash == h).values(holder_id_hash=None))


def approved_order(live: LiveStack, set_name: str = "good", delivery: str = "door_check") -> str:
    release_cards(live, set_name)
    r = live.post(set_name, delivery=delivery)
    assert r.status_code == 202, r.text
    order_id: str = r.json()["order_id"]
    body = live.wait_decided([order_id])[order_id]
    assert body["outcome"] == "approved", body
    return order_id


def logistics(live: LiveStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {live.stack.settings.logistics_token}"}
