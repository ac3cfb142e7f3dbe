"""Same face under different ID numbers (R8) through real processes: the worker indexes
every order's live face and links orders whose faces are one person by the calibrated
threshold while the ID numbers read differ; the decisions stay as they were."""

from __future__ import annotations

import pytest
from sqlalchemy import or_, select

from services.storage.models import FaceLink, FaceVector, Order
from tests.integration.conftest import SPEC, LiveStack, release_cards

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _link(live: LiveStack, a: str, b: str) -> FaceLink | None:
    first, second = sorted((a, b))
    with live.sessions() as session:
        return session.scalars(
            select(FaceLink).where(FaceLink.order_id == first, FaceLink.other_order_id == second)
        ).one_or_none()


def test_one_face_under_two_id_numbers_links_the_orders(live: LiveStack) -> None:
    # The good and lookup_name_mismatch selfies show the same photo of one man holding
    # two different synthetic cards; expired shows someone else.
    sets = ("good", "lookup_name_mismatch", "expired")
    assert SPEC["sets"]["good"]["live_photo"] == SPEC["sets"]["lookup_name_mismatch"]["live_photo"]
    numbers = {SPEC["sets"][s]["identity"]["id_number"] for s in sets}
    assert len(numbers) == 3
    release_cards(live, "good")
    ids = {}
    for s in sets:
        r = live.post(s)
        assert r.status_code == 202, r.text
        ids[s] = r.json()["order_id"]
    done = live.wait_decided(list(ids.values()))

    # Decisions as without the index (tests/unit/test_order_fixtures.py has the table).
    for s, order_id in ids.items():
        expected = next(o for o in SPEC["orders"] if o["name"] == s)["expected"]
        assert done[order_id]["outcome"] == expected["outcome"], done[order_id]
        assert done[order_id]["reasons"] == expected["reasons"], done[order_id]
        assert "face_links" not in str(done[order_id])  # not shown to the selling agent

    link = _link(live, ids["good"], ids["lookup_name_mismatch"])
    assert link is not None, live.logs()
    assert link.distance < 0.3  # one photo, composed into two selfies
    assert _link(live, ids["good"], ids["expired"]) is None
    assert _link(live, ids["lookup_name_mismatch"], ids["expired"]) is None

    with live.sessions() as session:
        vectors = session.scalars(
            select(FaceVector).where(FaceVector.order_id.in_(ids.values()))
        ).all()
        orders = {o.id: o for o in session.scalars(select(Order).where(Order.id.in_(ids.values())))}
        expired_links = session.scalars(
            select(FaceLink).where(
                or_(FaceLink.order_id == ids["expired"], FaceLink.other_order_id == ids["expired"])
            )
        ).all()
    assert {v.order_id for v in vectors} == set(ids.values())
    assert all(len(v.vector_enc) > 600 and "[" not in v.vector_enc for v in vectors)  # sealed
    # At least the order decided second saw the first and recorded the signal.
    pair = (orders[ids["good"]], orders[ids["lookup_name_mismatch"]])
    assert max(o.evidence.get("face_links", 0) for o in pair) >= 1
    # Whoever else shares the expired set's face, none of them is the good man.
    assert not {ids["good"], ids["lookup_name_mismatch"]} & {
        x for link in expired_links for x in (link.order_id, link.other_order_id)
    }
