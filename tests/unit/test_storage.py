"""Storage on SQLite: migrations, the encrypted blob store, the audit chain, the inventory.

PostgreSQL runs the same migrations and audit checks in tests/storage/test_postgres.py.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.exceptions import InvalidTag
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from services.carrier import inventory
from services.domain.states import SimStatus
from services.storage import audit
from services.storage.blobs import MAGIC, BlobError, BlobStore, new_blob_id, open_text, seal_text
from services.storage.db import make_engine, upgrade
from services.storage.models import AuditEntry, Base, Sim

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
TABLES = {"agents", "orders", "blobs", "sims", "audit_log", "webhook_deliveries"}


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'simgate.db'}"
    upgrade(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Engine:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", KEY)


def _append(factory: sessionmaker[Session], n: int, subject: str = "ord_1") -> None:
    for i in range(n):
        audit.append_now(
            factory, kind="test.event", subject=subject, actor="tester", payload={"i": i}
        )


def _verify(factory: sessionmaker[Session]) -> audit.VerifyResult:
    with factory() as session:
        return audit.verify(session)


def _drop_triggers(engine: Engine) -> None:
    """What a privileged attacker can do: the hash chain must still tell."""
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("DROP TRIGGER audit_log_no_delete"))


# --- migrations -----------------------------------------------------------------------


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(conn.dialect.get_table_names(conn))
    assert diff == []
    assert tables >= TABLES


def test_upgrade_is_idempotent(db_url: str, engine: Engine) -> None:
    upgrade(db_url)
    upgrade(db_url)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == _head()
        triggers = set(conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")))
    assert triggers == {"audit_log_no_update", "audit_log_no_delete"}


def test_upgrade_leaves_sqlite_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    upgrade(f"sqlite:///{path}")
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()


def test_upgrade_creates_the_data_dir(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'simgate.db'}"
    eng = make_engine(url)  # creates the parent folders
    eng.dispose()
    upgrade(url)
    assert (tmp_path / "deep" / "er" / "simgate.db").is_file()


# --- blob store -----------------------------------------------------------------------


def test_blob_round_trip_and_ciphertext_on_disk(store: BlobStore) -> None:
    data = b"\xff\xd8\xff\xe0 plaintext ID card 110105199001011234 " * 50
    blob_id = new_blob_id()
    path = store.put(blob_id, data)
    assert path.is_file()
    assert path.parent.parent == store.root
    assert store.get(blob_id) == data
    raw = path.read_bytes()
    assert raw.startswith(MAGIC)
    assert b"plaintext" not in raw
    assert b"110105199001011234" not in raw
    assert not raw[len(MAGIC) :].startswith(b"\xff\xd8")
    store.delete(blob_id)
    assert not path.exists()
    store.delete(blob_id)  # deleting twice is fine


def test_blob_same_data_twice_gives_different_ciphertext(store: BlobStore) -> None:
    a, b = new_blob_id(), new_blob_id()
    assert store.put(a, b"same").read_bytes()[4:] != store.put(b, b"same").read_bytes()[4:]


def test_blob_wrong_key(store: BlobStore, tmp_path: Path) -> None:
    blob_id = new_blob_id()
    store.put(blob_id, b"secret")
    with pytest.raises(BlobError, match="does not decrypt"):
        BlobStore(tmp_path / "blobs", OTHER_KEY).get(blob_id)


@pytest.mark.parametrize("where", [0, 5, 16, 40, -1])
def test_blob_tampered_byte(store: BlobStore, where: int) -> None:
    blob_id = new_blob_id()
    path = store.put(blob_id, b"secret data " * 4)
    raw = bytearray(path.read_bytes())
    raw[where] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(BlobError):
        store.get(blob_id)


def test_blob_truncated_and_missing(store: BlobStore) -> None:
    blob_id = new_blob_id()
    path = store.put(blob_id, b"secret data")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(BlobError, match="not a simgate blob"):
        store.get(blob_id)
    with pytest.raises(BlobError, match="missing"):
        store.get(new_blob_id())


def test_blob_copied_under_another_id(store: BlobStore) -> None:
    a, b = new_blob_id(), new_blob_id()
    src = store.put(a, b"the buyer's selfie")
    dst = store.path(b)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    with pytest.raises(BlobError, match="does not decrypt"):
        store.get(b)


def test_blob_write_is_atomic(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [new_blob_id() for _ in range(5)]
    for blob_id in ids:
        store.put(blob_id, os.urandom(1000))
    files = [p for p in store.root.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted(ids)  # no .tmp- left over

    # A crash before the rename: no file under the real name, no temporary file.
    def boom(_fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    failing = new_blob_id()
    with pytest.raises(OSError, match="disk full"):
        store.put(failing, b"half")
    monkeypatch.undo()
    assert not store.path(failing).exists()
    assert list(store.root.rglob(".tmp-*")) == []


def test_blob_overwrite_replaces(store: BlobStore) -> None:
    blob_id = new_blob_id()
    store.put(blob_id, b"one")
    store.put(blob_id, b"two")
    assert store.get(blob_id) == b"two"


@pytest.mark.parametrize(
    "bad_id",
    ["", "abc", "blb_", "blb_../../etc/passwd", "blb_ab/cd", "blb_ab\\cd", "../blb_ab", "blb_a b"],
)
def test_blob_bad_ids_refused(store: BlobStore, bad_id: str) -> None:
    with pytest.raises(BlobError, match="bad blob id"):
        store.put(bad_id, b"x")
    with pytest.raises(BlobError, match="bad blob id"):
        store.get(bad_id)
    with pytest.raises(BlobError, match="bad blob id"):
        store.delete(bad_id)
    assert not store.root.exists() or not any(store.root.rglob("*"))


def test_blob_key_length_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        BlobStore(tmp_path, b"short")


def test_seal_open_text_round_trip() -> None:
    secret = '{"name": "姚亚金", "id_number": "53232819960626246X"}'
    sealed = seal_text(KEY, secret, "ord_1")
    assert "姚亚金" not in sealed
    assert "53232819960626246X" not in sealed
    assert seal_text(KEY, secret, "ord_1") != sealed  # fresh nonce
    assert open_text(KEY, sealed, "ord_1") == secret
    with pytest.raises(InvalidTag):
        open_text(KEY, sealed, "ord_2")  # bound to its row
    with pytest.raises(InvalidTag):
        open_text(OTHER_KEY, sealed, "ord_1")


# --- audit log ------------------------------------------------------------------------


def test_audit_append_and_verify(factory: sessionmaker[Session]) -> None:
    assert _verify(factory) == audit.VerifyResult(True, 0, None, None)
    _append(factory, 5)
    result = _verify(factory)
    assert result.ok
    assert result.entries == 5
    assert result.first_bad_seq is None
    with factory() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))


def test_audit_append_in_callers_transaction_rolls_back(factory: sessionmaker[Session]) -> None:
    def failing_order() -> None:
        with factory() as session, session.begin():
            audit.append(session, kind="k", subject="s", actor="a", payload={})
            raise RuntimeError("the order insert failed")

    with pytest.raises(RuntimeError):
        failing_order()
    assert _verify(factory).entries == 0


def test_audit_payload_round_trips_non_json_types(factory: sessionmaker[Session]) -> None:
    import datetime as dt

    audit.append_now(
        factory, kind="k", subject="s", actor="a", payload={"when": dt.date(2026, 1, 2), "n": 1}
    )
    assert _verify(factory).ok


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
    assert _verify(factory).ok
    assert _verify(factory).entries == 3


def test_audit_tampered_payload_detected(factory: sessionmaker[Session], engine: Engine) -> None:
    _append(factory, 5)
    _drop_triggers(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET payload = '{\"i\": 99}' WHERE seq = 3"))
    result = _verify(factory)
    assert not result.ok
    assert result.first_bad_seq == 3
    assert result.problem == "content does not match its hash"


def test_audit_rehashed_entry_breaks_the_next_link(
    factory: sessionmaker[Session], engine: Engine
) -> None:
    """An attacker who recomputes the changed entry's own hash still breaks entry 4."""
    _append(factory, 5)
    _drop_triggers(engine)
    with factory() as session:
        e = session.get(AuditEntry, 3)
        assert e is not None
        payload = {"i": 99}
        new_hash = audit.entry_hash(
            e.prev_hash, audit._canonical(e.seq, e.at, e.kind, e.subject, e.actor, payload)
        )
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_log SET payload = '{\"i\": 99}', hash = :h WHERE seq = 3"),
            {"h": new_hash},
        )
    result = _verify(factory)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert result.problem == "link to the previous entry is broken"


def test_audit_deleted_middle_entry_detected(
    factory: sessionmaker[Session], engine: Engine
) -> None:
    _append(factory, 5)
    _drop_triggers(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    result = _verify(factory)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert result.problem is not None
    assert "expected seq 3" in result.problem


def test_audit_swapped_entries_detected(factory: sessionmaker[Session], engine: Engine) -> None:
    _append(factory, 5)
    _drop_triggers(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET seq = -2 WHERE seq = 2"))
        conn.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 4"))
        conn.execute(text("UPDATE audit_log SET seq = 4 WHERE seq = -2"))
    result = _verify(factory)
    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_audit_concurrent_appends(db_url: str, factory: sessionmaker[Session]) -> None:
    """Two writers, each with its own engine (as two processes would have)."""
    with factory() as session:
        session.execute(select(1))  # upgrade() left it in WAL mode
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(name: str) -> None:
        own = make_engine(db_url)
        try:
            start.wait()
            _append(sessionmaker(own, expire_on_commit=False), 50, subject=name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    result = _verify(factory)
    assert result.ok
    assert result.entries == 100
    with factory() as session:
        per_writer = dict(
            session.execute(
                select(AuditEntry.subject, func.count()).group_by(AuditEntry.subject)
            ).all()
        )
    assert per_writer == {"w0": 50, "w1": 50}


# --- inventory ------------------------------------------------------------------------


def test_inventory(factory: sessionmaker[Session]) -> None:
    with factory() as session, session.begin():
        added = inventory.seed_inventory(session, per_province=10)
    assert added == 40
    with factory() as session, session.begin():
        assert inventory.seed_inventory(session, per_province=10) == 0  # idempotent
        counts = dict(
            session.execute(select(Sim.province, func.count()).group_by(Sim.province)).all()
        )
        assert counts == dict.fromkeys(inventory.DEMO_PROVINCES, 10)
        numbers = list(session.scalars(select(Sim.msisdn).where(Sim.province == "44")))
    a, b, c = numbers[:3]
    with factory() as session:
        sim = inventory.get_sim(session, a)
        assert sim is not None
        assert sim.iccid == inventory.iccid_for(a)
        assert len(sim.iccid) == 20
        assert inventory.get_sim(session, "19999999999") is None

    with factory() as session, session.begin():
        assert inventory.reserve(session, a, "ord_a", "agt_1")
        assert not inventory.reserve(session, a, "ord_x", "agt_2")  # taken
        assert inventory.reserve(session, b, "ord_b", "agt_1")
        assert inventory.reserve(session, c, "ord_c", "agt_2")
    with factory() as session:
        sim = inventory.get_sim(session, a)
        assert sim is not None
        assert (sim.status, sim.order_id, sim.agent_id) == ("reserved", "ord_a", "agt_1")

    with factory() as session, session.begin():
        assert inventory.transition(
            session, "ord_a", SimStatus.AWAITING_HANDOVER, holder_id_hash="h1"
        )
        # Replayed: nothing changes twice.
        assert not inventory.transition(
            session, "ord_a", SimStatus.AWAITING_HANDOVER, holder_id_hash="h1"
        )
        assert inventory.transition(
            session, "ord_a", SimStatus.ACTIVE, expected=SimStatus.AWAITING_HANDOVER
        )
        assert inventory.transition(
            session, "ord_b", SimStatus.SHIPPED_INACTIVE, holder_id_hash="h1"
        )
        assert inventory.transition(session, "ord_c", SimStatus.AVAILABLE)  # released
    with factory() as session:
        released = inventory.get_sim(session, c)
        assert released is not None
        assert (released.status, released.order_id, released.agent_id) == ("available", None, None)
        assert inventory.count_cards(session, "h1", "44", "agt_1") == inventory.CardCount(2, 2)
        assert inventory.count_cards(session, "h1", "44", "agt_2") == inventory.CardCount(2, 0)
        assert inventory.count_cards(session, "h1", "11", "agt_1") == inventory.CardCount(0, 2)
        assert inventory.count_cards(session, "h2", "44", "agt_1") == inventory.CardCount(0, 0)

    # A released number can be taken again.
    with factory() as session, session.begin():
        assert inventory.reserve(session, c, "ord_c2", "agt_2")


def test_inventory_issue_existing(factory: sessionmaker[Session]) -> None:
    with factory() as session, session.begin():
        inventory.add_sims(session, "51", [f"1350000000{i}" for i in range(6)])
        issued = inventory.issue_existing(session, "h9", "51", 4, agent_id="agt_x")
    assert len(set(issued)) == 4
    with factory() as session:
        assert inventory.count_cards(session, "h9", "51", "agt_x") == inventory.CardCount(4, 4)
        assert inventory.count_cards(session, "h9", "51", "agt_y") == inventory.CardCount(4, 0)
        statuses = {s.msisdn: s.status for s in session.scalars(select(Sim))}
    assert all(statuses[m] == "active" for m in issued)
    with factory() as session, session.begin(), pytest.raises(RuntimeError, match="no available"):
        inventory.issue_existing(session, "h9", "51", 3)


def _head() -> str:
    """The newest migration's revision (the schema upgrade() must reach)."""
    from alembic.script import ScriptDirectory

    from services.storage.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head
