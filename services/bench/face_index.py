"""``simgate bench face-index``: the HNSW face index (services/face_index.py) against an
exact scan (faiss ``IndexFlatL2``: SIMD, one thread), in the same run on the same vectors.

Synthetic but dlib-shaped faces: person centres are drawn from a Gaussian with the
mean and covariance of the 400 real LFW embeddings in the shipped face calibration
(norm ~1.43, two people ~0.82 apart, most variance in few directions, as dlib's);
each person has 1-3 orders, each a fresh photo (isotropic noise putting two photos of
one person ~0.4 apart, as dlib's genuine pairs). A query is a new photo of an indexed
person, as an order of a returning buyer would be.

Per size: add cost (one batch, as a restart's catch-up; and one vector at a time, as
the worker adds each order), median single-query latency of ``FaceIndex.search``
(k=20) and of the exact scan with the ratio exact/HNSW, recall@10 against the exact
top 10, person recall (the query person's other orders among the 20 nearest: what
linking depends on), and memory per face (the graph as serialized, and the Python ids).
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import click
import numpy as np
import numpy.typing as npt

# faiss, vision and the index load inside the command: `simgate` itself stays quick.
F32 = npt.NDArray[np.float32]
WITHIN_SIGMA = 0.025  # per dimension: two photos of one person ~0.4 apart
SINGLE_ADDS = 200


def _population(
    n: int, rng: np.random.Generator
) -> tuple[F32, npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """``n`` order faces, the centres of their people, and whose each face is."""
    from vision.face import calibration

    cal = calibration()
    assert cal.cohort is not None
    assert cal.method.startswith("raw")  # identity projection: the cohort is raw dlib
    real = cal.cohort + cal.mean
    mean = real.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(np.cov(real.T))
    scale = np.sqrt(np.clip(eigval, 0.0, None))
    people = mean + (rng.normal(size=(max(1, n // 2), 128)) * scale) @ eigvec.T
    owner = rng.integers(0, len(people), n)  # ~1-3 orders per person (Poisson-ish)
    faces = people[owner] + rng.normal(0, WITHIN_SIGMA, (n, 128))
    return faces.astype(np.float32), people, owner


def _ids(n: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    orders = ["ord_" + rng.bytes(12).hex() for _ in range(n)]
    hashes = [rng.bytes(32).hex() for _ in range(n)]
    return orders, hashes


def measure(n: int, queries: int, seed: int) -> dict[str, Any]:
    import faiss

    from services.face_index import FaceIndex, K

    rng = np.random.default_rng(seed)
    faces, people, owner = _population(n + SINGLE_ADDS, rng)
    orders, hashes = _ids(n + SINGLE_ADDS, rng)
    rows = [(i + 1, orders[i], hashes[i], faces[i]) for i in range(n + SINGLE_ADDS)]

    index = FaceIndex()
    t0 = time.perf_counter()
    index.add(rows[:n])
    batch_add = time.perf_counter() - t0
    single = []
    for row in rows[n:]:
        t0 = time.perf_counter()
        index.add([row])
        single.append(time.perf_counter() - t0)
    total = n + SINGLE_ADDS

    graph_bytes = index.graph_nbytes()
    # The ids each position keeps: three list slots, an int, two strings.
    ids_bytes = 3 * 8 + sys.getsizeof(index.seqs[-1])
    ids_bytes += sys.getsizeof(index.order_ids[-1]) + sys.getsizeof(index.id_hashes[-1])

    exact = faiss.IndexFlatL2(128)
    exact.add(faces)
    owners = rng.integers(0, len(people), queries)
    qs = (people[owners] + rng.normal(0, WITHIN_SIGMA, (queries, 128))).astype(np.float32)
    hnsw_t, search_t, exact_t, recall10 = [], [], [], []
    found = found_exact = truth = 0
    # Queries on one thread each, as a worker runs them: the exact scan would otherwise
    # split across cores and stall whenever the other core is busy.
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    for person, q in zip(owners, qs, strict=True):
        t0 = time.perf_counter()
        index.nearest(q, K)  # like for like with the scan: positions and distances
        hnsw_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = index.search(q, K)  # what linking runs: + ids and vectors per candidate
        search_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, found_ids = exact.search(q[None, :], K)
        exact_t.append(time.perf_counter() - t0)
        top = found_ids[0]
        want10 = {orders[i] for i in top[:10]}
        recall10.append(len(want10 & {c.order_id for c in got[:10]}) / 10)
        # What linking needs: this person's other orders among the k nearest.
        same = {orders[i] for i in np.flatnonzero(owner == person)}
        truth += len(same)
        found += len(same & {c.order_id for c in got})
        found_exact += len(same & {orders[i] for i in top})
    faiss.omp_set_num_threads(threads)
    hnsw_ms = statistics.median(hnsw_t) * 1e3
    exact_ms = statistics.median(exact_t) * 1e3
    return {
        "n": total,
        "batch_add_us": batch_add / n * 1e6,
        "single_add_ms": statistics.median(single) * 1e3,
        "hnsw_ms": hnsw_ms,
        "search_ms": statistics.median(search_t) * 1e3,
        "exact_ms": exact_ms,
        "ratio": exact_ms / hnsw_ms,
        "recall10": statistics.fmean(recall10),
        "person_recall": found / truth if truth else float("nan"),
        "person_recall_exact": found_exact / truth if truth else float("nan"),
        "graph_b": graph_bytes / total,
        "ids_b": ids_bytes,
    }


def table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'faces':>7} {'add batch':>9} {'add one':>8} {'HNSW k=20':>9} {'exact k=20':>10} "
        f"{'exact/HNSW':>10} {'search()':>8} {'recall@10':>9} {'person rec.':>11} "
        f"{'graph B':>7} {'ids B':>5}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['n']:>7} {r['batch_add_us']:>6.0f} us {r['single_add_ms']:>5.2f} ms "
            f"{r['hnsw_ms']:>6.3f} ms {r['exact_ms']:>7.3f} ms {r['ratio']:>9.1f}x "
            f"{r['search_ms']:>5.2f} ms {r['recall10']:>9.3f} {r['person_recall']:>11.3f} "
            f"{r['person_recall_exact']:>7.3f} "
            f"{r['graph_b']:>7.0f} {r['ids_b']:>5.0f}"
        )
    return "\n".join(lines)


@click.command("face-index")
@click.option(
    "--sizes", default="10000,50000,200000", show_default=True, help="Index sizes, comma-separated."
)
@click.option("--queries", default=200, show_default=True, help="Queries per size.")
@click.option("--seed", default=2026, show_default=True)
@click.option("--ef-search", type=int, help="Override the index's efSearch (to explore).")
def bench_face_index(sizes: str, queries: int, seed: int, ef_search: int | None) -> None:
    """The face index (HNSW) against an exact scan: latency, recall, add cost, memory."""
    import faiss

    from services import face_index
    from services.face_index import HNSW_M, PRE_CUT, K

    if ef_search:
        face_index.EF_SEARCH = ef_search  # type: ignore[misc]
    EF_SEARCH = face_index.EF_SEARCH

    ns = [int(s) for s in sizes.split(",") if s.strip()]
    click.echo(
        f"faiss {faiss.__version__} IndexHNSWFlat M={HNSW_M} efSearch={EF_SEARCH}, k={K}, "
        f"pre-cut {PRE_CUT}; {faiss.omp_get_max_threads()} OpenMP threads; "
        f"medians over {queries} single queries"
    )
    results = []
    for n in ns:
        t0 = time.perf_counter()
        results.append(measure(n, queries, seed))
        click.echo(f"  {n} faces measured in {time.perf_counter() - t0:.0f} s", err=True)
    click.echo(table(results))
    click.echo(
        f"add batch: per face, one add() of all (a restart's catch-up); add one: median of "
        f"{SINGLE_ADDS} single adds (each order).\nHNSW / exact: median single-query time "
        "for positions + distances, one thread each (exact = IndexFlatL2); search(): HNSW "
        "plus ids and vectors per candidate (what linking runs).\nrecall@10: HNSW's 10 "
        f"nearest vs the exact 10; person rec.: the query person's 1-3 indexed faces among "
        f"HNSW's {K} nearest (and the exact {K}).\nMemory per face: graph (serialized: "
        "vector + links); ids (seq, order id, ID hash as Python objects)."
    )
