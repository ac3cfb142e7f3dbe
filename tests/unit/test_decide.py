"""``decide(evidence, policy)`` as a table: one row per rule, plus precedence and purity."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from services.domain.decide import LOOKUP_RESULT_CODES, Decision, Evidence, Policy, decide
from services.domain.reasons import EFFECTS, Effect, effect_of
from services.domain.states import Delivery, Outcome, ShipMode

POLICY = Policy(version="test-2026.1")
APPROVED, REJECTED = Outcome.APPROVED, Outcome.REJECTED
REVIEW, STORE = Outcome.NEEDS_REVIEW, Outcome.STORE_VISIT_REQUIRED
HANDOVER, INACTIVE = ShipMode.ACTIVATE_ON_HANDOVER, ShipMode.SHIP_INACTIVE


def ev(**changes: Any) -> Evidence:
    """A clean order (door check, everything matches) with ``changes`` applied."""
    base = Evidence(delivery=Delivery.DOOR_CHECK, face_verdict="match", lookup_result="match")
    return dataclasses.replace(base, **changes)


# id: (evidence, outcome, ship_mode, reasons, notes)
CASES: dict[str, tuple[Evidence, Outcome, ShipMode | None, tuple[str, ...], tuple[str, ...]]] = {
    "clean_door_check": (ev(), APPROVED, HANDOVER, (), ()),
    "clean_no_door_check": (ev(delivery=Delivery.NO_DOOR_CHECK), APPROVED, INACTIVE, (), ()),
    "face_gray_with_door_check": (
        ev(selfie_codes=("face.uncertain",), face_verdict="gray"),
        APPROVED, INACTIVE, ("face.uncertain",), (),
    ),
    "face_verdict_missing": (ev(face_verdict=None), APPROVED, INACTIVE, ("face.uncertain",), ()),
    "selfie_card_uncertain": (
        ev(selfie_codes=("selfie.card_uncertain",)),
        APPROVED, INACTIVE, ("selfie.card_uncertain",), (),
    ),
    # Reject codes, each alone.
    "document.expired": (
        ev(document_codes=("document.expired",)), REJECTED, None, ("document.expired",), (),
    ),
    "document.number_invalid": (
        ev(document_codes=("document.number_invalid",)),
        REJECTED, None, ("document.number_invalid",), (),
    ),
    "identity.declared_mismatch": (
        ev(declared_matches=False), REJECTED, None, ("identity.declared_mismatch",), (),
    ),
    "face.mismatch": (
        ev(selfie_codes=("face.mismatch",), face_verdict="no_match"),
        REJECTED, None, ("face.mismatch",), (),
    ),
    "selfie.card_mismatch": (
        ev(selfie_codes=("selfie.card_mismatch",)), REJECTED, None, ("selfie.card_mismatch",), (),
    ),
    "lookup.name_mismatch": (
        ev(lookup_result="name_mismatch"), REJECTED, None, ("lookup.name_mismatch",), (),
    ),
    "lookup.not_found": (ev(lookup_result="not_found"), REJECTED, None, ("lookup.not_found",), ()),
    "lookup.cancelled": (ev(lookup_result="cancelled"), REJECTED, None, ("lookup.cancelled",), ()),
    "lookup.deceased": (ev(lookup_result="deceased"), REJECTED, None, ("lookup.deceased",), ()),
    "agent.revoked": (ev(agent_codes=("agent.revoked",)), REJECTED, None, ("agent.revoked",), ()),
    "agent.suspended": (
        ev(agent_codes=("agent.suspended",)), REVIEW, None, ("agent.suspended",), (),
    ),
    "agent.out_of_scope": (
        ev(agent_codes=("agent.out_of_scope",)), REJECTED, None, ("agent.out_of_scope",), (),
    ),
    # Precedence: reject > store visit > review > approve.
    "reject_beats_store_visit_and_review": (
        ev(
            document_codes=("document.expired", "quality.photocopy"),
            lookup_result="unavailable",
            cards_in_province=7,
        ),
        REJECTED, None, ("document.expired",), (),
    ),
    "store_visit_beats_review": (
        ev(document_codes=("quality.photocopy",), cards_in_province=5),
        STORE, None, ("policy.card_limit",), (),
    ),
    "review_beats_approve_and_inactive": (
        ev(document_codes=("quality.recapture",), selfie_codes=("face.uncertain",)),
        REVIEW, None, ("quality.recapture",), (),
    ),
    # R2: the card limit.
    "cards_4_in_province": (ev(cards_in_province=4), APPROVED, HANDOVER, (), ()),
    "cards_5_in_province": (ev(cards_in_province=5), STORE, None, ("policy.card_limit",), ()),
    "cards_5_at_reseller": (ev(cards_at_reseller=5), STORE, None, ("policy.card_limit",), ()),
    "cards_4_and_4": (ev(cards_in_province=4, cards_at_reseller=4), APPROVED, HANDOVER, (), ()),
    # R5: the lookup.
    "lookup_unavailable": (
        ev(lookup_result="unavailable"), REVIEW, None, ("lookup.unavailable",), (),
    ),
    "lookup_none": (ev(lookup_result=None), REVIEW, None, ("lookup.unavailable",), ()),
    "lookup_unknown_result": (ev(lookup_result="???"), REVIEW, None, ("lookup.unavailable",), ()),
    "lookup_refused_the_request": (
        ev(lookup_result="refused"), REVIEW, None, ("lookup.request_refused",), (),
    ),
    "lookup_skipped_alone": (
        ev(lookup_result="skipped"), REVIEW, None, ("lookup.not_checked",), (),
    ),
    "lookup_skipped_with_reject": (
        ev(lookup_result="skipped", document_codes=("document.number_invalid",)),
        REJECTED, None, ("document.number_invalid",), (),
    ),
    "lookup_no_photo_is_a_note": (
        ev(lookup_result="no_photo"), APPROVED, HANDOVER, (), ("lookup.no_photo",),
    ),
    "lookup_photo_below_threshold": (
        ev(lookup_photo_similarity=0.2), REVIEW, None, ("lookup.photo_mismatch",), (),
    ),
    "lookup_photo_at_threshold": (ev(lookup_photo_similarity=0.35), APPROVED, HANDOVER, (), ()),
    # Capture quality.
    "quality.photocopy": (
        ev(document_codes=("quality.photocopy",)), REVIEW, None, ("quality.photocopy",), (),
    ),
    "quality.blur_note_only": (
        ev(document_codes=("quality.blur",)), APPROVED, HANDOVER, (), ("quality.blur",),
    ),
    "notes_kept_on_reject": (
        ev(document_codes=("quality.glare", "document.expired")),
        REJECTED, None, ("document.expired",), ("quality.glare",),
    ),
    "unknown_code_goes_to_review": (
        ev(document_codes=("document.something_new",)),
        REVIEW, None, ("document.something_new",), (),
    ),
    "duplicate_codes_once": (
        ev(document_codes=("document.expired", "document.expired")),
        REJECTED, None, ("document.expired",), (),
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("evidence", "outcome", "ship_mode", "reasons", "notes"),
    list(CASES.values()),
    ids=list(CASES),
)
def test_decide_table(
    evidence: Evidence,
    outcome: Outcome,
    ship_mode: ShipMode | None,
    reasons: tuple[str, ...],
    notes: tuple[str, ...],
) -> None:
    d = decide(evidence, POLICY)
    assert d.outcome == outcome
    assert d.ship_mode == ship_mode
    assert d.reasons == reasons
    assert d.notes == notes
    assert d.policy_version == POLICY.version


def test_rejected_reasons_carry_no_lookup_codes_when_lookup_skipped() -> None:
    d = decide(ev(lookup_result="skipped", document_codes=("document.expired",)), POLICY)
    assert d.outcome == REJECTED
    assert not [r for r in d.reasons if r.startswith("lookup.")]


def test_all_reject_reasons_are_listed() -> None:
    d = decide(
        ev(
            agent_codes=("agent.revoked",),
            document_codes=("document.expired",),
            declared_matches=False,
            lookup_result="deceased",
        ),
        POLICY,
    )
    assert d.outcome == REJECTED
    assert set(d.reasons) == {
        "agent.revoked",
        "document.expired",
        "identity.declared_mismatch",
        "lookup.deceased",
    }


@pytest.mark.parametrize("version", ["2026-11-29.1", "v2"])
def test_policy_version_carried_on_every_outcome(version: str) -> None:
    policy = Policy(version=version)
    for evidence in (
        ev(),
        ev(document_codes=("document.expired",)),
        ev(cards_in_province=9),
        ev(lookup_result=None),
    ):
        assert decide(evidence, policy).policy_version == version


def test_policy_card_limit_and_threshold_are_parameters() -> None:
    strict = Policy(version="s", card_limit=2, min_lookup_photo_similarity=0.9)
    assert decide(ev(cards_at_reseller=2), strict).outcome == STORE
    assert decide(ev(lookup_photo_similarity=0.8), strict).reasons == ("lookup.photo_mismatch",)


def test_decide_is_pure() -> None:
    evidence = ev(
        document_codes=("quality.blur", "quality.photocopy"),
        selfie_codes=("face.uncertain",),
        cards_in_province=2,
    )
    snapshot = dataclasses.replace(evidence)
    first, second = decide(evidence, POLICY), decide(evidence, POLICY)
    assert first == second
    assert isinstance(first, Decision)
    assert evidence == snapshot


@pytest.mark.parametrize("code", sorted(EFFECTS))
def test_every_code_has_a_valid_effect(code: str) -> None:
    assert isinstance(EFFECTS[code], Effect)
    assert effect_of(code) is EFFECTS[code]
    assert code.count(".") == 1
    assert code == code.lower()


def test_lookup_result_codes_are_known() -> None:
    for code in LOOKUP_RESULT_CODES.values():
        assert code in EFFECTS


def test_unknown_code_effect_is_review() -> None:
    assert effect_of("nobody.knows") is Effect.REVIEW
