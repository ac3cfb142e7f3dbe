"""A seeded sales channel for inspection (R8): three agents and two weeks of decided
orders, written straight to the database (demo and test data; no pipeline runs).

- **big**: an honest big shop (about 20-30 orders a day, a new buyer each time);
- **small**: an honest small shop (3-6 a day; one returning customer; one order under
  an ID number the bulk opener also uses: a stolen identity, one order);
- **bulk**: a bulk opener: a handful of ID numbers (6) and faces (3 people, two ID
  numbers each) for every order, two delivery addresses and two devices, bursts of a
  dozen orders within minutes, SIMs activated and never used, card-limit refusals.

Identities are synthetic (services/synth/identity.py: checksum-valid numbers of people
who do not exist). Faces are REAL 128-d dlib embeddings, computed once per process from
committed MIT-licensed fixture photos (fixtures/README.md: ``handover/``,
``references/``, ``orders/`` and ``selfies/``), and indexed with
:func:`services.face_index.index_and_link`, so the face links come from the real
index and the calibrated comparison. The fixtures hold only six people: the bulk
opener's orders all carry a face; of the honest shops' orders three do (one buyer at
the big shop; a returning customer at the small one, twice under the same ID number,
which is no link). Faces of fixture orders posted to the same database (``simgate
demo``, the integration tests) may link to these, as any same person would.

Every order row is complete like one the API stores (sealed declared identity and
delivery address, masked numbers, keyed hashes of the ID number, address and client),
decided, with realistic outcomes and reason codes; approved orders have an active SIM,
and the carrier's usage report (made at the end of the period) says which were used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import secrets
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from services.agents import create_agent
from services.config import Settings
from services.privacy import id_hash, keyed_hash, mask_id_number, normalise_address
from services.storage.blobs import seal_text
from services.storage.models import Agent, Order, Sim
from services.synth.identity import SyntheticIdentity, generate_identity

REPO: Final = Path(__file__).resolve().parents[2]
FIXTURES: Final = REPO / "fixtures"
# Committed photos (MIT, ageitgey/face_recognition examples) by person.
FACE_PHOTOS: Final[dict[str, tuple[str, ...]]] = {
    "Alex_Lacamoire": (
        "handover/recipient_face.jpg",
        "references/Alex_Lacamoire.jpg",
        "orders/good_selfie.jpg",
    ),
    "Kit_Harington": ("handover/other_person_face.jpg", "orders/face_mismatch_selfie.jpg"),
    "Barack_Obama": ("orders/expired_selfie.jpg", "selfies/selfie001_genuine.jpg"),
    "Rose_Leslie": ("references/Rose_Leslie.jpg",),
    "Lin-Manuel_Miranda": ("references/Lin-Manuel_Miranda.jpg",),
}
BULK_FACES: Final = ("Alex_Lacamoire", "Kit_Harington", "Barack_Obama")
BULK_IDS: Final = 6  # two ID numbers per face
CARD_LIMIT: Final = 5  # R2, as services.domain.decide.Policy
DAYS: Final = 14

HONEST_REJECT = (
    "document.expired",
    "lookup.name_mismatch",
    "face.mismatch",
    "selfie.card_missing",
    "document.unreadable",
)
HONEST_REVIEW = ("lookup.photo_mismatch", "quality.recapture", "document.number_corrected")
HONEST_NOTES = ("quality.blur", "quality.glare", "quality.low_resolution")


class ScenarioExists(RuntimeError):
    """The scenario of this seed is already in the database."""


@dataclass(frozen=True)
class ScenarioInfo:
    seed: int
    start: dt.date
    end: dt.date  # last day, included
    agents: dict[str, str]  # role (big, small, bulk) -> agent id
    orders: dict[str, int]  # role -> orders
    face_links: int  # links written by the face index for the scenario's orders
    bulk_ids_masked: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "period": {"from": self.start.isoformat(), "to": self.end.isoformat()},
            "agents": self.agents,
            "orders": self.orders,
            "face_links": self.face_links,
            "bulk_ids_masked": list(self.bulk_ids_masked),
        }


@cache
def face_embeddings() -> dict[str, tuple[tuple[float, ...], ...]]:
    """Person -> the embeddings of their committed photos (computed once per process)."""
    from vision import face
    from vision.io import load_image

    out: dict[str, tuple[tuple[float, ...], ...]] = {}
    for person, photos in FACE_PHOTOS.items():
        vectors = []
        for rel in photos:
            found = face.largest_face(load_image(FIXTURES / rel).pixels)
            if found is None:
                raise RuntimeError(f"no face found in fixtures/{rel}")
            vectors.append(tuple(float(x) for x in found.encoding))
        out[person] = tuple(vectors)
    return out


@dataclass
class _Order:
    role: str
    identity: SyntheticIdentity
    created: dt.datetime
    outcome: str
    ship_mode: str | None
    reasons: list[str]
    notes: list[str]
    address: str
    client: str
    delivery: str
    face: tuple[float, ...] | None = None
    used: bool = True
    order_id: str = ""


def _at(day: dt.date, rng: random.Random, first_hour: int = 9, last_hour: int = 21) -> dt.datetime:
    seconds = rng.randrange(first_hour * 3600, last_hour * 3600)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)


def _honest_outcome(rng: random.Random) -> tuple[str, str | None, list[str], list[str]]:
    notes = [rng.choice(HONEST_NOTES)] if rng.random() < 0.1 else []
    x = rng.random()
    if x < 0.07:
        return "rejected", None, [rng.choice(HONEST_REJECT)], notes
    if x < 0.10:
        return "needs_review", None, [rng.choice(HONEST_REVIEW)], notes
    if x < 0.11:
        return "store_visit_required", None, ["policy.card_limit"], notes
    if x < 0.20:
        return "approved", "ship_inactive", ["face.uncertain"], notes
    return "approved", "activate_on_handover", [], notes


def _client(rng: random.Random) -> str:
    return "device:" + "".join(rng.choice("0123456789abcdef") for _ in range(16))


def _plan(seed: int, start: dt.date) -> list[_Order]:
    rng = random.Random(seed)
    faces = face_embeddings()
    days = [start + dt.timedelta(days=i) for i in range(DAYS)]
    plan: list[_Order] = []

    def honest(role: str, per_day: tuple[int, int]) -> None:
        for day in days:
            for _ in range(rng.randint(*per_day)):
                ident = generate_identity(rng)
                outcome, ship, reasons, notes = _honest_outcome(rng)
                plan.append(
                    _Order(
                        role=role,
                        identity=ident,
                        created=_at(day, rng),
                        outcome=outcome,
                        ship_mode=ship,
                        reasons=reasons,
                        notes=notes,
                        address=ident.address,
                        client=_client(rng),
                        delivery="door_check" if ship != "ship_inactive" else "no_door_check",
                        used=rng.random() > 0.05,
                    )
                )

    honest("big", (20, 30))
    honest("small", (3, 6))
    big = [o for o in plan if o.role == "big" and o.outcome == "approved"]
    small = [o for o in plan if o.role == "small" and o.outcome == "approved"]
    big[len(big) // 2].face = faces["Lin-Manuel_Miranda"][0]
    # A returning customer: the same person, the same ID number, a second card.
    regular = small[2]
    regular.face = faces["Rose_Leslie"][0]
    again = small[len(small) // 2]
    again.identity, again.face, again.address = regular.identity, regular.face, regular.address

    # The bulk opener: 6 ID numbers, 3 faces, 2 addresses, 2 devices.
    ids = [generate_identity(rng) for _ in range(BULK_IDS)]
    addresses = [generate_identity(rng).address for _ in range(2)]  # fictitious too
    devices = [_client(rng) for _ in range(2)]
    times: list[dt.datetime] = []
    for day in days:
        times += [_at(day, rng) for _ in range(rng.randint(1, 3))]
    for burst_day in (3, 8, 11):
        t0 = _at(days[burst_day], rng, 20, 22)
        times += [t0 + dt.timedelta(seconds=40 * i + rng.randrange(10)) for i in range(12)]
    times.sort()
    cards: dict[int, int] = {}
    for n, created in enumerate(times):
        k = n % BULK_IDS
        person = BULK_FACES[k // 2]
        photos = faces[person]
        if cards.get(k, 0) >= CARD_LIMIT:
            outcome, ship, reasons = "store_visit_required", None, ["policy.card_limit"]
        elif rng.random() < 0.3:
            outcome, ship, reasons = "rejected", None, ["face.mismatch"]
        else:
            outcome, ship, reasons = "approved", "ship_inactive", ["face.uncertain"]
            cards[k] = cards.get(k, 0) + 1
        plan.append(
            _Order(
                role="bulk",
                identity=ids[k],
                created=created,
                outcome=outcome,
                ship_mode=ship,
                reasons=reasons,
                notes=[],
                address=addresses[n % 2],
                client=devices[(n // 3) % 2],
                delivery="no_door_check",
                face=photos[n % len(photos)],
                used=False,
            )
        )
    # A stolen identity: one of the bulk opener's ID numbers, once at the small shop.
    candidates = [o for o in plan if o.role == "small" and o.face is None]
    victim = next((o for o in candidates if o.outcome != "approved"), candidates[0])
    victim.identity = ids[0]
    plan.sort(key=lambda o: o.created)
    return plan


def _agents(session: Session, seed: int, settings: Settings) -> dict[str, str]:
    specs = {
        "big": ("京华通信旗舰店 (synthetic)", "京华通信器材有限公司", ["11"], "prepaid", "010"),
        "small": ("街角手机店 (synthetic)", "街角通讯服务部", ["31"], "prepaid", "021"),
        "bulk": ("速通卡代理 (synthetic)", "速通电子商务有限公司", ["44", "51"], "iot", "0755"),
    }
    out = {}
    for i, (role, (name, legal, provinces, product, area)) in enumerate(specs.items(), 1):
        agent_id = f"agt_chan{seed}_{role}"
        if session.get(Agent, agent_id) is not None:
            raise ScenarioExists(f"the channel scenario of seed {seed} is already seeded")
        agent, _ = create_agent(
            session,
            name,
            provinces=provinces,
            agent_id=agent_id,
            agent_number=f"CH{seed:04d}-{i:04d}",
            licence_number=f"9144{seed:04d}MA{i:02d}SYN{i}0X"[:18],
            legal_name=legal + " (synthetic)",
            carrier=settings.carrier,
            scope={"products": [product, "prepaid"], "channels": ["online"]},
            contact={
                "name": f"Contact {role}",
                "phone": f"{area}-5550{seed % 1000:03d}{i}",
                "email": f"{role}{seed}@shop.example",
            },
        )
        out[role] = agent.id
    return out


def seed_channel_scenario(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    seed: int = 7,
    start: dt.date | None = None,
) -> ScenarioInfo:
    """Write the scenario (``DAYS`` days from ``start``, default: ending yesterday) and
    index its faces. ScenarioExists if this seed was seeded already."""
    from services.face_index import index_and_link

    start = start or (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=DAYS))
    end = start + dt.timedelta(days=DAYS - 1)
    report_at = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    plan = _plan(seed, start)
    key = settings.blob_key_bytes
    hkey = settings.id_hash_key
    with sessions() as session, session.begin():
        agents = _agents(session, seed, settings)
        provinces = {"big": ["11"], "small": ["31"], "bulk": ["44", "51"]}
        for n, o in enumerate(plan):
            o.order_id = f"ord_chan{seed}_{n:05d}_" + secrets.token_hex(4)
            number = o.identity.id_number
            msisdn = f"170{seed % 100:02d}{n:06d}"
            province = provinces[o.role][n % len(provinces[o.role])]
            decided = o.created + dt.timedelta(seconds=25 + (n * 7) % 90)
            session.add(
                Order(
                    id=o.order_id,
                    agent_id=agents[o.role],
                    idempotency_key=None,
                    request_hash=hashlib.sha256(o.order_id.encode()).hexdigest(),
                    msisdn=msisdn,
                    province=province,
                    delivery=o.delivery,
                    declared_enc=seal_text(
                        key,
                        json.dumps(
                            {"name": o.identity.name, "id_number": number}, ensure_ascii=False
                        ),
                        o.order_id,
                    ),
                    declared_number_masked=mask_id_number(number) or "",
                    id_hash=id_hash(hkey, number),
                    id_number_masked=mask_id_number(number),
                    status="decided",
                    attempts=1,
                    outcome=o.outcome,
                    ship_mode=o.ship_mode,
                    reasons={"reasons": o.reasons, "notes": o.notes},
                    evidence={"synthetic": True, "scenario": f"channel seed {seed}"},
                    created_at=o.created,
                    updated_at=decided,
                    decided_at=decided,
                    delivery_address_enc=seal_text(key, o.address, o.order_id + "/address"),
                    address_hash=keyed_hash(hkey, "address", normalise_address(o.address)),
                    client_hash=keyed_hash(hkey, "client", o.client),
                )
            )
            if o.outcome == "approved":
                activated = decided + dt.timedelta(hours=2 + (n * 13) % 70)
                session.add(
                    Sim(
                        iccid="8986" + f"{seed % 100:02d}" + f"{n:014d}",
                        msisdn=msisdn,
                        province=province,
                        status="active",
                        order_id=o.order_id,
                        holder_id_hash=id_hash(hkey, number),
                        agent_id=agents[o.role],
                        updated_at=activated,
                        activated_at=activated,
                        last_used_at=activated + dt.timedelta(hours=3) if o.used else None,
                        usage_reported_at=report_at,
                    )
                )
    links: set[int] = set()
    for o in plan:
        if o.face is not None:
            links.update(link.id for link in index_and_link(sessions, settings, o.order_id, o.face))
    roles = ("big", "small", "bulk")
    bulk_masked = sorted(
        {mask_id_number(o.identity.id_number) or "" for o in plan if o.role == "bulk"}
    )
    return ScenarioInfo(
        seed=seed,
        start=start,
        end=end,
        agents=agents,
        orders={r: sum(1 for o in plan if o.role == r) for r in roles},
        face_links=len(links),
        bulk_ids_masked=tuple(bulk_masked),
    )
