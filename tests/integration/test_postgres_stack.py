"""The same service on PostgreSQL and an external Redis (what production runs on):
``SIMGATE_DATABASE_URL`` / ``SIMGATE_REDIS_URL`` replace SQLite and the bundled Redis.

Skips with a message where PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is not
reachable; CI starts both in ``.ci/run``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import redis

from services import devstack
from services.storage.db import session_factory
from tests.integration.conftest import SPEC, LiveStack, free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PG_ADMIN = os.environ.get(
    "SIMGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("SIMGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture(scope="module")
def pg_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN} ({exc}); CI starts it in .ci/run")
    try:
        broker = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        broker.ping()
    except redis.RedisError as exc:
        admin.close()
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({exc}); CI starts it in .ci/run")
    broker.flushdb()  # db 13 belongs to these tests
    db = f"simgate_test_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{db}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{db}"
    data_dir = tmp_path_factory.mktemp("pgstack")
    api_port, lookup_port = free_port(), free_port()
    env = devstack.base_env(
        data_dir,
        {
            "SIMGATE_ENV": "test",
            "SIMGATE_DATABASE_URL": url,
            "SIMGATE_REDIS_URL": REDIS_URL,
            "SIMGATE_LOOKUP_TIMEOUT_S": "1",
        },
    )
    stack = devstack.Stack(data_dir, env)
    try:
        key = devstack.prepare(stack.settings)
        devstack.start_lookup(stack, lookup_port)
        devstack.start_worker(stack, 2, name="pgworker")
        devstack.start_api(stack, api_port)
        yield LiveStack(
            stack=stack,
            api=f"http://127.0.0.1:{api_port}",
            lookup=f"http://127.0.0.1:{lookup_port}",
            key=key,
            sessions=session_factory(url),
            staff=devstack.prepare_staff(stack.settings),
        )
    finally:
        stack.stop()
        from services.storage.db import engine_for

        engine_for(url).dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()
        broker.flushdb()


@pytest.mark.parametrize("name", ["good", "expired", "five_cards"])
def test_orders_are_decided_on_postgresql(pg_live: LiveStack, name: str) -> None:
    order = next(o for o in SPEC["orders"] if o["name"] == name)
    r = pg_live.post(order["set"], typed=order["typed"], delivery=order["delivery"])
    assert r.status_code == 202, r.text
    order_id = r.json()["order_id"]
    got = pg_live.wait_decided([order_id])[order_id]
    assert got["outcome"] == order["expected"]["outcome"], got
    assert set(order["expected"]["reasons"]) <= set(got["reasons"])
