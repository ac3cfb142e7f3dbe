"""Stable, dotted reason codes and how each one weighs in a decision.

A code's *effect* is what it does to an order on its own: ``reject`` (the evidence shows
the order must not proceed), ``review`` (a person must look), ``inactive`` (may ship, but
only inactive: the customer's video check decides), or ``note`` (recorded, no effect).
"""

from __future__ import annotations

from enum import StrEnum


class Effect(StrEnum):
    REJECT = "reject"
    REVIEW = "review"
    INACTIVE = "inactive"
    NOTE = "note"


EFFECTS: dict[str, Effect] = {
    # The document (vision.idcard).
    "document.unreadable": Effect.REJECT,
    "document.side_missing": Effect.REJECT,
    "document.number_invalid": Effect.REJECT,
    "document.fields_inconsistent": Effect.REJECT,
    "document.expired": Effect.REJECT,
    "document.not_yet_valid": Effect.REJECT,
    # A repaired number or a field taken from the number: a person confirms it.
    "document.number_corrected": Effect.REVIEW,
    "document.field_from_number": Effect.REVIEW,
    # Uploads the worker could not decode (the API checks structure only).
    "image.unreadable": Effect.REJECT,
    # Capture quality: a photocopy or a photographed screen is a fraud signal.
    "quality.photocopy": Effect.REVIEW,
    "quality.recapture": Effect.REVIEW,
    "quality.blur": Effect.NOTE,
    "quality.glare": Effect.NOTE,
    "quality.low_resolution": Effect.NOTE,
    "quality.incomplete_border": Effect.NOTE,
    "quality.occlusion": Effect.NOTE,
    # The typed identity (R1: cross-checked, never trusted).
    "identity.declared_mismatch": Effect.REJECT,
    # Faces and the handheld selfie (vision.selfie).
    "face.not_found": Effect.REJECT,
    "face.multiple": Effect.REJECT,
    "face.mismatch": Effect.REJECT,
    "face.portrait_not_found": Effect.REVIEW,
    "face.uncertain": Effect.INACTIVE,
    "selfie.card_missing": Effect.REJECT,
    "selfie.card_mismatch": Effect.REJECT,
    "selfie.card_uncertain": Effect.INACTIVE,
    # The national citizen-ID lookup.
    "lookup.name_mismatch": Effect.REJECT,
    "lookup.not_found": Effect.REJECT,
    "lookup.cancelled": Effect.REJECT,
    "lookup.deceased": Effect.REJECT,
    "lookup.photo_mismatch": Effect.REVIEW,
    "lookup.no_photo": Effect.NOTE,
    "lookup.unavailable": Effect.REVIEW,
    "lookup.not_checked": Effect.REVIEW,
    "lookup.request_refused": Effect.REVIEW,
    # The selling agent (R4).
    "agent.revoked": Effect.REJECT,
    # Suspended while the order was being verified: a person decides once the agent is
    # reinstated or revoked.
    "agent.suspended": Effect.REVIEW,
    "agent.out_of_scope": Effect.REJECT,
    # The worker failed on this order's images again and again (a poison message).
    "processing.failed": Effect.REVIEW,
    # R2: handled by its own outcome (store_visit_required), listed for completeness.
    "policy.card_limit": Effect.NOTE,
}


def effect_of(code: str) -> Effect:
    """Unknown codes go to review: a new signal never passes silently."""
    return EFFECTS.get(code, Effect.REVIEW)
