"""Risk signals (R8): each fires on its pattern, with masked evidence, and stays quiet on
an ordinary channel; agents are ranked by the sum of their signals."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from services.risk import Signal, Thresholds, rank_agents, risk_signals, severity
from tests.unit.channel_rows import (
    DAY0,
    agent,
    at,
    honest_shop,
    link,
    order,
    sessions,
    sim,
)

__all__ = ["sessions"]  # the fixture
END = DAY0 + dt.timedelta(days=13)
FULL_HASH = re.compile(r"[0-9a-f]{64}")


def signals_of(sessions: sessionmaker[Session], **kw: Any) -> list[Signal]:
    with sessions() as session:
        return risk_signals(session, DAY0, END, thresholds=Thresholds(**kw))


def kinds(signals: list[Signal], agent_id: str) -> set[str]:
    return {s.kind for s in signals if s.agent_id == agent_id}


def base(sessions: sessionmaker[Session]) -> tuple[str, str]:
    with sessions() as session, session.begin():
        return honest_shop(session, "big", per_day=8), honest_shop(session, "small", per_day=4)


def test_an_ordinary_channel_raises_nothing(sessions: sessionmaker[Session]) -> None:
    big, small = base(sessions)
    assert signals_of(sessions) == []
    with sessions() as session:
        ranking = rank_agents(session, DAY0, END)
    assert [r.agent_id for r in ranking] == [big, small]  # no signals: more orders first
    assert all(r.score == 0 and r.signals == () for r in ranking)


def test_one_id_in_many_orders(sessions: sessionmaker[Session]) -> None:
    base(sessions)
    with sessions() as session, session.begin():
        shop = agent(session, "bulk")
        oids = [order(session, shop, at(2, 10 + i), ident="mule") for i in range(4)]
        three = agent(session, "three")
        for i in range(3):  # one under the threshold: a family's cards, not a signal
            order(session, three, at(3, 10 + i), ident="family")
    found = signals_of(sessions)
    [sig] = [s for s in found if s.kind == "id.many_orders"]
    assert sig.agent_id == shop
    [item] = sig.evidence["items"]
    assert item["orders_here"] == item["orders_total"] == 4
    assert sorted(item["order_ids"]) == sorted(oids)
    assert len(item["id_hash"]) == 12
    assert item["id_number_masked"].startswith("110***")
    assert kinds(found, three) == set()
    assert not FULL_HASH.search(json.dumps(sig.to_dict()))


def test_one_id_at_several_agents(sessions: sessionmaker[Session]) -> None:
    big, small = base(sessions)
    with sessions() as session, session.begin():
        order(session, big, at(4, 20), ident="traveller")
        order(session, small, at(5, 20), ident="traveller")
        order(session, small, at(6, 20), ident="loyal")
        order(session, small, at(7, 20), ident="loyal")  # twice at one shop: fine
        # Five orders in all, but under four at each shop: no id.many_orders.
        order(session, big, at(8, 20), ident="traveller")
        order(session, big, at(8, 21), ident="traveller")
        order(session, small, at(9, 20), ident="traveller")
    everything = signals_of(sessions)
    assert "id.many_orders" not in {s.kind for s in everything}
    found = [s for s in everything if s.kind == "id.many_agents"]
    assert {s.agent_id for s in found} == {big, small}
    for s in found:
        [item] = s.evidence["items"]
        assert item["agents"] == 2
        assert item["orders_total"] == 5
        assert item["orders_here"] == (3 if s.agent_id == big else 2)
        assert item["other_agents"] == [small if s.agent_id == big else big]


def test_same_face_under_different_ids(sessions: sessionmaker[Session]) -> None:
    big, _ = base(sessions)
    with sessions() as session, session.begin():
        shop = agent(session, "faces")
        a = order(session, shop, at(1, 20), ident="p1")
        b = order(session, shop, at(2, 20), ident="p2")
        c = order(session, shop, at(3, 20), ident="p3")
        link(session, a, b, 0.31)
        link(session, b, c, 0.28)
        # A returning customer (same face, same ID) is no signal.
        x = order(session, big, at(4, 21), ident="regular")
        y = order(session, big, at(5, 21), ident="regular")
        link(session, x, y, 0.2)
    found = signals_of(sessions)
    [sig] = [s for s in found if s.kind == "face.many_ids"]
    assert sig.agent_id == shop
    [face] = sig.evidence["items"]
    assert face["distinct_ids"] == 3
    assert face["orders"] == 3
    assert face["links"] == 2
    assert face["order_ids"] == sorted([a, b, c])
    assert (face["distance_min"], face["distance_max"]) == (0.28, 0.31)
    assert all(len(x) == 12 for x in face["id_hashes"])
    assert "face.many_ids" not in kinds(found, big)


def test_one_face_across_two_agents_flags_both(sessions: sessionmaker[Session]) -> None:
    big, small = base(sessions)
    with sessions() as session, session.begin():
        link(
            session,
            order(session, big, at(1, 22), ident="q1"),
            order(session, small, at(2, 22), ident="q2"),
        )
    found = [s for s in signals_of(sessions) if s.kind == "face.many_ids"]
    assert {s.agent_id for s in found} == {big, small}
    assert all(s.evidence["items"][0]["agents"] == sorted([big, small]) for s in found)


def test_address_and_client_clusters(sessions: sessionmaker[Session]) -> None:
    big, small = base(sessions)
    with sessions() as session, session.begin():
        # Five orders, three identities, one flat and one phone: both clusters.
        for i in range(5):
            order(session, big, at(6, 20 + i / 10), ident=f"c{i % 3}", address="flat 9", client="p")
        # Five orders of one person to their home: not a cluster of identities.
        for i in range(5):
            order(session, small, at(6, 20 + i / 10), ident="home", address="home 1", client="own")
        # Four people at one address: under the threshold.
        for i in range(4):
            order(session, small, at(7, 20 + i / 10), ident=f"f{i}", address="house 2")
    found = signals_of(sessions, id_orders_min=99)
    addr = [s for s in found if s.kind == "address.cluster"]
    client = [s for s in found if s.kind == "client.cluster"]
    assert [s.agent_id for s in addr] == [big]
    assert [s.agent_id for s in client] == [big]
    [item] = addr[0].evidence["items"]
    assert item["orders_total"] == 5
    assert item["distinct_ids"] == 3
    assert len(item["address_hash"]) == 12
    assert len(item["order_ids"]) == 5
    assert client[0].evidence["items"][0]["client_hash"]


def test_burst_within_a_window(sessions: sessionmaker[Session]) -> None:
    base(sessions)
    with sessions() as session, session.begin():
        fast = agent(session, "fast")
        for i in range(10):  # ten orders in 9 minutes
            order(session, fast, at(3, 22) + dt.timedelta(seconds=60 * i))
        slow = agent(session, "slow")
        for i in range(10):  # ten orders in 10.5 minutes: just outside 600 s
            order(session, slow, at(3, 22) + dt.timedelta(seconds=70 * i))
    found = signals_of(sessions)
    [sig] = [s for s in found if s.kind == "orders.burst"]
    assert sig.agent_id == fast
    [window] = sig.evidence["windows"]
    assert window["orders"] == 10
    assert window["seconds"] == 540
    assert kinds(found, slow) == set()


def test_overlapping_windows_merge_into_one_burst(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        fast = agent(session, "fast")
        for i in range(25):  # 25 orders, 20 s apart: one burst, not sixteen
            order(session, fast, at(3, 22) + dt.timedelta(seconds=20 * i))
    [sig] = [s for s in signals_of(sessions) if s.kind == "orders.burst"]
    [window] = sig.evidence["windows"]
    assert window["orders"] == 25
    assert window["seconds"] == 480
    assert sig.severity == 2  # 25 / 10


def test_a_day_far_above_the_median(sessions: sessionmaker[Session]) -> None:
    base(sessions)
    with sessions() as session, session.begin():
        spiky = agent(session, "spiky")
        for d in range(5):
            n = 30 if d == 3 else 5
            for i in range(n):  # 20 minutes apart: no ten-minute burst
                order(session, spiky, at(d, 0.5) + dt.timedelta(minutes=20 * i))
    found = signals_of(sessions)
    [sig] = [s for s in found if s.kind == "orders.burst"]
    assert sig.agent_id == spiky
    assert sig.evidence["windows"] == []
    assert sig.evidence["days"] == [
        {"day": (DAY0 + dt.timedelta(days=3)).isoformat(), "orders": 30, "agent_median_day": 5.0}
    ]


def test_reason_spike_against_the_other_agents(sessions: sessionmaker[Session]) -> None:
    _big, _small = base(sessions)
    with sessions() as session, session.begin():
        bad = agent(session, "bad")
        for i in range(20):
            rejected = i < 8
            order(
                session,
                bad,
                at(1 + i % 5, 20 + i / 20),
                outcome="rejected" if rejected else "approved",
                reasons=["face.mismatch"] if rejected else [],
                notes=["quality.blur"],
            )
        meh = agent(session, "meh")
        for i in range(20):  # 2 of 20: under the minimum count
            order(
                session,
                meh,
                at(1 + i % 5, 21 + i / 20),
                outcome="rejected" if i < 2 else "approved",
                reasons=["face.mismatch"] if i < 2 else [],
            )
    found = signals_of(sessions)
    [sig] = [s for s in found if s.kind == "reason.spike"]
    assert sig.agent_id == bad
    [item] = sig.evidence["items"]
    assert item["code"] == "face.mismatch"
    assert item["orders"] == 8
    assert item["rate"] == 0.4
    assert item["others_rate"] < 0.1
    assert "quality.blur" not in json.dumps(sig.evidence)  # notes are not reasons


def test_sims_activated_and_never_used(sessions: sessionmaker[Session]) -> None:
    _big, _small = base(sessions)
    with sessions() as session, session.begin():
        shelf = agent(session, "shelf")
        for i in range(5):
            oid = order(session, shelf, at(2, 20 + i / 10))
            sim(session, shelf, oid, at(2, 22), used=i == 0)
        fresh = agent(session, "fresh")
        for i in range(5):  # reported two days after activation: too early to say
            oid = order(session, fresh, at(2, 20 + i / 10))
            sim(session, fresh, oid, at(2, 22), used=False, reported_after_days=2)
        unknown = agent(session, "unknown")
        for i in range(5):  # no usage report at all
            oid = order(session, unknown, at(2, 20 + i / 10))
            sim(session, unknown, oid, at(2, 22), used=False, reported_after_days=None)
    found = signals_of(sessions)
    [sig] = [s for s in found if s.kind == "sims.unused"]
    assert sig.agent_id == shelf
    assert (sig.evidence["unused"], sig.evidence["reported"], sig.evidence["rate"]) == (4, 5, 0.8)
    assert len(sig.evidence["order_ids"]) == 4


def test_period_bounds_the_signals(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        shop = agent(session, "old")
        for i in range(4):
            order(session, shop, at(-3, 10 + i), ident="before")  # before DAY0
    assert signals_of(sessions) == []
    with sessions() as session:
        early = risk_signals(session, DAY0 - dt.timedelta(days=5), END)
    assert [s.kind for s in early] == ["id.many_orders"]


def test_ranking_sums_scores_and_breaks_ties_by_orders(sessions: sessionmaker[Session]) -> None:
    big, _small = base(sessions)
    with sessions() as session, session.begin():
        twin_a, twin_b = agent(session, "twin-a"), agent(session, "twin-b")
        for shop, n in ((twin_a, 4), (twin_b, 5)):
            for i in range(n):
                order(session, shop, at(8, 10 + i), ident=f"{shop}-mule")
        worst = agent(session, "worst")
        a = order(session, worst, at(9, 10), ident="w1")
        b = order(session, worst, at(9, 11), ident="w2")
        link(session, a, b)
        for i in range(4):
            order(session, worst, at(9, 12 + i), ident="w1")
    with sessions() as session:
        ranking = rank_agents(session, DAY0, END)
    ids = [r.agent_id for r in ranking]
    assert ids[0] == worst
    assert {s.kind for s in ranking[0].signals} == {"face.many_ids", "id.many_orders"}
    assert ranking[0].score == sum(s.score for s in ranking[0].signals)
    # Same signal and score: the agent with more orders ranks first.
    assert ids.index(twin_b) < ids.index(twin_a) < ids.index(big)
    assert ranking[ids.index(twin_a)].score == ranking[ids.index(twin_b)].score > 0


def test_severity_steps() -> None:
    assert [severity(r) for r in (1.0, 1.99, 2.0, 3.9, 4.0, 50)] == [1, 1, 2, 2, 3, 3]
    t = Thresholds()
    assert set(t.weights) == {
        "face.many_ids",
        "id.many_agents",
        "id.many_orders",
        "sims.unused",
        "address.cluster",
        "client.cluster",
        "orders.burst",
        "reason.spike",
    }
    assert t.to_dict()["id_orders_min"] == 4
