"""The face index across orders (R8): the same face under different ID numbers.

Every order's live selfie face (the raw 128-d dlib embedding) is stored sealed
(AES-GCM, like every biometric) in ``face_vectors``; the worker keeps an in-memory
**HNSW graph** (faiss ``IndexHNSWFlat``, M=48, float32, euclidean) built from those rows.
A new face asks the graph for its 20 nearest earlier faces (approximate k-NN, about
log n hops), confirms those under a raw pre-cut with the calibrated comparison
(:func:`vision.face.compare`, use ``default``) and, where the two orders' ID hashes
differ, records a :class:`FaceLink`. Orders are never deleted, so the graph only grows
(HNSW adds incrementally; it has no cheap delete, and needs none).

How it grows (``simgate bench face-index``, dlib-shaped synthetic faces; docs/service.md
has the table): per face ~910 B of graph (512 B vector + level-0 links, 2M int32) and
~240 B of Python ids (seq, order id, ID hash), so ~1.1 KiB: 1 M faces ~ 1.1 GiB in
every worker process that links faces. A query takes about a millisecond and grows with
log n; an exact scan grows linearly (~6 ms at 200k faces, ~30 ms at 1 M). M=48 rather
than 32: at 200k faces M=32 missed ~1% of a person's nearest other photos, M=48 0.05%.
Beyond ~10 M faces one process per machine should own the graph (or a vector
database); the rows and the linking rule stay as they are.

A new process restores the last encrypted snapshot (``faiss.serialize_index`` + the
watermark and ids, in the blob store) and then *catches up*: only rows with ``seq``
above the watermark are read and decrypted, in batches. The snapshot is rewritten once
``max(SNAPSHOT_EVERY, 10% of the index)`` faces were added since the last one, so the
write cost per face stays constant and a restart re-decrypts at most ~10%.

On PostgreSQL a sequence value is taken before its transaction commits, so a lower
``seq`` may become visible after a higher one: missing values below the watermark are
remembered as *gaps* and asked for again for :data:`GAP_TTL_S` (SQLite serialises
writers, so it has none).

Only the worker imports this module (it imports vision); the API reads ``face_links``.
"""

from __future__ import annotations

import base64
import json
import logging
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import faiss
import numpy as np
import numpy.typing as npt
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.config import Settings
from services.storage.blobs import BlobError, BlobStore, open_text, seal_text
from services.storage.models import FaceLink, FaceVector, Order
from vision import face

log = logging.getLogger(__name__)

DIM: Final = 128
HNSW_M: Final = 48
EF_CONSTRUCTION: Final = 64
EF_SEARCH: Final = 64
# Nearest faces asked for first; doubled while even the farthest of them is the same
# person (one face under many orders must not hide another ID number), up to K_MAX.
K: Final = 20
K_MAX: Final = 320
# Raw dlib distance above which no pair can be a calibrated match, to skip comparing
# obviously different faces: a match needs a normalised distance <= -3.41, i.e. a raw
# one under each face's cohort mean - 3.41 std, which for the 400 real cohort faces is
# 0.57 (median), 0.64 (99th percentile), 0.685 (max).
PRE_CUT: Final = 0.7
SNAPSHOT_EVERY: Final = 500
SNAPSHOT_BLOB: Final = "blb_faceindexsnapshot"
BATCH: Final = 1000
GAP_TTL_S: Final = 600.0
MAX_GAP: Final = 1000  # a larger jump in seq is burned sequence values, not in flight
_MAGIC: Final = b"SGFI1"

Vector = npt.NDArray[np.float32]


def _vector(values: Any) -> Vector:
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    if v.shape != (DIM,) or not np.all(np.isfinite(v)):
        raise ValueError(f"expected a finite ({DIM},) face embedding, got shape {v.shape}")
    return v


def _context(order_id: str) -> str:
    return f"{order_id}/face"


def seal_vector(key: bytes, order_id: str, vector: Any) -> str:
    """Encrypt an embedding for ``face_vectors.vector_enc`` (bound to its order)."""
    raw = _vector(vector).astype("<f4").tobytes()
    return seal_text(key, base64.b64encode(raw).decode(), _context(order_id))


def open_vector(key: bytes, order_id: str, sealed: str) -> Vector:
    raw = base64.b64decode(open_text(key, sealed, _context(order_id)))
    return _vector(np.frombuffer(raw, dtype="<f4"))


@dataclass(frozen=True, slots=True)
class Candidate:
    seq: int
    order_id: str
    id_hash: str | None
    distance: float  # raw euclidean
    vector: Vector


def _new_graph() -> Any:
    index = faiss.IndexHNSWFlat(DIM, HNSW_M)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    return index


class FaceIndex:
    """HNSW graph + what each position is (seq, order id, id hash) + the watermark."""

    def __init__(self) -> None:
        self._graph = _new_graph()
        self.seqs: list[int] = []
        self.order_ids: list[str] = []
        self.id_hashes: list[str | None] = []
        self.last_seq = 0
        self.gaps: dict[int, float] = {}  # seq -> when first missed (unix time)
        self.added_since_snapshot = 0
        self._lock = threading.RLock()  # catch_up holds it around add

    def __len__(self) -> int:
        return len(self.seqs)

    def add(self, rows: Sequence[tuple[int, str, str | None, Vector]]) -> None:
        """Append ``(seq, order_id, id_hash, vector)`` rows (catch_up and the benchmark)."""
        if not rows:
            return
        with self._lock:
            self._graph.add(np.stack([r[3] for r in rows]))
            for seq, order_id, id_hash, _ in rows:
                self.seqs.append(seq)
                self.order_ids.append(order_id)
                self.id_hashes.append(id_hash)
            self.added_since_snapshot += len(rows)

    def _opened(
        self, key: bytes, rows: Sequence[FaceVector]
    ) -> list[tuple[int, str, str | None, Vector]]:
        out = []
        for r in rows:
            try:
                out.append(
                    (r.seq, r.order_id, r.id_hash, open_vector(key, r.order_id, r.vector_enc))
                )
            except Exception:  # one bad row must not stop the index: skipped, loudly
                log.exception("face vector seq %s (order %s) does not open", r.seq, r.order_id)
        return out

    def catch_up(self, session: Session, key: bytes, *, batch: int = BATCH) -> int:
        """Add the rows committed since the last call (``seq`` above the watermark, and
        the gaps below it); returns how many were added."""
        with self._lock:
            added = 0
            now = time.time()
            self.gaps = {s: t for s, t in self.gaps.items() if now - t < GAP_TTL_S}
            if self.gaps:
                rows = session.scalars(
                    select(FaceVector).where(FaceVector.seq.in_(sorted(self.gaps)))
                ).all()
                for r in rows:
                    self.gaps.pop(r.seq, None)
                opened = self._opened(key, rows)
                self.add(opened)
                added += len(opened)
            while True:
                rows = session.scalars(
                    select(FaceVector)
                    .where(FaceVector.seq > self.last_seq)
                    .order_by(FaceVector.seq)
                    .limit(batch)
                ).all()
                if not rows:
                    return added
                prev = self.last_seq
                for r in rows:
                    if 1 < r.seq - prev <= MAX_GAP:
                        self.gaps.update((s, now) for s in range(prev + 1, r.seq))
                    prev = r.seq
                opened = self._opened(key, rows)
                self.add(opened)
                added += len(opened)
                self.last_seq = rows[-1].seq
                if len(rows) < batch:
                    return added

    def nearest(self, vector: Any, k: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Positions and squared distances of the ``k`` nearest faces (the graph alone)."""
        q = _vector(vector)[None, :]
        with self._lock:
            k = min(k, len(self.seqs))
            if k <= 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            # Per call, not set on the shared graph; faiss's bundled stubs lack the class.
            params = faiss.SearchParametersHNSW(efSearch=max(EF_SEARCH, k))  # type: ignore[attr-defined]
            d2, ids = self._graph.search(q, k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep], d2[0][keep]

    def search(self, vector: Any, k: int) -> list[Candidate]:
        """The ``k`` nearest indexed faces, nearest first, raw euclidean distances."""
        with self._lock:
            ids, d2 = self.nearest(vector, k)
            return [
                Candidate(
                    seq=self.seqs[pos],
                    order_id=self.order_ids[pos],
                    id_hash=self.id_hashes[pos],
                    distance=float(np.sqrt(max(float(sq), 0.0))),
                    vector=np.asarray(self._graph.reconstruct(pos), dtype=np.float32),
                )
                for pos, sq in zip(ids.tolist(), d2.tolist(), strict=True)
            ]

    def graph_nbytes(self) -> int:
        """The HNSW graph with its vectors, as serialized (what it holds in memory)."""
        with self._lock:
            return int(faiss.serialize_index(self._graph).nbytes)

    # --- snapshot -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        with self._lock:
            meta = {
                "last_seq": self.last_seq,
                "gaps": {str(s): t for s, t in self.gaps.items()},
                "seqs": self.seqs,
                "order_ids": self.order_ids,
                "id_hashes": self.id_hashes,
            }
            graph = faiss.serialize_index(self._graph).tobytes()
        head = json.dumps(meta, separators=(",", ":")).encode()
        return _MAGIC + struct.pack("<Q", len(head)) + head + graph

    @classmethod
    def from_bytes(cls, data: bytes) -> FaceIndex:
        if not data.startswith(_MAGIC):
            raise ValueError("not a face index snapshot")
        (n,) = struct.unpack_from("<Q", data, len(_MAGIC))
        start = len(_MAGIC) + 8
        meta = json.loads(data[start : start + n])
        out = cls()
        out._graph = faiss.deserialize_index(np.frombuffer(data[start + n :], dtype=np.uint8))
        out.seqs = [int(s) for s in meta["seqs"]]
        out.order_ids = list(meta["order_ids"])
        out.id_hashes = list(meta["id_hashes"])
        out.last_seq = int(meta["last_seq"])
        out.gaps = {int(s): float(t) for s, t in meta["gaps"].items()}
        if out._graph.ntotal != len(out.seqs) or len(out.order_ids) != len(out.seqs):
            raise ValueError("face index snapshot is inconsistent")
        return out

    def save(self, blobs: BlobStore) -> None:
        blobs.put(SNAPSHOT_BLOB, self.to_bytes())
        self.added_since_snapshot = 0

    def snapshot_due(self) -> bool:
        return self.added_since_snapshot >= max(SNAPSHOT_EVERY, len(self) // 10)

    @classmethod
    def restore(cls, blobs: BlobStore, session: Session) -> FaceIndex:
        """The last snapshot if it belongs to this database, else an empty index."""
        try:
            index = cls.from_bytes(blobs.get(SNAPSHOT_BLOB))
        except BlobError:
            return cls()  # none yet (or written with another key): start from the rows
        except ValueError:
            log.warning("face index snapshot unreadable: rebuilding from the rows")
            return cls()
        if index.seqs:
            # A snapshot of another database (reset, restored) would link wrong orders.
            row = session.get(FaceVector, index.seqs[-1])
            if row is None or row.order_id != index.order_ids[-1]:
                log.warning("face index snapshot is not of this database: rebuilding")
                return cls()
        return index


_indexes: dict[str, FaceIndex] = {}
_indexes_lock = threading.Lock()


def process_index(sessions: sessionmaker[Session], settings: Settings) -> FaceIndex:
    """This process's index of ``settings``' database, restored on first use."""
    url = settings.resolved_database_url
    with _indexes_lock:
        index = _indexes.get(url)
        if index is None:
            blobs = BlobStore(settings.blob_dir, settings.blob_key_bytes)
            with sessions() as session:
                index = FaceIndex.restore(blobs, session)
            _indexes[url] = index
        return index


def _same_person(index: FaceIndex, vec: Vector) -> list[tuple[Candidate, float]]:
    """Indexed faces that are the same person as ``vec`` by the calibrated comparison
    (use ``default``), with their raw distances."""
    query = vec.astype(np.float64)
    matches: dict[int, float | None] = {}  # seq -> raw distance if a match
    k = K
    while True:
        found = index.search(vec, k)
        for c in found:
            if c.seq not in matches:
                matches[c.seq] = None
                if c.distance < PRE_CUT:
                    m = face.compare(query, c.vector.astype(np.float64), use="default")
                    matches[c.seq] = m.distance if m.verdict == "match" else None
        if len(found) < k or k >= K_MAX or matches[found[-1].seq] is None:
            return [(c, d) for c in found if (d := matches[c.seq]) is not None]
        k = min(2 * k, K_MAX)


def index_and_link(
    sessions: sessionmaker[Session], settings: Settings, order_id: str, vector: Any
) -> list[FaceLink]:
    """Index ``order_id``'s live face and link it to earlier orders showing the same
    person under another ID hash. Idempotent (a replay adds no row); returns every link
    of the order."""
    vec = _vector(vector)
    key = settings.blob_key_bytes
    try:
        with sessions() as session, session.begin():
            order = session.get(Order, order_id)
            if order is None:
                raise LookupError(f"order {order_id} not found")
            own_hash = order.id_hash
            seq = select(FaceVector.seq).where(FaceVector.order_id == order_id)
            if session.scalar(seq) is None:
                session.add(
                    FaceVector(
                        order_id=order_id,
                        agent_id=order.agent_id,
                        id_hash=own_hash,
                        vector_enc=seal_vector(key, order_id, vec),
                    )
                )
    except IntegrityError:
        pass  # a replay of this step running at the same time inserted it
    # Committed before the search: of two orders indexed at once by two processes, the
    # one that commits later catches up with the other.
    index = process_index(sessions, settings)
    with sessions() as session:
        index.catch_up(session, key)
    if index.snapshot_due():
        index.save(BlobStore(settings.blob_dir, key))

    pairs: dict[tuple[str, str], float] = {}
    if own_hash is not None:
        for c, distance in _same_person(index, vec):
            if c.order_id != order_id and c.id_hash is not None and c.id_hash != own_hash:
                a, b = sorted((order_id, c.order_id))
                pairs[(a, b)] = distance
    with sessions() as session, session.begin():
        have = {
            (link.order_id, link.other_order_id)
            for link in session.scalars(
                select(FaceLink).where(
                    or_(FaceLink.order_id == order_id, FaceLink.other_order_id == order_id)
                )
            )
        }
        for (a, b), distance in pairs.items():
            if (a, b) in have:
                continue
            try:
                with session.begin_nested():  # the other order's worker may insert it too
                    session.add(FaceLink(order_id=a, other_order_id=b, distance=distance))
            except IntegrityError:
                pass
    with sessions() as session:
        links = session.scalars(
            select(FaceLink)
            .where(or_(FaceLink.order_id == order_id, FaceLink.other_order_id == order_id))
            .order_by(FaceLink.id)
        ).all()
    if pairs:
        log.info("order %s: same face as %d order(s) under another ID number", order_id, len(pairs))
    return list(links)
