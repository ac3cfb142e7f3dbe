"""``decide(evidence, policy)``: the whole decision, as a pure function.

Precedence: anything that shows the order must not proceed rejects it; then R2's card
limit sends the buyer to a store; then anything a person must look at sends it to
review; otherwise it is approved. Approved orders activate on handover only when the
courier can check at the door (R6) and every face check passed with margin; otherwise
the card ships inactive and the customer's video check decides (R7).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.domain.reasons import Effect, effect_of
from services.domain.states import Delivery, Outcome, ShipMode

LOOKUP_RESULT_CODES = {
    "name_mismatch": "lookup.name_mismatch",
    "not_found": "lookup.not_found",
    "cancelled": "lookup.cancelled",
    "deceased": "lookup.deceased",
    "no_photo": "lookup.no_photo",
    "unavailable": "lookup.unavailable",
    # Not asked because the document already failed; on its own it means review.
    "skipped": "lookup.not_checked",
    "refused": "lookup.request_refused",
}


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    card_limit: int = 5  # R2: an ID holding this many cards must go to a store
    # The national photo's similarity to the live face, when the lookup has one.
    min_lookup_photo_similarity: float = 0.35


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the checks found, reduced to what the policy needs."""

    delivery: Delivery
    document_codes: tuple[str, ...] = ()  # document.*, image.*, quality.* from reading
    declared_matches: bool = True  # typed name and number equal what was read (R1)
    selfie_codes: tuple[str, ...] = ()  # face.*, selfie.*
    face_verdict: str | None = None  # live face vs portrait: match | gray | no_match
    lookup_result: str | None = None  # match | name_mismatch | ... | unavailable
    lookup_photo_similarity: float | None = None
    cards_in_province: int = 0
    cards_at_reseller: int = 0
    agent_codes: tuple[str, ...] = ()  # agent.revoked, agent.out_of_scope


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    ship_mode: ShipMode | None
    reasons: tuple[str, ...]  # the codes that drove the outcome
    notes: tuple[str, ...] = field(default=())  # recorded, no effect
    policy_version: str = ""


def _codes(evidence: Evidence, policy: Policy) -> list[str]:
    codes: list[str] = []

    def add(code: str) -> None:
        if code not in codes:
            codes.append(code)

    for c in evidence.agent_codes:
        add(c)
    for c in evidence.document_codes:
        add(c)
    if not evidence.declared_matches:
        add("identity.declared_mismatch")
    for c in evidence.selfie_codes:
        add(c)
    if evidence.lookup_result is None:
        add("lookup.unavailable")  # never decided without the lookup (R5)
    elif evidence.lookup_result != "match":
        add(LOOKUP_RESULT_CODES.get(evidence.lookup_result, "lookup.unavailable"))
    sim = evidence.lookup_photo_similarity
    if sim is not None and sim < policy.min_lookup_photo_similarity:
        add("lookup.photo_mismatch")
    return codes


def decide(evidence: Evidence, policy: Policy) -> Decision:
    codes = _codes(evidence, policy)
    by_effect: dict[Effect, list[str]] = {e: [] for e in Effect}
    for c in codes:
        by_effect[effect_of(c)].append(c)
    notes = tuple(by_effect[Effect.NOTE])
    v = policy.version
    if by_effect[Effect.REJECT]:
        return Decision(Outcome.REJECTED, None, tuple(by_effect[Effect.REJECT]), notes, v)
    held = max(evidence.cards_in_province, evidence.cards_at_reseller)
    if held >= policy.card_limit:
        return Decision(Outcome.STORE_VISIT_REQUIRED, None, ("policy.card_limit",), notes, v)
    if by_effect[Effect.REVIEW]:
        return Decision(Outcome.NEEDS_REVIEW, None, tuple(by_effect[Effect.REVIEW]), notes, v)
    inactive = tuple(by_effect[Effect.INACTIVE])
    if evidence.face_verdict != "match" and "face.uncertain" not in inactive:
        # No confident face match on record (e.g. the verdict is missing): never activate
        # at the door on it.
        inactive = (*inactive, "face.uncertain")
    if inactive or evidence.delivery == Delivery.NO_DOOR_CHECK:
        return Decision(Outcome.APPROVED, ShipMode.SHIP_INACTIVE, inactive, notes, v)
    return Decision(Outcome.APPROVED, ShipMode.ACTIVATE_ON_HANDOVER, (), notes, v)
