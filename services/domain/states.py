"""Order and SIM life cycles as plain enums."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    RECEIVED = "received"  # stored and committed, waiting for a worker
    VERIFYING = "verifying"  # a worker is reading the images
    CHECKING = "checking"  # images read; national lookup, card count, decision
    WAITING_LOOKUP = "waiting_lookup"  # the lookup is down; retrying until the deadline
    DECIDED = "decided"


class Outcome(StrEnum):
    APPROVED = "approved"
    STORE_VISIT_REQUIRED = "store_visit_required"
    NEEDS_REVIEW = "needs_review"
    REJECTED = "rejected"


class ShipMode(StrEnum):
    ACTIVATE_ON_HANDOVER = "activate_on_handover"  # R6: the courier's door check activates
    SHIP_INACTIVE = "ship_inactive"  # R7: the customer's video check activates


class Delivery(StrEnum):
    DOOR_CHECK = "door_check"
    NO_DOOR_CHECK = "no_door_check"


class SimStatus(StrEnum):
    AVAILABLE = "available"
    RESERVED = "reserved"  # chosen by an order being verified
    AWAITING_HANDOVER = "awaiting_handover"  # approved, door check pending
    SHIPPED_INACTIVE = "shipped_inactive"  # approved, video activation pending
    ACTIVE = "active"
    SUSPENDED = "suspended"


# The cards an ID "holds" for R2: everything issued to it, active or on its way.
HELD_STATUSES = frozenset(
    {
        SimStatus.AWAITING_HANDOVER,
        SimStatus.SHIPPED_INACTIVE,
        SimStatus.ACTIVE,
        SimStatus.SUSPENDED,
    }
)


class HandoverStatus(StrEnum):
    """A door-check delivery (R6)."""

    ASSIGNED = "assigned"  # on a courier's round, not tried yet
    FAILED = "failed"  # tried and refused; may be tried again
    HANDED_OVER = "handed_over"  # matched: the SIM is active
    LOCKED = "locked"  # refused too often: a person reviews the order
    CANCELLED = "cancelled"


# The liveness actions a challenge may ask for (vision.liveness.ACTIONS: a test keeps
# the two lists equal; the API must not import the vision library).
LIVENESS_ACTIONS = ("blink_twice", "turn_left", "turn_right", "open_mouth", "nod")
