"""Committed order fixtures for the verification service (issue 4).

An order is what a storefront posts: a photo of each side of the ID card, a handheld
selfie, and the name and ID number the buyer typed. A *set* is one applicant: one
synthetic identity, its card rendered and photographed, and a selfie. Several orders may
share a set (``good``, ``good_no_door_check`` and ``declared_mismatch``); every other
order has its own, so identities and card counts never collide.

Written to the output folder: ``<set>_front.jpg``, ``<set>_back.jpg``,
``<set>_selfie.jpg``, ``orders.json`` (orders, the decision each must get, and the sets'
ground truth) and ``registry.json`` (what the mock national lookup knows of each set's
identity, with the portrait's face embedding).

Identities depend only on ``(seed, set)``: :func:`draw_all` is cheap and needs no face
photos. Photos depend on ``(seed, set, candidate)``. Candidate 0 is tried first and is
checked with the real readers (:func:`check_set`); when it is not read as intended (a
misread number, a quality warning, a face score in or near the gray zone) the next
candidate (another photo pairing, another capture) replaces it, and the rejects are
recorded in ``orders.json``. The output is a deterministic function of the seed, given
the same library versions and shared face photos.

``python -m services.synth.orders --out fixtures/orders --seed 13`` writes the fixtures;
``python -m services.synth.orders --verify --out fixtures/orders`` re-checks them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import random
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import cv2
import numpy as np

from services.synth.capture import Capture, CaptureKind, capture, encode_jpeg
from services.synth.card import Image8, render_back
from services.synth.identity import (
    LONG_TERM,
    REFERENCE_DATE,
    SyntheticIdentity,
    age_on,
    generate_identity,
    id_check_character,
)
from services.synth.portrait import MIT_PHOTOS, REPO_ROOT, default_faces_dir, id_photo, load_rgb
from services.synth.selfie import Person, compose_selfie, people, render_card_front
from vision.idnumber import correct_id_number
from vision.layout import CANONICAL_HEIGHT, CANONICAL_WIDTH, PORTRAIT_PHOTO

FORMAT_VERSION: Final = 1
DEFAULT_SEED: Final = 13
DEFAULT_OUT: Final = REPO_ROOT / "fixtures" / "orders"
ORDERS_FILE: Final = "orders.json"
REGISTRY_FILE: Final = "registry.json"
SIDES: Final = ("front", "back", "selfie")

# Same limits as the committed idcards sample: small files, still well readable.
CARD_MAX_SIDE: Final = 1152
CARD_JPEG_QUALITY: Final = 80
SELFIE_JPEG_QUALITY: Final = 75
MAX_CANDIDATES: Final = 12
# Good cards must stay valid long after the reference date, so that tests run against
# today's date keep passing for decades.
GOOD_VALID_BEYOND: Final = dt.date(2041, 1, 1)
# The expired card ended well before the reference date: expired on any later day.
EXPIRED_BEFORE: Final = dt.date(2025, 1, 1)
# Applicants are adults with room to spare: no order may trip an age rule by accident.
MIN_AGE, MAX_AGE = 20, 70
# Face scores must clear the thresholds by this much, so that a small change of dlib,
# the calibration or the JPEG codec cannot move a committed fixture into the gray zone.
SCORE_MARGIN: Final = 0.02
EMBEDDING_DECIMALS: Final = 5
# Kit_Harington/1.jpg is a wide shot with a tiny face: no use as a portrait or selfie.
_UNUSABLE_PHOTOS: Final = frozenset({"people/Kit_Harington/1.jpg"})

Rule = Literal["good", "expired", "invalid_number"]
Case = Literal["genuine", "impostor", "other_card"]
Outcome = Literal["approved", "rejected", "store_visit_required", "needs_review"]
ShipMode = Literal["activate_on_handover", "ship_inactive"]
Delivery = Literal["door_check", "no_door_check"]


@dataclass(frozen=True, slots=True)
class SetPlan:
    """One applicant: which identity rule, which selfie case, how the card is photographed.

    ``genuine``: the applicant holds their own scanned card. ``impostor``: the scanned
    card shows person A and the selfie shows person B holding that card.
    ``other_card``: the applicant holds someone else's card.
    """

    name: str
    rule: Rule
    case: Case
    capture_kind: CaptureKind


SETS: Final[tuple[SetPlan, ...]] = (
    SetPlan("good", "good", "genuine", CaptureKind.PERSPECTIVE),
    SetPlan("expired", "expired", "genuine", CaptureKind.CLEAN),
    SetPlan("invalid_number", "invalid_number", "genuine", CaptureKind.CLEAN),
    SetPlan("face_mismatch", "good", "impostor", CaptureKind.PERSPECTIVE),
    SetPlan("selfie_card_mismatch", "good", "other_card", CaptureKind.CLEAN),
    SetPlan("lookup_name_mismatch", "good", "genuine", CaptureKind.PERSPECTIVE),
    SetPlan("lookup_cancelled", "good", "genuine", CaptureKind.CLEAN),
    SetPlan("four_cards", "good", "genuine", CaptureKind.PERSPECTIVE),
    SetPlan("five_cards", "good", "genuine", CaptureKind.CLEAN),
)

# What the card reader must report (document.* errors only) and the selfie check give.
DOCUMENT_ERRORS: Final[Mapping[Rule, tuple[str, ...]]] = {
    "good": (),
    "expired": ("document.expired",),
    "invalid_number": ("document.number_invalid",),
}
SELFIE_REASONS: Final[Mapping[Case, tuple[str, ...]]] = {
    "genuine": (),
    "impostor": ("face.mismatch",),
    "other_card": ("selfie.card_mismatch",),
}

# Deliberate differences of the mock registry from the cards.
REGISTRY_NAME_DIFFERS: Final = "lookup_name_mismatch"
REGISTRY_STATUS: Final[Mapping[str, str]] = {"lookup_cancelled": "cancelled"}


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """One order and the decision the service must reach for it."""

    name: str
    set: str
    delivery: Delivery
    existing_cards: int
    outcome: Outcome
    ship_mode: ShipMode | None
    reasons: tuple[str, ...]
    notes: str
    typed_name_differs: bool = False


ORDERS: Final[tuple[OrderPlan, ...]] = (
    OrderPlan(
        "good", "good", "door_check", 0, "approved", "activate_on_handover", (),
        "Everything matches; the courier checks the card at the door, so the SIM is "
        "activated on handover.",
    ),
    OrderPlan(
        "good_no_door_check", "good", "no_door_check", 0, "approved", "ship_inactive", (),
        "The good set without a door check: approved, but the SIM ships inactive.",
    ),
    OrderPlan(
        "expired", "expired", "door_check", 0, "rejected", None, ("document.expired",),
        "The card's validity period ended before 2026-11-29.",
    ),
    OrderPlan(
        "invalid_number", "invalid_number", "door_check", 0, "rejected", None,
        ("document.number_invalid",),
        "The printed number fails the GB 11643 checksum (two sequence digits changed) and "
        "has no unique single-digit repair; the buyer typed it as printed.",
    ),
    OrderPlan(
        "declared_mismatch", "good", "door_check", 0, "rejected", None,
        ("identity.declared_mismatch",),
        "The good set's images, but the typed name is someone else's (another surname).",
        typed_name_differs=True,
    ),
    OrderPlan(
        "face_mismatch", "face_mismatch", "door_check", 0, "rejected", None,
        ("face.mismatch",),
        "Impostor: the card's portrait is person A; the selfie shows person B holding "
        "that same card.",
    ),
    OrderPlan(
        "selfie_card_mismatch", "selfie_card_mismatch", "door_check", 0, "rejected", None,
        ("selfie.card_mismatch",),
        "The applicant (whose scanned card it is) holds another person's card in the "
        "selfie.",
    ),
    OrderPlan(
        "lookup_name_mismatch", "lookup_name_mismatch", "door_check", 0, "rejected", None,
        ("lookup.name_mismatch",),
        "A good set, but the registry lists another name for its number.",
    ),
    OrderPlan(
        "lookup_cancelled", "lookup_cancelled", "door_check", 0, "rejected", None,
        ("lookup.cancelled",),
        "A good set whose number the registry lists as cancelled.",
    ),
    OrderPlan(
        "four_cards", "four_cards", "door_check", 4, "approved", "activate_on_handover", (),
        "A good set whose holder already has 4 cards: the 5th is still allowed.",
    ),
    OrderPlan(
        "five_cards", "five_cards", "door_check", 5, "store_visit_required", None,
        ("policy.card_limit",),
        "A good set whose holder already has 5 cards: a 6th needs a visit to a store.",
    ),
)  # fmt: skip


def _rng(seed: int, *parts: object) -> random.Random:
    # String seeds are hashed with SHA-512 by random.Random: stable across runs and hosts.
    return random.Random(":".join(["simgate-orders", str(seed), *map(str, parts)]))


# --- identities (cheap, no photos) -----------------------------------------------------


def _fits(identity: SyntheticIdentity, rule: Rule) -> bool:
    if not MIN_AGE <= age_on(identity.birth_date, REFERENCE_DATE) <= MAX_AGE:
        return False
    if rule == "expired":
        return isinstance(identity.valid_to, dt.date) and identity.valid_to < EXPIRED_BEFORE
    return identity.valid_to == LONG_TERM or (
        isinstance(identity.valid_to, dt.date) and identity.valid_to >= GOOD_VALID_BEYOND
    )


def _draw_identity(seed: int, key: str, rule: Rule) -> SyntheticIdentity:
    """The first identity of ``(seed, key, k)``, k = 0, 1, ..., that fits ``rule``."""
    for k in range(10_000):
        identity = generate_identity(_rng(seed, key, "identity", k))
        if _fits(identity, rule):
            return identity
    raise RuntimeError(f"no identity fits {rule!r} for {key!r}")  # pragma: no cover


def invalidate_number(identity: SyntheticIdentity, rng: random.Random) -> SyntheticIdentity:
    """The identity with two sequence digits of its number changed.

    Birth date and sex digit stay, so the printed fields still agree with the number's
    first 17 digits. The result fails the checksum and has no *unique* single-character
    repair (``correct_id_number`` returns None), so no reader may silently fix it.
    """
    number = identity.id_number
    for _ in range(1000):
        # Positions 14 and 15: the sequence number's first two digits (16 is the sex).
        d14, d15 = rng.choice("0123456789"), rng.choice("0123456789")
        if d14 == number[14] or d15 == number[15]:
            continue
        candidate = number[:14] + d14 + d15 + number[16:]
        if id_check_character(candidate[:17]) == candidate[17]:
            continue
        repair = correct_id_number(
            candidate,
            printed_birth_date=identity.birth_date,
            printed_sex=identity.sex,
            today=REFERENCE_DATE,
        )
        if repair is None:
            return dataclasses.replace(identity, id_number=candidate)
    raise RuntimeError("no unrepairable invalid number found")  # pragma: no cover


def _other_name(seed: int, key: str, avoid: str) -> str:
    """A name with another surname than ``avoid``: no fuzzy match may accept it."""
    for k in range(1000):
        name = generate_identity(_rng(seed, key, "name", k)).name
        if name[0] != avoid[0] and len(name) >= 2:
            return name
    raise RuntimeError("no other name found")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Draws:
    """Everything of the fixtures that is drawn without photos."""

    identities: Mapping[str, SyntheticIdentity]  # per set: the scanned card
    held: Mapping[str, SyntheticIdentity]  # per other_card set: the card held instead
    typed_names: Mapping[str, str]  # per order: the name the buyer typed
    registry_names: Mapping[str, str]  # per set: the name the registry holds


def draw_all(seed: int) -> Draws:
    """The identities, typed names and registry names of ``seed`` (pure, fast)."""
    identities: dict[str, SyntheticIdentity] = {}
    held: dict[str, SyntheticIdentity] = {}
    for plan in SETS:
        if plan.rule == "invalid_number":
            good = _draw_identity(seed, plan.name, "good")
            identity = invalidate_number(good, _rng(seed, plan.name, "invalid-number"))
        else:
            identity = _draw_identity(seed, plan.name, plan.rule)
        identities[plan.name] = identity
        if plan.case == "other_card":
            held[plan.name] = _draw_identity(seed, f"{plan.name}/held", "good")
    numbers = [i.id_number for i in [*identities.values(), *held.values()]]
    if len(set(numbers)) != len(numbers):  # pragma: no cover - vanishingly unlikely
        raise RuntimeError("two sets drew the same ID number")
    typed = {
        order.name: (
            _other_name(seed, f"{order.name}/typed", identities[order.set].name)
            if order.typed_name_differs
            else identities[order.set].name
        )
        for order in ORDERS
    }
    registry = {
        name: (
            _other_name(seed, f"{name}/registry", identity.name)
            if name == REGISTRY_NAME_DIFFERS
            else identity.name
        )
        for name, identity in identities.items()
    }
    return Draws(identities, held, typed, registry)


# --- faces -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaceChoice:
    """Whose photos a set uses (paths relative to the faces folder)."""

    live_identity: str
    live_photo: str
    portrait_identity: str  # printed on the scanned card
    portrait_photo: str
    held_identity: str | None  # printed on the held card, when it is not the scanned one
    held_photo: str | None


def _portrait_people() -> list[Person]:
    """Every MIT person as a possible portrait (one photo is enough for a portrait)."""
    by_person: dict[str, list[str]] = defaultdict(list)
    for rel in MIT_PHOTOS:
        if rel not in _UNUSABLE_PHOTOS:
            by_person[rel.split("/")[1]].append(rel)
    return [Person(name, tuple(photos)) for name, photos in sorted(by_person.items())]


def choose_faces(
    seed: int,
    index: int,
    plan: SetPlan,
    candidate: int,
    applicants: Sequence[Person],
    portraits: Sequence[Person],
) -> FaceChoice:
    """The photos of candidate ``candidate`` of set ``index``.

    The applicant rotates with the set and the candidate, so consecutive sets (and
    retries) use different people. Live photo and own portrait are always two different
    photos, as a live face and a printed ID photo are in reality.
    """
    rng = _rng(seed, plan.name, "faces", candidate)
    me = applicants[(index + candidate) % len(applicants)]
    live, mine = rng.sample(list(me.photos), 2)
    others = [p for p in portraits if p.name != me.name]
    other = others[rng.randrange(len(others))]
    other_photo = rng.choice(other.photos)
    if plan.case == "impostor":
        return FaceChoice(me.name, live, other.name, other_photo, None, None)
    if plan.case == "other_card":
        return FaceChoice(me.name, live, me.name, mine, other.name, other_photo)
    return FaceChoice(me.name, live, me.name, mine, None, None)


def _portrait_size() -> tuple[int, int]:
    x0, y0, x1, y1 = PORTRAIT_PHOTO.to_pixels(CANONICAL_WIDTH, CANONICAL_HEIGHT)
    return x1 - x0, y1 - y0


def portrait_embedding(faces_dir: Path, photo: str) -> list[float]:
    """The dlib embedding of the ID photo printed from ``photo`` (the registry's photo)."""
    from vision import face

    width, height = _portrait_size()
    found = face.largest_face(id_photo(faces_dir / photo, width, height))
    if found is None:
        raise RuntimeError(f"no face in the ID photo made from {photo}")
    return [round(float(v), EMBEDDING_DECIMALS) for v in found.encoding]


# --- images ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderedSet:
    """The three JPEGs of one candidate and where things landed in them."""

    front: bytes
    back: bytes
    selfie: bytes
    geometry: dict[str, Any]


def _card_jpeg(shot: Capture) -> tuple[bytes, list[list[float]]]:
    """The capture downscaled to ``CARD_MAX_SIDE``, as JPEG; and the card's quad in it."""
    image = shot.image
    height, width = image.shape[:2]
    scale = min(1.0, CARD_MAX_SIDE / max(height, width))
    if scale < 1.0:
        size = (round(width * scale), round(height * scale))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
    quad = [[round(x * scale, 1), round(y * scale, 1)] for x, y in shot.quad]
    return encode_jpeg(image, min(shot.jpeg_quality, CARD_JPEG_QUALITY)), quad


def render_set(
    seed: int,
    plan: SetPlan,
    identity: SyntheticIdentity,
    held: SyntheticIdentity | None,
    faces: FaceChoice,
    candidate: int,
    faces_dir: Path,
) -> RenderedSet:
    """Render the card, photograph both sides and compose the selfie of one candidate."""
    key = (plan.name, candidate)
    front = render_card_front(identity, faces_dir, faces.portrait_photo, _rng(seed, *key, "front"))
    back = render_back(identity, _rng(seed, *key, "back"))
    front_jpeg, front_quad = _card_jpeg(
        capture(front, plan.capture_kind, _rng(seed, *key, "front-photo"))
    )
    back_jpeg, back_quad = _card_jpeg(
        capture(back, plan.capture_kind, _rng(seed, *key, "back-photo"))
    )
    # The held card is the very card that was scanned, unless the case says otherwise.
    held_card: Image8 = front
    if faces.held_photo is not None:
        assert held is not None
        held_card = render_card_front(held, faces_dir, faces.held_photo, _rng(seed, *key, "held"))
    selfie, geometry = compose_selfie(
        _rng(seed, *key, "selfie"), load_rgb(faces_dir / faces.live_photo), held_card
    )
    geometry = {
        "front_quad": front_quad,
        "back_quad": back_quad,
        "held_card_quad": geometry["held_card_quad"],
        "live_face_box": geometry["live_face_box"],
    }
    return RenderedSet(front_jpeg, back_jpeg, encode_jpeg(selfie, SELFIE_JPEG_QUALITY), geometry)


# --- checks with the real readers -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the readers must see in one set's files."""

    set: str
    id_number: str
    name: str
    document_errors: tuple[str, ...]  # the document.* errors, exactly
    selfie_reasons: tuple[str, ...]  # the selfie check's reasons, exactly
    live_is_portrait: bool  # the selfie's face is the scanned portrait's person
    held_is_scanned: bool  # the held card is the scanned card
    registry_embedding: tuple[float, ...] | None


@dataclass(frozen=True, slots=True)
class SetCheck:
    """What the readers saw, and every way it differs from the expectation."""

    set: str
    number: str | None
    name: str | None
    document_errors: tuple[str, ...]
    warnings: tuple[str, ...]
    reasons: tuple[str, ...]
    # Calibrated score and raw dlib distance of each comparison (None: not compared):
    face: tuple[float, float] | None  # live face vs scanned portrait
    card: tuple[float, float] | None  # held card's portrait vs scanned portrait
    registry: tuple[float, float] | None  # live face vs the registry's photo
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures


Reporter = Callable[[SetCheck, int], None]  # called with each check and its candidate


def _margin(label: str, match: tuple[float, float] | None, use: str, want_match: bool) -> list[str]:
    """A failure unless the score clears the threshold of ``use`` by ``SCORE_MARGIN``."""
    from vision import face

    if match is None:
        return [f"{label}: not compared"]
    score = match[0]
    thresholds = face.calibration().uses.get(use) or face.calibration().uses["default"]
    if want_match and score < thresholds.match + SCORE_MARGIN:
        return [f"{label}: score {score:.3f} < match {thresholds.match:.3f} + {SCORE_MARGIN}"]
    if not want_match and score >= thresholds.no_match - SCORE_MARGIN:
        return [
            f"{label}: score {score:.3f} >= no_match {thresholds.no_match:.3f} - {SCORE_MARGIN}"
        ]
    return []


def check_set(files: Mapping[str, Path], expect: Expectation) -> SetCheck:
    """Read the card photos and check the selfie (``files`` by side) as the service would.

    The card must give the expected number, name and document errors and no warning
    (a quality warning would send the order to review); the selfie check must give
    exactly the expected reasons, with every face score clear of the gray zone.
    """
    from vision import face
    from vision.idcard import read_id_card
    from vision.io import load_image
    from vision.selfie import check_selfie

    failures: list[str] = []
    reading = read_id_card(
        [load_image(files["front"]).pixels, load_image(files["back"]).pixels], today=REFERENCE_DATE
    )
    number, name = reading.value("id_number"), reading.value("name")
    if number != expect.id_number:
        failures.append(f"number read {number!r}")
    if name != expect.name:
        failures.append(f"name read {name!r}")
    document = tuple(sorted(e for e in reading.errors if e.startswith("document.")))
    if document != tuple(sorted(expect.document_errors)):
        failures.append(f"document errors {list(document)}")
    if reading.warnings:
        failures.append(f"warnings {list(reading.warnings)}")
    reasons: tuple[str, ...] = ()
    face_m = card_m = registry_m = None
    portrait = reading.front.portrait if reading.front is not None else None
    if portrait is None:
        failures.append("no portrait side found")
    else:
        selfie_pixels = load_image(files["selfie"]).pixels
        result = check_selfie(selfie_pixels, scanned_portrait=portrait, scanned_id_number=number)
        reasons = result.reasons
        if sorted(reasons) != sorted(expect.selfie_reasons):
            failures.append(f"selfie reasons {list(reasons)}")
        if result.face_match is not None:
            face_m = (result.face_match.score, result.face_match.distance)
        failures += _margin("face", face_m, "selfie_vs_portrait", expect.live_is_portrait)
        if result.card_portrait_match is not None:
            card_m = (result.card_portrait_match.score, result.card_portrait_match.distance)
        failures += _margin("card", card_m, "portrait_vs_portrait", expect.held_is_scanned)
        if expect.registry_embedding is not None and result.live_face_box is not None:
            # The lookup's photo is the card's: it must agree with the selfie as the card does.
            live = face.encode_face(selfie_pixels, result.live_face_box)
            registered = np.asarray(expect.registry_embedding, np.float64)
            m = face.compare(registered, live, use="selfie_vs_portrait")
            registry_m = (m.score, m.distance)
            failures += _margin(
                "registry", registry_m, "selfie_vs_portrait", expect.live_is_portrait
            )
    return SetCheck(
        set=expect.set,
        number=number,
        name=name,
        document_errors=document,
        warnings=tuple(reading.warnings),
        reasons=tuple(reasons),
        face=face_m,
        card=card_m,
        registry=registry_m,
        failures=tuple(failures),
    )


def expectation(set_name: str, entry: Mapping[str, Any], person: Mapping[str, Any]) -> Expectation:
    """The expectation of one set from its ``orders.json`` and ``registry.json`` entries."""
    embedding = person.get("photo_embedding")
    return Expectation(
        set=set_name,
        id_number=entry["identity"]["id_number"],
        name=entry["identity"]["name"],
        document_errors=tuple(entry["expected_document_errors"]),
        selfie_reasons=tuple(entry["expected_selfie_reasons"]),
        live_is_portrait=entry["live_identity"] == entry["face_identity"],
        held_is_scanned=entry["held_card_identity"] is None,
        registry_embedding=None if embedding is None else tuple(embedding),
    )


# --- the fixtures ----------------------------------------------------------------------


def _file_names(set_name: str) -> dict[str, str]:
    return {side: f"{set_name}_{side}.jpg" for side in SIDES}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _order_json(order: OrderPlan, draws: Draws) -> dict[str, Any]:
    return {
        "name": order.name,
        "set": order.set,
        "typed": {
            "name": draws.typed_names[order.name],
            "id_number": draws.identities[order.set].id_number,
        },
        "delivery": order.delivery,
        "existing_cards": order.existing_cards,
        "expected": {
            "outcome": order.outcome,
            "ship_mode": order.ship_mode,
            "reasons": list(order.reasons),
        },
        "notes": order.notes,
    }


def generate(
    out_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    faces_dir: Path | None = None,
    report: Reporter | None = None,
) -> list[SetCheck]:
    """Write the fixtures to ``out_dir``; returns the check of each set's chosen candidate.

    ``report(check, candidate)``, if given, is called after every candidate checked.
    :raises RuntimeError: when no candidate of a set passes its check.
    """
    faces = faces_dir or default_faces_dir()
    applicants = people(faces, mit_only=True)  # everyone with two usable photos
    portraits = _portrait_people()
    draws = draw_all(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    sets: dict[str, Any] = {}
    people_json: list[dict[str, Any]] = []
    checks: list[SetCheck] = []
    for index, plan in enumerate(SETS):
        identity = draws.identities[plan.name]
        held = draws.held.get(plan.name)
        names = _file_names(plan.name)
        rejected: list[dict[str, Any]] = []
        for candidate in range(MAX_CANDIDATES):
            choice = choose_faces(seed, index, plan, candidate, applicants, portraits)
            rendered = render_set(seed, plan, identity, held, choice, candidate, faces)
            for side in SIDES:
                (out_dir / names[side]).write_bytes(getattr(rendered, side))
            entry = _set_json(plan, identity, held, choice, candidate, rendered, names)
            person = _person_json(
                plan.name, identity, draws, portrait_embedding(faces, choice.portrait_photo)
            )
            paths = {side: out_dir / names[side] for side in SIDES}
            check = check_set(paths, expectation(plan.name, entry, person))
            if report is not None:
                report(check, candidate)
            if check.ok:
                break
            rejected.append({"candidate": candidate, "failures": list(check.failures)})
        else:
            raise RuntimeError(f"set {plan.name}: no candidate of {MAX_CANDIDATES} passed")
        entry["rejected_candidates"] = rejected
        sets[plan.name] = entry
        people_json.append(person)
        checks.append(check)
    _write_json(
        out_dir / ORDERS_FILE,
        {
            "version": FORMAT_VERSION,
            "seed": seed,
            "reference_date": REFERENCE_DATE.isoformat(),
            "synthetic": True,
            "orders": [_order_json(order, draws) for order in ORDERS],
            "sets": sets,
        },
    )
    _write_json(out_dir / REGISTRY_FILE, {"version": FORMAT_VERSION, "people": people_json})
    return checks


def _set_json(
    plan: SetPlan,
    identity: SyntheticIdentity,
    held: SyntheticIdentity | None,
    choice: FaceChoice,
    candidate: int,
    rendered: RenderedSet,
    names: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "identity": identity.to_json(),
        "rule": plan.rule,
        "case": plan.case,
        "face_identity": choice.portrait_identity,
        "portrait_photo": f"faces/{choice.portrait_photo}",
        "live_identity": choice.live_identity,
        "live_photo": f"faces/{choice.live_photo}",
        # None: the applicant holds the scanned card itself.
        "held_card_identity": None if held is None else held.to_json(),
        "held_face_identity": choice.held_identity,
        "held_portrait_photo": None if choice.held_photo is None else f"faces/{choice.held_photo}",
        "files": dict(names),
        "capture_kind": str(plan.capture_kind),
        "jpeg_quality": {"card_max": CARD_JPEG_QUALITY, "selfie": SELFIE_JPEG_QUALITY},
        "geometry": rendered.geometry,
        "expected_document_errors": list(DOCUMENT_ERRORS[plan.rule]),
        "expected_selfie_reasons": list(SELFIE_REASONS[plan.case]),
        "candidate": candidate,
    }


def _person_json(
    set_name: str, identity: SyntheticIdentity, draws: Draws, embedding: list[float]
) -> dict[str, Any]:
    return {
        "id_number": identity.id_number,
        "name": draws.registry_names[set_name],
        "status": REGISTRY_STATUS.get(set_name, "valid"),
        "photo_embedding": embedding,
    }


def verify(out_dir: Path, report: Reporter | None = None) -> list[SetCheck]:
    """Check every set of the fixtures in ``out_dir`` with the real readers."""
    orders = json.loads((out_dir / ORDERS_FILE).read_text(encoding="utf-8"))
    registry = json.loads((out_dir / REGISTRY_FILE).read_text(encoding="utf-8"))
    by_number = {p["id_number"]: p for p in registry["people"]}
    checks = []
    for set_name, entry in orders["sets"].items():
        person = by_number.get(entry["identity"]["id_number"], {})
        files = {side: out_dir / entry["files"][side] for side in SIDES}
        check = check_set(files, expectation(set_name, entry, person))
        if report is not None:
            report(check, entry["candidate"])
        checks.append(check)
    return checks


# --- command line ----------------------------------------------------------------------

_COLUMNS: Final = ("set", "cand", "number", "name", "doc errors", "selfie reasons",
                   "face s/d", "card s/d", "registry s/d", "result")  # fmt: skip
_WIDTHS: Final = (21, 5, 19, 8, 15, 21, 10, 10, 13, 0)


def _match(value: tuple[float, float] | None) -> str:
    """Score and raw dlib distance, e.g. ``1.00/0.32``."""
    return "-" if value is None else f"{value[0]:.2f}/{value[1]:.2f}"


def _pad(text: str, width: int) -> str:
    # Ideographs take two columns in a terminal.
    shown = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(1, width - shown)


def _row(cells: Sequence[str]) -> str:
    return "".join(_pad(c, w) if w else c for c, w in zip(cells, _WIDTHS, strict=True)) + "\n"


def _print_check(check: SetCheck, candidate: int) -> None:
    cells = (
        check.set,
        str(candidate),
        check.number or "-",
        check.name or "-",
        ",".join(e.removeprefix("document.") for e in check.document_errors) or "-",
        ",".join(check.reasons) or "-",
        _match(check.face),
        _match(check.card),
        _match(check.registry),
        "ok" if check.ok else "FAIL: " + "; ".join(check.failures),
    )
    sys.stdout.write(_row(cells))
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.synth.orders [--out DIR] [--seed N] [--verify]``."""
    parser = argparse.ArgumentParser(
        prog="python -m services.synth.orders",
        description="Write (or, with --verify, re-check) the order fixtures.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the fixtures folder")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--faces", type=Path, default=None, help="the shared faces folder")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check the files already in --out with the real readers; exit 1 on a failure",
    )
    args = parser.parse_args(argv)
    cv2.setNumThreads(2)
    sys.stdout.write(_row(_COLUMNS))
    if args.verify:
        checks = verify(args.out, _print_check)
        failed = [c.set for c in checks if not c.ok]
        sys.stdout.write(f"{len(checks) - len(failed)}/{len(checks)} sets pass\n")
        return 1 if failed else 0
    try:
        generate(args.out, seed=args.seed, faces_dir=args.faces, report=_print_check)
    except RuntimeError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    sys.stdout.write(f"wrote {len(SETS)} sets and {len(ORDERS)} orders to {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
