"""Risk signals of the sales channel and agents ranked by risk (R8).

Every signal is found with SQL aggregates (``GROUP BY ... HAVING``, window functions),
so the work grows with the number of *suspicious groups*, not with pairs of orders;
Python only merges the (few) groups the database returns. Each :class:`Signal` names
its agent, a severity (1-3: how far past its threshold), a score contribution
(``weight x severity``), a sentence, and its evidence: order ids, counts, masked ID
numbers (``orders.id_number_masked``), keyed hashes cut to 12 characters, face-link
distances. No ID number, address or client appears in clear.

The signals and their thresholds (:class:`Thresholds`; docs/service.md has the table):

``id.many_orders``  one ID number (``id_hash``) in ``id_orders_min`` orders or more at
                    one agent.
``id.many_agents``  one ID number at ``id_agents_min`` agents or more.
``face.many_ids``   the same live face (``face_links``: distance under the calibrated
                    threshold, services/face_index.py) under ``face_ids_min`` or more
                    different ID numbers; linked orders grouped into one face each.
``address.cluster`` ``address_orders_min`` orders or more to one delivery address
                    (``address_hash``) under ``cluster_ids_min`` or more ID numbers.
``client.cluster``  the same for one buyer client (``client_hash``).
``orders.burst``    ``burst_orders`` orders of one agent within ``burst_window_s``, or a
                    day with at least ``burst_day_min`` orders and ``burst_day_factor``
                    times the agent's median day.
``reason.spike``    one reason code in ``reason_min_count`` or more of an agent's decided
                    orders, at ``reason_ratio`` times the rate of the other agents and at
                    least ``reason_min_delta`` above it.
``sims.unused``     SIMs activated in the period, with a carrier usage report made
                    ``unused_min_days`` or more after activation, showing no use at all:
                    at least ``unused_min_count`` of them and ``unused_min_rate`` of the
                    agent's reported SIMs.

Ranking: an agent's score is the sum of its signals' scores; ties go to the agent with
more orders in the period.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import median
from typing import Any, Final

from sqlalchemy import ColumnElement, String, and_, case, cast, extract, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from services.inspection import bounds, day_key, reason_codes, utc_day
from services.storage.models import Agent, FaceLink, Order, Sim

HASH_CHARS: Final = 12
KINDS: Final = (
    "face.many_ids",
    "id.many_agents",
    "id.many_orders",
    "sims.unused",
    "address.cluster",
    "client.cluster",
    "orders.burst",
    "reason.spike",
)
DEFAULT_WEIGHTS: Final[Mapping[str, float]] = {
    "face.many_ids": 5.0,  # one person, several identities: the strongest sign
    "id.many_agents": 4.0,
    "id.many_orders": 3.0,
    "sims.unused": 3.0,
    "address.cluster": 2.0,
    "client.cluster": 2.0,
    "orders.burst": 2.0,
    "reason.spike": 1.5,
}


@dataclass(frozen=True)
class Thresholds:
    """When each signal fires (see the module docstring). Defaults are for a channel of
    ordinary shops: a household buys a few cards, not a dozen; R2 allows 5 per ID."""

    id_orders_min: int = 4
    id_agents_min: int = 2
    face_ids_min: int = 2
    address_orders_min: int = 5
    client_orders_min: int = 5
    cluster_ids_min: int = 2
    burst_orders: int = 10
    burst_window_s: int = 600
    burst_day_min: int = 20
    burst_day_factor: float = 4.0
    reason_min_count: int = 5
    reason_ratio: float = 3.0
    reason_min_delta: float = 0.10
    unused_min_days: int = 7
    unused_min_count: int = 3
    unused_min_rate: float = 0.5
    evidence_limit: int = 20  # items listed per signal (the counts are always complete)
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["weights"] = dict(self.weights)
        return out


@dataclass(frozen=True)
class Signal:
    kind: str
    agent_id: str
    severity: int  # 1..3
    score: float  # weight x severity: the contribution to the agent's rank
    summary: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AgentRisk:
    agent_id: str
    name: str
    agent_number: str | None
    status: str
    orders: int
    score: float
    signals: tuple[Signal, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "name": self.name,
            "agent_number": self.agent_number,
            "status": self.status,
            "orders": self.orders,
            "score": self.score,
            "signals": [s.to_dict() for s in self.signals],
        }


def severity(ratio: float) -> int:
    """How far past its threshold: under 2x is 1, under 4x is 2, else 3."""
    return 1 if ratio < 2 else 2 if ratio < 4 else 3


def short(h: str | None) -> str | None:
    return None if h is None else h[:HASH_CHARS]


def _signal(
    t: Thresholds, kind: str, agent_id: str, ratio: float, summary: str, ev: dict[str, Any]
) -> Signal:
    sev = severity(ratio)
    return Signal(kind, agent_id, sev, round(t.weights.get(kind, 1.0) * sev, 2), summary, ev)


def _period(lo: dt.datetime, hi: dt.datetime, col: Any = None) -> ColumnElement[bool]:
    c = Order.created_at if col is None else col
    return and_(c >= lo, c < hi)


def _seconds(session: Session, later: Any, earlier: Any) -> Any:
    """``later - earlier`` in seconds, as SQL (SQLite and PostgreSQL)."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return extract("epoch", later - earlier)


def _sample_orders(
    session: Session,
    lo: dt.datetime,
    hi: dt.datetime,
    col: InstrumentedAttribute[Any],
    values: Sequence[str],
    limit: int,
) -> dict[tuple[str, str], list[str]]:
    """Up to ``limit`` order ids (oldest first) per (agent, value of ``col``)."""
    if not values:
        return {}
    rn = (
        func.row_number()
        .over(partition_by=(Order.agent_id, col), order_by=(Order.created_at, Order.id))
        .label("rn")
    )
    sub = (
        select(Order.agent_id, col.label("v"), Order.id, rn)
        .where(_period(lo, hi), col.in_(values))
        .subquery()
    )
    rows = session.execute(
        select(sub.c.agent_id, sub.c.v, sub.c.id)
        .where(sub.c.rn <= limit)
        .order_by(sub.c.agent_id, sub.c.v, sub.c.rn)
    ).all()
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for agent_id, v, oid in rows:
        out[(agent_id, v)].append(oid)
    return out


# --- ID numbers -----------------------------------------------------------------------


def _id_signals(session: Session, lo: dt.datetime, hi: dt.datetime, t: Thresholds) -> list[Signal]:
    per_hash = session.execute(
        select(
            Order.id_hash,
            func.count(),
            func.count(func.distinct(Order.agent_id)),
            func.min(Order.id_number_masked),
        )
        .where(_period(lo, hi), Order.id_hash.is_not(None))
        .group_by(Order.id_hash)
        .having(
            or_(
                func.count() >= t.id_orders_min,
                func.count(func.distinct(Order.agent_id)) >= t.id_agents_min,
            )
        )
    ).all()
    if not per_hash:
        return []
    info: dict[str, tuple[int, int, str | None]] = {
        str(h): (int(n), int(a), m) for h, n, a, m in per_hash
    }
    rows = session.execute(
        select(Order.agent_id, Order.id_hash, func.count())
        .where(_period(lo, hi), Order.id_hash.in_(list(info)))
        .group_by(Order.agent_id, Order.id_hash)
    ).all()
    agents_of: dict[str, list[str]] = defaultdict(list)
    here: dict[tuple[str, str], int] = {}
    for agent_id, h, n in rows:
        agents_of[str(h)].append(agent_id)
        here[(agent_id, str(h))] = int(n)
    samples = _sample_orders(session, lo, hi, Order.id_hash, list(info), t.evidence_limit)

    many_orders: dict[str, list[dict[str, Any]]] = defaultdict(list)
    many_agents: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (agent_id, h), n_here in sorted(here.items()):
        total, n_agents, masked = info[h]
        item = {
            "id_hash": short(h),
            "id_number_masked": masked,
            "orders_here": n_here,
            "orders_total": total,
            "agents": n_agents,
            "order_ids": samples.get((agent_id, h), []),
        }
        if n_here >= t.id_orders_min:
            many_orders[agent_id].append(item)
        if n_agents >= t.id_agents_min:
            others = sorted(a for a in agents_of[h] if a != agent_id)
            many_agents[agent_id].append({**item, "other_agents": others})

    out = []
    lim = t.evidence_limit
    for agent_id, items in many_orders.items():
        items.sort(key=lambda i: (-i["orders_here"], i["id_hash"]))
        n_orders = sum(i["orders_here"] for i in items)
        out.append(
            _signal(
                t,
                "id.many_orders",
                agent_id,
                max(i["orders_here"] for i in items) / t.id_orders_min,
                f"{len(items)} ID number(s) each used in {t.id_orders_min} or more orders here "
                f"({n_orders} orders)",
                {
                    "threshold": t.id_orders_min,
                    "ids": len(items),
                    "orders": n_orders,
                    "items": items[:lim],
                },
            )
        )
    for agent_id, items in many_agents.items():
        items.sort(key=lambda i: (-i["agents"], -i["orders_here"], i["id_hash"]))
        out.append(
            _signal(
                t,
                "id.many_agents",
                agent_id,
                len(items),
                f"{len(items)} ID number(s) also used at other agents "
                f"({t.id_agents_min} or more agents each)",
                {"threshold": t.id_agents_min, "ids": len(items), "items": items[:lim]},
            )
        )
    return out


# --- faces ----------------------------------------------------------------------------


def _face_signals(
    session: Session, lo: dt.datetime, hi: dt.datetime, t: Thresholds
) -> list[Signal]:
    a, b = aliased(Order), aliased(Order)
    links = session.execute(
        select(
            FaceLink.order_id,
            FaceLink.other_order_id,
            FaceLink.distance,
            a.agent_id,
            a.id_hash,
            a.id_number_masked,
            a.created_at,
            b.agent_id,
            b.id_hash,
            b.id_number_masked,
            b.created_at,
        )
        .join(a, a.id == FaceLink.order_id)
        .join(b, b.id == FaceLink.other_order_id)
        .where(or_(_period(lo, hi, a.created_at), _period(lo, hi, b.created_at)))
    ).all()
    if not links:
        return []
    # Connected orders (union-find over the links): one face, seen in several orders.
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    orders: dict[str, tuple[str, str | None, str | None, bool]] = {}
    for oa, ob, _d, aa, ha, ma, ca, ab, hb, mb, cb in links:
        orders[oa] = (aa, ha, ma, _in(ca, lo, hi))
        orders[ob] = (ab, hb, mb, _in(cb, lo, hi))
        ra, rb = find(oa), find(ob)
        if ra != rb:
            parent[ra] = rb
    groups: dict[str, list[str]] = defaultdict(list)
    for oid in orders:
        groups[find(oid)].append(oid)
    distances: dict[str, list[float]] = defaultdict(list)
    for oa, _ob, d, *_ in links:
        distances[find(oa)].append(float(d))

    per_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    lim = t.evidence_limit
    for root, members in groups.items():
        members.sort()
        ids = sorted({h for o in members if (h := orders[o][1]) is not None})
        if len(ids) < t.face_ids_min:
            continue
        masked = sorted({m for o in members if (m := orders[o][2]) is not None})
        agents = sorted({orders[o][0] for o in members})
        ds = distances[root]
        face = {
            "orders": len(members),
            "distinct_ids": len(ids),
            "id_hashes": [short(h) for h in ids][:lim],
            "id_numbers_masked": masked[:lim],
            "agents": agents,
            "links": len(ds),
            "distance_min": round(min(ds), 4),
            "distance_max": round(max(ds), 4),
            "order_ids": members[:lim],
        }
        for agent_id in {orders[o][0] for o in members if orders[o][3]}:
            per_agent[agent_id].append(face)
    out = []
    for agent_id, faces in per_agent.items():
        faces.sort(key=lambda f: (-f["distinct_ids"], f["order_ids"]))
        n_ids = sum(f["distinct_ids"] for f in faces)
        out.append(
            _signal(
                t,
                "face.many_ids",
                agent_id,
                n_ids / t.face_ids_min,
                f"{len(faces)} face(s) seen under {n_ids} different ID numbers",
                {"threshold": t.face_ids_min, "faces": len(faces), "items": faces[:lim]},
            )
        )
    return out


def _in(value: dt.datetime | None, lo: dt.datetime, hi: dt.datetime) -> bool:
    if value is None:
        return False
    v = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return lo <= v < hi


# --- addresses and clients -----------------------------------------------------------


def _cluster_signals(
    session: Session,
    lo: dt.datetime,
    hi: dt.datetime,
    t: Thresholds,
    *,
    kind: str,
    col: InstrumentedAttribute[Any],
    min_orders: int,
    what: str,
) -> list[Signal]:
    n_ids = func.count(func.distinct(Order.id_hash))
    hot = session.execute(
        select(col, func.count(), n_ids, func.count(func.distinct(Order.agent_id)))
        .where(_period(lo, hi), col.is_not(None))
        .group_by(col)
        .having(and_(func.count() >= min_orders, n_ids >= t.cluster_ids_min))
    ).all()
    if not hot:
        return []
    info = {v: (int(n), int(k), int(a)) for v, n, k, a in hot}
    rows = session.execute(
        select(Order.agent_id, col, func.count(), func.count(func.distinct(Order.id_hash)))
        .where(_period(lo, hi), col.in_(list(info)))
        .group_by(Order.agent_id, col)
    ).all()
    samples = _sample_orders(session, lo, hi, col, list(info), t.evidence_limit)
    per_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for agent_id, v, n_here, ids_here in rows:
        total, ids, agents = info[v]
        per_agent[agent_id].append(
            {
                f"{kind.split('.')[0]}_hash": short(v),
                "orders_total": total,
                "distinct_ids": ids,
                "agents": agents,
                "orders_here": int(n_here),
                "distinct_ids_here": int(ids_here),
                "order_ids": samples.get((agent_id, v), []),
            }
        )
    out = []
    for agent_id, items in sorted(per_agent.items()):
        items.sort(key=lambda i: (-i["orders_total"], -i["distinct_ids"]))
        n_orders = sum(i["orders_here"] for i in items)
        out.append(
            _signal(
                t,
                kind,
                agent_id,
                max(i["orders_total"] for i in items) / min_orders,
                f"{len(items)} {what} cluster(s): {min_orders} or more orders "
                f"{'to' if kind == 'address.cluster' else 'from'} one {what} "
                f"under {t.cluster_ids_min} or more ID numbers ({n_orders} orders here)",
                {
                    "threshold": {"orders": min_orders, "distinct_ids": t.cluster_ids_min},
                    "clusters": len(items),
                    "orders": n_orders,
                    "items": items[: t.evidence_limit],
                },
            )
        )
    return out


# --- bursts ---------------------------------------------------------------------------


def _burst_signals(
    session: Session, lo: dt.datetime, hi: dt.datetime, t: Thresholds
) -> list[Signal]:
    lim = t.evidence_limit
    windows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if t.burst_orders >= 2:
        # The (N-1)th order before each order of the same agent: N orders within the
        # window end at this order when their distance is short enough.
        first = (
            func.lag(Order.created_at, t.burst_orders - 1, type_=Order.created_at.type)
            .over(partition_by=Order.agent_id, order_by=(Order.created_at, Order.id))
            .label("first_at")
        )
        sub = select(Order.agent_id, Order.created_at, first).where(_period(lo, hi)).subquery()
        hits = session.execute(
            select(sub.c.agent_id, sub.c.first_at, sub.c.created_at)
            .where(
                sub.c.first_at.is_not(None),
                _seconds(session, sub.c.created_at, sub.c.first_at) <= t.burst_window_s,
            )
            .order_by(sub.c.agent_id, sub.c.created_at)
        ).all()
        # Merge overlapping windows into bursts (only the hits, already sorted).
        merged: dict[str, list[list[dt.datetime]]] = defaultdict(list)
        for agent_id, start, end in hits:
            spans = merged[agent_id]
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        for agent_id, spans in merged.items():
            for start, end in spans[:lim]:
                n = session.scalar(
                    select(func.count()).where(
                        Order.agent_id == agent_id,
                        Order.created_at >= start,
                        Order.created_at <= end,
                    )
                )
                windows[agent_id].append(
                    {
                        "start": _iso(start),
                        "end": _iso(end),
                        "orders": int(n or 0),
                        "seconds": round(
                            (_aware(end) - _aware(start)).total_seconds(),
                        ),
                    }
                )
    day = utc_day(session, Order.created_at)
    daily = session.execute(
        select(Order.agent_id, day, func.count())
        .where(_period(lo, hi))
        .group_by(Order.agent_id, day)
    ).all()
    per_agent_days: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for agent_id, d, n in daily:
        per_agent_days[agent_id].append((day_key(d), int(n)))
    spikes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for agent_id, days in per_agent_days.items():
        med = float(median(n for _, n in days))
        bar = max(float(t.burst_day_min), t.burst_day_factor * med)
        for d, n in sorted(days):
            if n >= bar:
                spikes[agent_id].append({"day": d, "orders": n, "agent_median_day": med})
    out = []
    for agent_id in sorted(set(windows) | set(spikes)):
        w, s = windows.get(agent_id, []), spikes.get(agent_id, [])
        ratio = max(
            [x["orders"] / t.burst_orders for x in w]
            + [
                x["orders"]
                / max(float(t.burst_day_min), t.burst_day_factor * x["agent_median_day"])
                for x in s
            ]
        )
        parts = []
        if w:
            parts.append(
                f"{len(w)} burst(s) of {t.burst_orders}+ orders within {t.burst_window_s} s"
            )
        if s:
            parts.append(f"{len(s)} day(s) far above the agent's median day")
        out.append(
            _signal(
                t,
                "orders.burst",
                agent_id,
                ratio,
                "; ".join(parts),
                {
                    "threshold": {
                        "orders": t.burst_orders,
                        "window_s": t.burst_window_s,
                        "day_min": t.burst_day_min,
                        "day_factor": t.burst_day_factor,
                    },
                    "windows": w[:lim],
                    "days": s[:lim],
                },
            )
        )
    return out


def _aware(v: dt.datetime) -> dt.datetime:
    return v if v.tzinfo else v.replace(tzinfo=dt.UTC)


def _iso(v: Any) -> str:
    return _aware(v).isoformat() if isinstance(v, dt.datetime) else str(v)


# --- reasons --------------------------------------------------------------------------


def _reason_signals(
    session: Session, lo: dt.datetime, hi: dt.datetime, t: Thresholds
) -> list[Signal]:
    decided = Order.outcome.is_not(None)
    text = cast(Order.reasons, String)
    rows = session.execute(
        select(Order.agent_id, text, func.count())
        .where(_period(lo, hi), decided)
        .group_by(Order.agent_id, text)
    ).all()
    per_agent: dict[str, Counter[str]] = defaultdict(Counter)
    decided_of: Counter[str] = Counter()
    channel: Counter[str] = Counter()
    for agent_id, value, n in rows:
        decided_of[agent_id] += int(n)
        for code in reason_codes(value):
            per_agent[agent_id][code] += int(n)
            channel[code] += int(n)
    total = sum(decided_of.values())
    out = []
    for agent_id, codes in sorted(per_agent.items()):
        mine = decided_of[agent_id]
        others = total - mine
        spikes: list[dict[str, Any]] = []
        for code, n in codes.items():
            if n < t.reason_min_count:
                continue
            r = n / mine
            other_r = (channel[code] - n) / others if others else 0.0
            if r >= t.reason_ratio * other_r and r - other_r >= t.reason_min_delta:
                spikes.append(
                    {
                        "code": code,
                        "orders": n,
                        "decided": mine,
                        "rate": round(r, 4),
                        "others_rate": round(other_r, 4),
                        "ratio": None if other_r == 0 else round(r / other_r, 2),
                    }
                )
        if not spikes:
            continue
        spikes.sort(key=lambda s: (-s["rate"], s["code"]))
        ratio = max((s["rate"] / max(s["others_rate"], 0.01)) / t.reason_ratio for s in spikes)
        out.append(
            _signal(
                t,
                "reason.spike",
                agent_id,
                ratio,
                f"{len(spikes)} reason code(s) far more frequent than at the other agents: "
                + ", ".join(
                    f"{s['code']} {s['rate']:.0%} vs {s['others_rate']:.0%}" for s in spikes[:3]
                ),
                {
                    "threshold": {
                        "min_count": t.reason_min_count,
                        "ratio": t.reason_ratio,
                        "min_delta": t.reason_min_delta,
                    },
                    "items": spikes[: t.evidence_limit],
                },
            )
        )
    return out


# --- SIM usage ------------------------------------------------------------------------


def _unused_signals(
    session: Session, lo: dt.datetime, hi: dt.datetime, t: Thresholds
) -> list[Signal]:
    observed = and_(
        Sim.activated_at.is_not(None),
        Sim.usage_reported_at.is_not(None),
        _seconds(session, Sim.usage_reported_at, Sim.activated_at) >= t.unused_min_days * 86400,
    )
    unused = and_(observed, Sim.last_used_at.is_(None))
    rows = session.execute(
        select(
            Sim.agent_id,
            func.sum(case((observed, 1), else_=0)),
            func.sum(case((unused, 1), else_=0)),
        )
        .where(Sim.agent_id.is_not(None), Sim.activated_at >= lo, Sim.activated_at < hi)
        .group_by(Sim.agent_id)
    ).all()
    out = []
    for agent_id, n_obs, n_unused in rows:
        n_obs, n_unused = int(n_obs or 0), int(n_unused or 0)
        if n_unused < t.unused_min_count or n_unused / n_obs < t.unused_min_rate:
            continue
        sample = session.scalars(
            select(Sim.order_id)
            .where(
                Sim.agent_id == agent_id,
                Sim.activated_at >= lo,
                Sim.activated_at < hi,
                unused,
            )
            .order_by(Sim.activated_at)
            .limit(t.evidence_limit)
        ).all()
        r = n_unused / n_obs
        out.append(
            _signal(
                t,
                "sims.unused",
                agent_id,
                max(n_unused / t.unused_min_count, r / t.unused_min_rate),
                f"{n_unused} of {n_obs} SIMs reported by the carrier never used "
                f"({t.unused_min_days}+ days after activation)",
                {
                    "threshold": {
                        "days": t.unused_min_days,
                        "min_count": t.unused_min_count,
                        "min_rate": t.unused_min_rate,
                    },
                    "unused": n_unused,
                    "reported": n_obs,
                    "rate": round(r, 4),
                    "order_ids": [o for o in sample if o],
                },
            )
        )
    return out


# --- all together ---------------------------------------------------------------------


def risk_signals(
    session: Session, start: dt.date, end: dt.date, *, thresholds: Thresholds | None = None
) -> list[Signal]:
    """Every signal of the period ``start``..``end`` (UTC days, both included)."""
    t = thresholds or Thresholds()
    lo, hi = bounds(start, end)
    signals = [
        *_face_signals(session, lo, hi, t),
        *_id_signals(session, lo, hi, t),
        *_unused_signals(session, lo, hi, t),
        *_cluster_signals(
            session,
            lo,
            hi,
            t,
            kind="address.cluster",
            col=Order.address_hash,
            min_orders=t.address_orders_min,
            what="delivery address",
        ),
        *_cluster_signals(
            session,
            lo,
            hi,
            t,
            kind="client.cluster",
            col=Order.client_hash,
            min_orders=t.client_orders_min,
            what="buyer client",
        ),
        *_burst_signals(session, lo, hi, t),
        *_reason_signals(session, lo, hi, t),
    ]
    order = {k: i for i, k in enumerate(KINDS)}
    signals.sort(key=lambda s: (s.agent_id, -s.score, order.get(s.kind, len(order))))
    return signals


def rank_agents(
    session: Session, start: dt.date, end: dt.date, *, thresholds: Thresholds | None = None
) -> list[AgentRisk]:
    """Agents with orders (or signals) in the period, highest risk first: score = sum of
    their signals' scores, ties broken by order count, then agent id."""
    signals = risk_signals(session, start, end, thresholds=thresholds)
    lo, hi = bounds(start, end)
    counts = {
        a: int(n)
        for a, n in session.execute(
            select(Order.agent_id, func.count()).where(_period(lo, hi)).group_by(Order.agent_id)
        ).all()
    }
    by_agent: dict[str, list[Signal]] = defaultdict(list)
    for s in signals:
        by_agent[s.agent_id].append(s)
    ids = sorted(set(counts) | set(by_agent))
    agents = {a.id: a for a in session.scalars(select(Agent).where(Agent.id.in_(ids)))}
    out = []
    for agent_id in ids:
        agent = agents.get(agent_id)
        sigs = sorted(by_agent.get(agent_id, []), key=lambda s: -s.score)
        out.append(
            AgentRisk(
                agent_id=agent_id,
                name=agent.name if agent else agent_id,
                agent_number=agent.agent_number if agent else None,
                status=agent.status if agent else "unknown",
                orders=counts.get(agent_id, 0),
                score=round(sum(s.score for s in sigs), 2),
                signals=tuple(sigs),
            )
        )
    out.sort(key=lambda r: (-r.score, -r.orders, r.agent_id))
    return out
