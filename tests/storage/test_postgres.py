"""Storage on PostgreSQL: the same migrations and audit-log guarantees as on SQLite.

Each test gets a fresh database ``simgate_test_<random>`` (created from the
``postgres`` database, dropped afterwards). The server comes from
``SIMGATE_TEST_POSTGRES_URL`` (default: trust auth as ``postgres`` on 127.0.0.1:5432);
where it is not reachable the tests skip.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from services.storage import audit
from services.storage.db import make_engine, upgrade
from services.storage.models import AuditEntry, Base

psycopg = pytest.importorskip("psycopg")

SERVER_URL = make_url(
    os.environ.get("SIMGATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
)
TABLES = {"agents", "orders", "blobs", "sims", "audit_log", "webhook_deliveries"}


def _libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def admin() -> Iterator[object]:
    """An autocommit connection to the server's ``postgres`` database."""
    where = SERVER_URL.render_as_string(hide_password=True)
    try:
        conn = psycopg.connect(
            _libpq(SERVER_URL.set(database="postgres")), autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {where}; CI starts it in .ci/run ({exc})")
    with conn:
        yield conn


@pytest.fixture
def pg_url(admin: psycopg.Connection) -> Iterator[str]:
    name = "simgate_test_" + secrets.token_hex(6)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = SERVER_URL.set(drivername="postgresql+psycopg", database=name)
    try:
        rendered = url.render_as_string(hide_password=False)
        upgrade(rendered)
        yield rendered
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    eng = make_engine(pg_url)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _append(factory: sessionmaker[Session], n: int, subject: str = "ord_1") -> None:
    for i in range(n):
        audit.append_now(factory, kind="test.event", subject=subject, actor="t", payload={"i": i})


def _verify(factory: sessionmaker[Session]) -> audit.VerifyResult:
    with factory() as session:
        return audit.verify(session)


def _drop_trigger(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(conn.dialect.get_table_names(conn))
    assert diff == []
    assert tables >= TABLES


def test_upgrade_is_idempotent(pg_url: str, engine: Engine) -> None:
    upgrade(pg_url)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == _head()
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
        triggers = set(
            conn.scalars(
                text(
                    "SELECT tgname FROM pg_trigger "
                    "WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal"
                )
            )
        )
    assert triggers == {"audit_log_append_only", "audit_log_no_truncate"}


def test_audit_append_and_verify(factory: sessionmaker[Session]) -> None:
    assert _verify(factory).ok
    _append(factory, 5)
    result = _verify(factory)
    assert (result.ok, result.entries, result.first_bad_seq) == (True, 5, None)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_log",
    ],
)
def test_audit_log_is_append_only(
    factory: sessionmaker[Session], engine: Engine, statement: str
) -> None:
    _append(factory, 3)
    with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    assert _verify(factory).entries == 3


def test_audit_log_refuses_truncate(factory: sessionmaker[Session], engine: Engine) -> None:
    _append(factory, 3)
    with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_log"))


def test_audit_tampering_detected_without_the_trigger(
    factory: sessionmaker[Session], engine: Engine
) -> None:
    _append(factory, 6)
    _drop_trigger(engine)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_log SET payload = CAST(:p AS json) WHERE seq = 5"), {"p": '{"i": 9}'}
        )
    assert (_verify(factory).ok, _verify(factory).first_bad_seq) == (False, 5)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    result = _verify(factory)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    with engine.begin() as conn:  # fill the gap with entry 4 moved down, then swap
        conn.execute(text("UPDATE audit_log SET seq = 3 WHERE seq = 4"))
    assert (_verify(factory).ok, _verify(factory).first_bad_seq) == (False, 3)


def test_audit_swapped_entries_detected(factory: sessionmaker[Session], engine: Engine) -> None:
    _append(factory, 5)
    _drop_trigger(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET seq = -2 WHERE seq = 2"))
        conn.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 4"))
        conn.execute(text("UPDATE audit_log SET seq = 4 WHERE seq = -2"))
    result = _verify(factory)
    assert (result.ok, result.first_bad_seq) == (False, 2)


def _race(pg_url: str, writers: int, each: int) -> list[BaseException]:
    """``writers`` threads with their own engines (as processes would have) append
    ``each`` entries at once."""
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def writer(name: str) -> None:
        own = make_engine(pg_url)
        try:
            start.wait()
            _append(sessionmaker(own, expire_on_commit=False), each, subject=name)
        except BaseException as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def _per_writer(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        rows = session.execute(
            select(AuditEntry.subject, func.count()).group_by(AuditEntry.subject)
        ).all()
    return dict(rows)


def test_audit_concurrent_appends(pg_url: str, factory: sessionmaker[Session]) -> None:
    assert _race(pg_url, writers=2, each=50) == []
    result = _verify(factory)
    assert result.ok
    assert result.entries == 100
    assert _per_writer(factory) == {"w0": 50, "w1": 50}


def test_audit_many_concurrent_writers(pg_url: str, factory: sessionmaker[Session]) -> None:
    assert _race(pg_url, writers=8, each=25) == []
    result = _verify(factory)
    assert result.ok
    assert result.entries == 200
    assert _per_writer(factory) == {f"w{i}": 25 for i in range(8)}


def _head() -> str:
    """The newest migration's revision (the schema upgrade() must reach)."""
    from alembic.script import ScriptDirectory

    from services.storage.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head
