"""The face index across orders (R8): sealed vectors, the HNSW index with its watermark,
gaps and snapshot, and linking real faces from the committed fixtures on SQLite."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from services import face_index
from services.agents import create_agent
from services.config import Settings
from services.domain.states import OrderStatus
from services.face_index import FaceIndex, index_and_link, open_vector, seal_vector
from services.storage.blobs import BlobStore, seal_text
from services.storage.db import session_factory, upgrade
from services.storage.models import Blob, FaceLink, FaceVector, Order
from services.workers import pipeline
from tests.conftest import FIXTURES

KEY = bytes(range(32))
Vec = npt.NDArray[np.float32]


def _settings(tmp_path: Path) -> Settings:
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=tmp_path, env="test", lookup_url="http://127.0.0.1:9")
    upgrade(settings.resolved_database_url)
    return settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return _settings(tmp_path)


@pytest.fixture
def sessions(settings: Settings) -> sessionmaker[Session]:
    return session_factory(settings.resolved_database_url)


def _hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _orders(
    sessions: sessionmaker[Session],
    settings: Settings,
    id_hashes: dict[str, str | None],
    status: str = OrderStatus.CHECKING,
) -> None:
    with sessions() as session, session.begin():
        agent = session.scalars(select(Order.agent_id).limit(1)).first()
        if agent is None:
            agent = create_agent(session, "shop")[0].id
        for order_id, h in id_hashes.items():
            declared = json.dumps({"name": "张三", "id_number": "11010519491231002X"})
            session.add(
                Order(
                    id=order_id,
                    agent_id=agent,
                    request_hash="x",
                    msisdn="1" + hashlib.sha256(order_id.encode()).hexdigest()[:10],
                    province="11",
                    delivery="door_check",
                    declared_enc=seal_text(settings.blob_key_bytes, declared, order_id),
                    declared_number_masked="110***********002X",
                    status=status,
                    id_hash=h,
                )
            )


def _rows(
    sessions: sessionmaker[Session],
    vectors: dict[str, Vec],
    seqs: dict[str, int] | None = None,
    *,
    id_hash: str | None = None,
    key: bytes = KEY,
) -> None:
    """Face rows written straight to the table (as another worker would)."""
    with sessions() as session, session.begin():
        for order_id, v in vectors.items():
            session.add(
                FaceVector(
                    seq=(seqs or {}).get(order_id),
                    order_id=order_id,
                    agent_id="agt_x",
                    id_hash=id_hash or _hash(order_id),
                    vector_enc=seal_vector(key, order_id, v),
                )
            )


def _clustered(n: int, seed: int = 3) -> Vec:
    """dlib-like: people are tight clusters (~0.3 apart) around centres ~1 apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.09, (max(1, n // 4), 128))
    own = centres[rng.integers(0, len(centres), n)]
    return np.asarray(own + rng.normal(0, 0.025, (n, 128)), dtype=np.float32)


def _ids(n: int) -> list[str]:
    return [f"ord_{i:05d}" for i in range(n)]


# --- sealing ----------------------------------------------------------------------------


def test_vector_is_sealed_to_its_order_and_opens_exactly() -> None:
    v = _clustered(1)[0]
    sealed = seal_vector(KEY, "ord_a", v)
    assert np.array_equal(open_vector(KEY, "ord_a", sealed), v)
    assert sealed != seal_vector(KEY, "ord_a", v)  # fresh nonce each time
    with pytest.raises(InvalidTag):
        open_vector(KEY, "ord_b", sealed)  # copied onto another order: refused
    with pytest.raises(InvalidTag):
        open_vector(bytes(32), "ord_a", sealed)
    with pytest.raises(ValueError, match="128"):
        seal_vector(KEY, "ord_a", np.zeros(64))


# --- the index ----------------------------------------------------------------------


@pytest.fixture
def face_db(tmp_path: Path, sessions: sessionmaker[Session], settings: Settings) -> None:
    _orders(sessions, settings, {o: _hash(o) for o in _ids(300)})


def test_catch_up_reads_only_rows_above_the_watermark(
    face_db: None, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, vecs = _ids(300), _clustered(300)
    _rows(sessions, dict(zip(ids[:120], vecs[:120], strict=True)))
    index = FaceIndex()
    opened: list[str] = []
    real_open = face_index.open_vector

    def counting_open(key: bytes, order_id: str, sealed: str) -> Vec:
        opened.append(order_id)
        return real_open(key, order_id, sealed)

    monkeypatch.setattr(face_index, "open_vector", counting_open)
    with sessions() as session:
        assert index.catch_up(session, KEY, batch=50) == 120  # three batches
        assert index.catch_up(session, KEY) == 0
    _rows(sessions, dict(zip(ids[120:130], vecs[120:130], strict=True)))
    with sessions() as session:
        assert index.catch_up(session, KEY) == 10
    assert opened == ids[:130]  # each row decrypted once, in seq order
    assert len(index) == 130
    assert index.last_seq == 130
    assert index.order_ids == ids[:130]


def test_search_finds_the_nearest(face_db: None, sessions: sessionmaker[Session]) -> None:
    ids, vecs = _ids(300), _clustered(300)
    _rows(sessions, dict(zip(ids, vecs, strict=True)))
    index = FaceIndex()
    with sessions() as session:
        index.catch_up(session, KEY)
    rng = np.random.default_rng(5)
    for i in (0, 17, 150, 299):
        q = vecs[i] + rng.normal(0, 0.002, 128).astype(np.float32)
        found = index.search(q, 5)
        exact = np.sqrt(((vecs - q) ** 2).sum(axis=1))
        assert found[0].order_id == ids[i]
        assert found[0].distance == pytest.approx(float(exact[i]), abs=1e-4)
        assert np.array_equal(found[0].vector, vecs[i])
        assert [c.distance for c in found] == sorted(c.distance for c in found)
    assert len(index.search(vecs[0], face_index.K)) == face_index.K
    assert len(index.search(vecs[0], 1000)) == 300


def test_a_seq_committed_late_is_picked_up_as_a_gap(
    face_db: None, sessions: sessionmaker[Session]
) -> None:
    # PostgreSQL: seq 2 was taken first but its transaction commits after seq 3's.
    ids, vecs = _ids(3), _clustered(3)
    _rows(sessions, {ids[0]: vecs[0], ids[2]: vecs[2]}, {ids[0]: 1, ids[2]: 3})
    index = FaceIndex()
    with sessions() as session:
        assert index.catch_up(session, KEY) == 2
    assert set(index.gaps) == {2}
    assert index.last_seq == 3
    _rows(sessions, {ids[1]: vecs[1]}, {ids[1]: 2})
    with sessions() as session:
        assert index.catch_up(session, KEY) == 1
    assert not index.gaps
    assert sorted(index.order_ids) == ids


def test_snapshot_restores_then_catches_up(
    face_db: None, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    ids, vecs = _ids(300), _clustered(300)
    _rows(sessions, dict(zip(ids[:250], vecs[:250], strict=True)))
    index = FaceIndex()
    with sessions() as session:
        index.catch_up(session, KEY)
    blobs = BlobStore(tmp_path / "blobs", KEY)
    index.save(blobs)
    on_disk = blobs.path(face_index.SNAPSHOT_BLOB).read_bytes()
    assert ids[0].encode() not in on_disk  # sealed
    assert vecs[0].tobytes() not in on_disk

    _rows(sessions, dict(zip(ids[250:], vecs[250:], strict=True)))
    with sessions() as session:
        restored = FaceIndex.restore(blobs, session)
        assert len(restored) == 250
        assert restored.last_seq == 250
        assert restored.catch_up(session, KEY) == 50  # only the rows after the snapshot
    assert restored.order_ids == ids
    for i in (3, 249, 280):
        assert restored.search(vecs[i], 1)[0].order_id == ids[i]
    # Another database (reset, other data dir) does not take this snapshot.
    other = _settings(tmp_path / "other")
    with session_factory(other.resolved_database_url)() as session:
        assert len(FaceIndex.restore(blobs, session)) == 0
        assert len(FaceIndex.restore(BlobStore(tmp_path / "none", KEY), session)) == 0


# --- linking real faces -------------------------------------------------------------


@pytest.fixture(scope="module")
def faces() -> dict[str, Vec]:
    """Live faces of committed fixture photos: three photos of Alex Lacamoire (the good
    and lookup_name_mismatch selfies show the same photo, composed with other cards),
    Lin-Manuel Miranda, Joe Biden (four_cards selfie)."""
    from vision.face import largest_face
    from vision.io import load_image

    paths = {
        "alex_good": FIXTURES / "orders" / "good_selfie.jpg",
        "alex_lookup": FIXTURES / "orders" / "lookup_name_mismatch_selfie.jpg",
        "alex_ref": FIXTURES / "references" / "Alex_Lacamoire.jpg",
        "miranda": FIXTURES / "references" / "Lin-Manuel_Miranda.jpg",
        "biden": FIXTURES / "orders" / "four_cards_selfie.jpg",
    }
    out = {}
    for name, path in paths.items():
        found = largest_face(load_image(path).pixels)
        assert found is not None, path
        out[name] = found.encoding.astype(np.float32)
    return out


def _pairs(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as session:
        links = session.scalars(select(FaceLink).order_by(FaceLink.id)).all()
    return [(x.order_id, x.other_order_id) for x in links]


@pytest.mark.slow
def test_same_face_under_two_id_numbers_is_linked_once(
    faces: dict[str, Vec], sessions: sessionmaker[Session], settings: Settings
) -> None:
    _orders(
        sessions,
        settings,
        {
            "ord_a": _hash("id-1"),
            "ord_b": _hash("id-2"),  # same person as ord_a, another ID number
            "ord_c": _hash("id-1"),  # same person, same ID number: a repeat buyer
            "ord_d": _hash("id-3"),  # someone else
            "ord_e": None,  # number unreadable: no ID to differ from
        },
    )
    assert index_and_link(sessions, settings, "ord_a", faces["alex_good"]) == []
    links = index_and_link(sessions, settings, "ord_b", faces["alex_ref"])
    assert [(x.order_id, x.other_order_id) for x in links] == [("ord_a", "ord_b")]
    assert 0.2 < links[0].distance < 0.5  # two photos of one man (raw dlib distance)
    assert [
        x.other_order_id for x in index_and_link(sessions, settings, "ord_c", faces["alex_lookup"])
    ] == ["ord_c"]
    assert index_and_link(sessions, settings, "ord_d", faces["miranda"]) == []
    assert index_and_link(sessions, settings, "ord_e", faces["alex_good"]) == []
    assert _pairs(sessions) == [("ord_a", "ord_b"), ("ord_b", "ord_c")]

    # Replayed steps (a killed worker, the sweeper) add nothing.
    for order_id, face in (("ord_a", "alex_good"), ("ord_b", "alex_ref"), ("ord_c", "alex_lookup")):
        index_and_link(sessions, settings, order_id, faces[face])
    assert len(index_and_link(sessions, settings, "ord_b", faces["alex_ref"])) == 2
    assert _pairs(sessions) == [("ord_a", "ord_b"), ("ord_b", "ord_c")]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(FaceVector)) == 5
        row = session.scalars(select(FaceVector).where(FaceVector.order_id == "ord_b")).one()
    sealed = open_vector(settings.blob_key_bytes, "ord_b", row.vector_enc)
    assert np.array_equal(sealed, faces["alex_ref"])


@pytest.mark.slow
def test_many_orders_of_one_face_do_not_hide_another_id_number(
    faces: dict[str, Vec], sessions: sessionmaker[Session], settings: Settings
) -> None:
    # A repeat buyer's 30 orders with the very same selfie (distance 0) fill the 20
    # nearest; the same man's order under another number sits just behind them.
    repeat = [f"ord_r{i:02d}" for i in range(30)]
    _orders(sessions, settings, {o: _hash("id-1") for o in [*repeat, "ord_new"]})
    _orders(sessions, settings, {"ord_other": _hash("id-2")})
    key = settings.blob_key_bytes
    _rows(sessions, {"ord_other": faces["alex_ref"]}, id_hash=_hash("id-2"), key=key)
    _rows(sessions, dict.fromkeys(repeat, faces["alex_good"]), id_hash=_hash("id-1"), key=key)
    links = index_and_link(sessions, settings, "ord_new", faces["alex_good"])
    assert [(x.order_id, x.other_order_id) for x in links] == [("ord_new", "ord_other")]
    index = face_index.process_index(sessions, settings)
    nearest = {c.order_id for c in index.search(faces["alex_good"], face_index.K)}
    assert "ord_other" not in nearest  # found only because k grew


@pytest.mark.slow
def test_only_a_calibrated_match_links_not_the_raw_pre_cut(
    faces: dict[str, Vec], sessions: sessionmaker[Session], settings: Settings
) -> None:
    from vision.face import compare

    # A face between Alex and Miranda: under the raw pre-cut from Alex, yet not the
    # same person by the calibrated score.
    a, m = faces["alex_good"].astype(np.float64), faces["miranda"].astype(np.float64)
    between = None
    for t in np.linspace(0.2, 0.8, 61):
        v = a + t * (m - a)
        if np.linalg.norm(v - a) < face_index.PRE_CUT and compare(a, v).verdict != "match":
            between = v
            break
    assert between is not None
    _orders(sessions, settings, {"ord_a": _hash("id-1"), "ord_x": _hash("id-2")})
    index_and_link(sessions, settings, "ord_a", faces["alex_good"])
    assert index_and_link(sessions, settings, "ord_x", between) == []
    assert _pairs(sessions) == []


@pytest.mark.slow
def test_pipeline_records_the_links_without_changing_the_decision(
    faces: dict[str, Vec], tmp_path: Path
) -> None:
    ctx = pipeline.Context(_settings(tmp_path))
    key = ctx.settings.blob_key_bytes
    _orders(
        ctx.sessions,
        ctx.settings,
        {"ord_a": _hash("id-1"), "ord_b": _hash("id-2"), "ord_c": _hash("id-3")},
    )
    encodings = {"ord_a": "alex_good", "ord_b": "alex_lookup", "ord_c": "biden"}
    for order_id, name in encodings.items():
        # The reading as verify_images stores it; no number was read, so no lookup.
        full = {"document": None, "codes": [], "live_face_encoding": faces[name].tolist()}
        blob_id = pipeline.blob_id_for(order_id, pipeline.EVIDENCE_ROLE)
        data = json.dumps(full).encode()
        ctx.blobs.put(blob_id, data)
        with ctx.sessions() as session, session.begin():
            session.add(
                Blob(
                    id=blob_id,
                    order_id=order_id,
                    role=pipeline.EVIDENCE_ROLE,
                    content_type="application/json",
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
        assert pipeline.check_and_decide(ctx, order_id).decided
        assert not pipeline.check_and_decide(ctx, order_id).decided  # replay: no-op
    with ctx.sessions() as session:
        orders = {o.id: o for o in session.scalars(select(Order))}
    assert orders["ord_b"].evidence["face_links"] == 1
    assert "face_links" not in orders["ord_a"].evidence  # nothing before it
    assert "face_links" not in orders["ord_c"].evidence
    assert {(o.outcome, json.dumps(o.reasons)) for o in orders.values()} == {
        (orders["ord_c"].outcome, json.dumps(orders["ord_c"].reasons))
    }
    assert _pairs(ctx.sessions) == [("ord_a", "ord_b")]
    with ctx.sessions() as session:
        rows = session.scalars(select(FaceVector)).all()
    assert {r.order_id for r in rows} == set(encodings)
    for r in rows:  # sealed with the service's key, bound to the order
        assert np.array_equal(
            open_vector(key, r.order_id, r.vector_enc), faces[encodings[r.order_id]]
        )


def test_a_failing_index_never_holds_up_the_decision(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = pipeline.Context(_settings(tmp_path))
    assert pipeline._link_faces(ctx, "ord_missing", [0.1] * 128) == 0
    assert "face index failed" in caplog.text
    assert pipeline._link_faces(ctx, "ord_missing", None) == 0


def test_bench_face_index_prints_the_table() -> None:
    from click.testing import CliRunner

    from services.bench.face_index import bench_face_index

    result = CliRunner().invoke(bench_face_index, ["--sizes", "1000", "--queries", "20"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.strip().startswith("1200"))
    cells = row.split()
    graph_bytes, exact_person, person = int(cells[-2]), float(cells[-3]), float(cells[-4])
    assert exact_person == 1.0  # the generator's people are each other's nearest
    assert person >= 0.95
    assert graph_bytes > 512  # the float32 vector itself, plus its links
