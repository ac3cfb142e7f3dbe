"""The committed order fixtures (fixtures/orders): schema, rules, sizes, determinism.

Fast: no OCR and no face models, except the one slow test that reads the good card.
``python -m services.synth.orders --verify`` runs the full checks with the real readers.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from services.synth.orders import DEFAULT_SEED, ORDERS, SETS, draw_all
from services.synth.portrait import MIT_PHOTOS
from vision.idnumber import correct_id_number, validate_id_number

REPO = Path(__file__).resolve().parents[2]
ORDERS_DIR = REPO / "fixtures" / "orders"
REFERENCE_DATE = dt.date(2026, 11, 29)
MAX_FILE_BYTES = 600 * 1024
MAX_FOLDER_BYTES = 6 * 1024 * 1024

# name: (set, delivery, existing_cards, outcome, ship_mode, reasons)
EXPECTED: dict[str, tuple[str, str, int, str, str | None, list[str]]] = {
    "good": ("good", "door_check", 0, "approved", "activate_on_handover", []),
    "good_no_door_check": ("good", "no_door_check", 0, "approved", "ship_inactive", []),
    "expired": ("expired", "door_check", 0, "rejected", None, ["document.expired"]),
    "invalid_number": (
        "invalid_number", "door_check", 0, "rejected", None, ["document.number_invalid"],
    ),
    "declared_mismatch": (
        "good", "door_check", 0, "rejected", None, ["identity.declared_mismatch"],
    ),
    "face_mismatch": ("face_mismatch", "door_check", 0, "rejected", None, ["face.mismatch"]),
    "selfie_card_mismatch": (
        "selfie_card_mismatch", "door_check", 0, "rejected", None, ["selfie.card_mismatch"],
    ),
    "lookup_name_mismatch": (
        "lookup_name_mismatch", "door_check", 0, "rejected", None, ["lookup.name_mismatch"],
    ),
    "lookup_cancelled": (
        "lookup_cancelled", "door_check", 0, "rejected", None, ["lookup.cancelled"],
    ),
    "four_cards": ("four_cards", "door_check", 4, "approved", "activate_on_handover", []),
    "five_cards": (
        "five_cards", "door_check", 5, "store_visit_required", None, ["policy.card_limit"],
    ),
}  # fmt: skip
SET_KEYS = {
    "identity",
    "face_identity",
    "portrait_photo",
    "live_identity",
    "live_photo",
    "held_card_identity",
    "files",
    "candidate",
    "rejected_candidates",
}
IDENTITY_KEYS = {
    "name",
    "sex",
    "ethnicity",
    "birth_date",
    "address",
    "id_number",
    "authority",
    "valid_from",
    "valid_to",
}


@pytest.fixture(scope="module")
def orders() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ORDERS_DIR / "orders.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def registry() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ORDERS_DIR / "registry.json").read_text(encoding="utf-8"))
    return data


def _sets(orders: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sets: dict[str, dict[str, Any]] = orders["sets"]
    return sets


def test_schema_and_every_referenced_file_exists(orders: dict[str, Any]) -> None:
    assert orders["version"] == 1
    assert orders["seed"] == DEFAULT_SEED
    assert orders["reference_date"] == REFERENCE_DATE.isoformat()
    assert [o["name"] for o in orders["orders"]] == list(EXPECTED)
    sets = _sets(orders)
    assert list(sets) == [plan.name for plan in SETS]
    for order in orders["orders"]:
        assert set(order) >= {"name", "set", "typed", "delivery", "existing_cards", "expected"}
        assert order["set"] in sets
        assert set(order["typed"]) == {"name", "id_number"}
        assert set(order["expected"]) == {"outcome", "ship_mode", "reasons"}
        assert isinstance(order["notes"], str)
        assert order["notes"]
    for name, entry in sets.items():
        assert set(entry) >= SET_KEYS, name
        assert set(entry["identity"]) == IDENTITY_KEYS
        assert entry["files"] == {
            side: f"{name}_{side}.jpg" for side in ("front", "back", "selfie")
        }
        for file_name in entry["files"].values():
            assert (ORDERS_DIR / file_name).is_file(), file_name
        for key in ("birth_date", "valid_from"):
            dt.date.fromisoformat(entry["identity"][key])
        valid_to = entry["identity"]["valid_to"]
        assert valid_to == "long-term" or dt.date.fromisoformat(valid_to)


def test_expected_outcomes(orders: dict[str, Any]) -> None:
    for order in orders["orders"]:
        set_name, delivery, cards, outcome, ship_mode, reasons = EXPECTED[order["name"]]
        assert order["set"] == set_name
        assert order["delivery"] == delivery
        assert order["existing_cards"] == cards
        assert order["expected"] == {"outcome": outcome, "ship_mode": ship_mode, "reasons": reasons}


def test_one_set_per_identity_except_the_shared_good_set(orders: dict[str, Any]) -> None:
    shared = {o["name"] for o in orders["orders"] if o["set"] != o["name"]}
    assert shared == {"good_no_door_check", "declared_mismatch"}
    numbers = [entry["identity"]["id_number"] for entry in _sets(orders).values()]
    assert len(set(numbers)) == len(numbers)


def test_numbers_are_checksum_valid_except_invalid_number(orders: dict[str, Any]) -> None:
    for name, entry in _sets(orders).items():
        identity = entry["identity"]
        check = validate_id_number(
            identity["id_number"],
            printed_birth_date=dt.date.fromisoformat(identity["birth_date"]),
            printed_sex=identity["sex"],
            today=REFERENCE_DATE,
        )
        if name == "invalid_number":
            # Only the checksum fails: birth date and sex agree with the first 17 digits,
            # and no unique single-digit repair exists.
            assert check.errors == ("id_number.checksum",)
            assert (
                correct_id_number(
                    identity["id_number"],
                    printed_birth_date=dt.date.fromisoformat(identity["birth_date"]),
                    printed_sex=identity["sex"],
                    today=REFERENCE_DATE,
                )
                is None
            )
        else:
            assert check.valid, (name, check.errors)


def test_validity_periods(orders: dict[str, Any]) -> None:
    for name, entry in _sets(orders).items():
        valid_to = entry["identity"]["valid_to"]
        if name == "expired":
            # Expired on the reference date and on every later day.
            assert dt.date.fromisoformat(valid_to) < REFERENCE_DATE
        else:
            # Good cards keep passing the expiry check for decades.
            assert valid_to == "long-term" or dt.date.fromisoformat(valid_to) > dt.date(
                2040, 12, 31
            )


def test_typed_data(orders: dict[str, Any]) -> None:
    sets = _sets(orders)
    for order in orders["orders"]:
        identity = sets[order["set"]]["identity"]
        assert order["typed"]["id_number"] == identity["id_number"]
        if order["name"] == "declared_mismatch":
            assert order["typed"]["name"][0] != identity["name"][0]  # another surname
        else:
            assert order["typed"]["name"] == identity["name"]


def test_registry(orders: dict[str, Any], registry: dict[str, Any]) -> None:
    assert registry["version"] == 1
    sets = _sets(orders)
    people = {p["id_number"]: p for p in registry["people"]}
    assert len(people) == len(registry["people"]) == len(sets)
    for name, entry in sets.items():
        person = people[entry["identity"]["id_number"]]
        assert person["status"] == ("cancelled" if name == "lookup_cancelled" else "valid")
        if name == "lookup_name_mismatch":
            assert person["name"] != entry["identity"]["name"]
        else:
            assert person["name"] == entry["identity"]["name"]
        embedding = person["photo_embedding"]
        assert isinstance(embedding, list)
        assert len(embedding) == 128
        assert all(isinstance(v, float) and round(v, 5) == v for v in embedding)
        assert any(v != 0 for v in embedding)
    # The embedding is the card's portrait photo's: one photo, one embedding.
    by_photo: dict[str, list[float]] = {}
    for entry in sets.values():
        embedding = people[entry["identity"]["id_number"]]["photo_embedding"]
        assert by_photo.setdefault(entry["portrait_photo"], embedding) == embedding


def test_faces(orders: dict[str, Any]) -> None:
    mit = {f"faces/{p}" for p in MIT_PHOTOS}
    for name, entry in _sets(orders).items():
        assert entry["portrait_photo"] in mit
        assert entry["live_photo"] in mit
        # A live face is never the very photo printed on the card.
        assert entry["live_photo"] != entry["portrait_photo"]
        if name == "face_mismatch":
            assert entry["live_identity"] != entry["face_identity"]
        else:
            assert entry["live_identity"] == entry["face_identity"]
        if name == "selfie_card_mismatch":
            held = entry["held_card_identity"]
            assert held is not None
            assert held["id_number"] != entry["identity"]["id_number"]
            assert entry["held_face_identity"] != entry["face_identity"]
            assert entry["held_portrait_photo"] in mit
        else:
            assert entry["held_card_identity"] is None


def test_image_sizes() -> None:
    total = 0
    for path in sorted(ORDERS_DIR.iterdir()):
        size = path.stat().st_size
        total += size
        assert size <= MAX_FILE_BYTES, path.name
        if path.suffix == ".jpg":
            with Image.open(path) as image:
                assert image.format == "JPEG"
                if path.stem.endswith("_selfie"):
                    assert image.size == (960, 1280)
                else:
                    assert max(image.size) <= 1152
    assert total <= MAX_FOLDER_BYTES


def test_generator_is_deterministic(orders: dict[str, Any], registry: dict[str, Any]) -> None:
    # Identities, typed names and registry names need no photos: redraw and compare.
    draws = draw_all(orders["seed"])
    sets = _sets(orders)
    for name, identity in draws.identities.items():
        assert sets[name]["identity"] == identity.to_json()
    for name, held in draws.held.items():
        assert sets[name]["held_card_identity"] == held.to_json()
    assert {o["name"]: o["typed"]["name"] for o in orders["orders"]} == dict(draws.typed_names)
    registry_names = {p["id_number"]: p["name"] for p in registry["people"]}
    for name, registered in draws.registry_names.items():
        assert registry_names[draws.identities[name].id_number] == registered
    assert [o.name for o in ORDERS] == list(EXPECTED)


@pytest.mark.slow
def test_good_set_reads() -> None:
    from vision.idcard import read_id_card
    from vision.io import load_image

    good = json.loads((ORDERS_DIR / "orders.json").read_text(encoding="utf-8"))["sets"]["good"]
    images = [load_image(ORDERS_DIR / good["files"][side]).pixels for side in ("front", "back")]
    reading = read_id_card(images, today=REFERENCE_DATE)
    assert reading.value("name") == good["identity"]["name"]
    assert reading.value("id_number") == good["identity"]["id_number"]
    assert reading.errors == ()
