"""SQLAlchemy 2 models. Schema changes go through Alembic (services/storage/migrations).

Identity data (R10): typed names and numbers are stored encrypted (``declared_enc``);
ID numbers appear elsewhere only as a keyed hash (to count cards, R2) and masked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
    }


class Agent(Base):
    """A licensed sales agent (storefront), R4. Authenticates with API keys (``AgentKey``,
    hashes only). ``status``: active | suspended | revoked (revoked is final)."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("agent_number", name="uq_agents_agent_number"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    webhook_secret: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(20), default="active")
    # Delegation scope (R4): provinces this agent may sell numbers of.
    provinces: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The registry (R4, R8): who the agent is and what it is delegated to do.
    agent_number: Mapped[str | None] = mapped_column(String(40))
    licence_number: Mapped[str | None] = mapped_column(String(40))  # business licence
    legal_name: Mapped[str | None] = mapped_column(String(200))
    carrier: Mapped[str | None] = mapped_column(String(40))
    # {"products": [...], "channels": ["online", "door_to_door"]}
    scope: Mapped[dict[str, Any]] = mapped_column(default=dict)
    contact: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"name","phone","email"}
    # The platform's notification URL for agent events (agent.revoked, ...).
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    status_reason: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AgentKey(Base):
    """One API key of an agent; rotation adds a key, revocation stamps ``revoked_at``."""

    __tablename__ = "agent_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # first characters, to tell keys apart
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class StaffUser(Base):
    """A back-office user of the carrier: ``admin`` (agent registry, inspection) or
    ``auditor`` (the regulator's read-only view, evidence export). Token hash only."""

    __tablename__ = "staff"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Badge(Base):
    """An agent's anti-counterfeit badge (services/badges.py); revoked with the agent."""

    __tablename__ = "badges"
    serial: Mapped[str] = mapped_column(String(40), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), index=True)
    token: Mapped[str] = mapped_column(Text)
    issued: Mapped[dt.date] = mapped_column()
    expires: Mapped[dt.date] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("agent_id", "idempotency_key", name="uq_orders_agent_idempotency"),
        Index("ix_orders_status_updated", "status", "updated_at"),
        Index("ix_orders_agent_created", "agent_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    msisdn: Mapped[str] = mapped_column(String(20))
    province: Mapped[str] = mapped_column(String(2))
    delivery: Mapped[str] = mapped_column(String(20))
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    declared_enc: Mapped[str] = mapped_column(Text)  # AES-GCM, base64: typed name + number
    declared_number_masked: Mapped[str] = mapped_column(String(18))
    id_hash: Mapped[str | None] = mapped_column(String(64), index=True)  # of the number read
    id_number_masked: Mapped[str | None] = mapped_column(String(18))
    status: Mapped[str] = mapped_column(String(20), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(30))
    ship_mode: Mapped[str | None] = mapped_column(String(30))
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"reasons": [], "notes": []}
    # Masked, display-safe evidence (scores, thresholds, versions); the full reading is
    # an encrypted blob (role "evidence").
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    cancelled_at: Mapped[dt.datetime | None] = mapped_column()
    # Channel inspection (R8): keyed hashes only, so clusters can be found without
    # keeping the address or the buyer's address in clear. The address itself is sealed.
    delivery_address_enc: Mapped[str | None] = mapped_column(Text)
    address_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    client_hash: Mapped[str | None] = mapped_column(String(64), index=True)


class Blob(Base):
    """An encrypted file of an order: id_front, id_back, selfie, evidence."""

    __tablename__ = "blobs"
    __table_args__ = (UniqueConstraint("order_id", "role", name="uq_blobs_order_role"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    content_type: Mapped[str] = mapped_column(String(50))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))  # of the plaintext
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Sim(Base):
    """A SIM card of the carrier's inventory (ICCID <-> MSISDN) and whom it is issued to."""

    __tablename__ = "sims"
    iccid: Mapped[str] = mapped_column(String(22), primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(20), unique=True)
    province: Mapped[str] = mapped_column(String(2), index=True)
    status: Mapped[str] = mapped_column(String(20), default="available")
    order_id: Mapped[str | None] = mapped_column(String(40))
    holder_id_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[dt.datetime | None] = mapped_column()
    # Reported by the carrier's network side: last traffic seen (R8: cards activated but
    # never used are a sign of bulk opening). ``usage_reported_at`` says a report exists.
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    usage_reported_at: Mapped[dt.datetime | None] = mapped_column()


class AuditEntry(Base):
    """Append-only, hash-chained: hash = sha256(prev_hash + canonical JSON of the entry)."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column()
    kind: Mapped[str] = mapped_column(String(50))
    subject: Mapped[str] = mapped_column(String(60), index=True)
    actor: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column()
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class WebhookDelivery(Base):
    """Outbox row: one notification to one URL: an order's decision (``order_id``) or an
    agent event such as ``agent.revoked`` (``agent_id``, no order)."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(40), index=True)
    event: Mapped[str] = mapped_column(String(40), default="order.decided")
    url: Mapped[str] = mapped_column(String(2000))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class Courier(Base):
    """A delivery courier; authenticates with a token (hash stored), acts only on the
    orders assigned to their round (R6)."""

    __tablename__ = "couriers"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """The door check of one approved order: who delivers it and how the handover went."""

    __tablename__ = "deliveries"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    courier_id: Mapped[str] = mapped_column(ForeignKey("couriers.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="assigned")
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    assigned_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HandoverAttempt(Base):
    """One door-check attempt; its two photos are blobs named in ``evidence["blobs"]``."""

    __tablename__ = "handover_attempts"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    courier_id: Mapped[str] = mapped_column(ForeignKey("couriers.id"))
    status: Mapped[str] = mapped_column(String(20), default="received")
    result: Mapped[str | None] = mapped_column(String(20))  # handed_over | refused
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column()


class ActivationCode(Base):
    """The one-time code printed on an inactive SIM's pack (R7); hash for checking,
    sealed copy for the pack printer; wrong tries lock it for a while."""

    __tablename__ = "activation_codes"
    iccid: Mapped[str] = mapped_column(ForeignKey("sims.iccid"), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    code_sealed: Mapped[str] = mapped_column(Text)
    failed_tries: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Challenge(Base):
    """A liveness challenge: random actions, a nonce, an expiry; one video per challenge."""

    __tablename__ = "challenges"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    iccid: Mapped[str] = mapped_column(ForeignKey("sims.iccid"), index=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    token_hash: Mapped[str] = mapped_column(String(64))
    actions: Mapped[dict[str, Any]] = mapped_column()  # {"actions": [...]}
    nonce: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="open")
    result: Mapped[str | None] = mapped_column(String(20))  # activated | failed
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    video_blob_id: Mapped[str | None] = mapped_column(String(40))
    fingerprint: Mapped[str | None] = mapped_column(Text)  # ~640 hex chars per second
    client_addr: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column()


class CodeTry(Base):
    """One activation-code try, kept for rate limiting per client address."""

    __tablename__ = "code_tries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_addr: Mapped[str] = mapped_column(String(64), index=True)
    iccid: Mapped[str] = mapped_column(String(22))
    ok: Mapped[bool] = mapped_column()
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class FaceVector(Base):
    """The live face of an order's selfie (128-d dlib embedding), sealed; the worker's
    face index (services/face_index.py) is built from these rows, in ``seq`` order."""

    __tablename__ = "face_vectors"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), unique=True)
    agent_id: Mapped[str] = mapped_column(String(40), index=True)
    id_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    vector_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FaceLink(Base):
    """Two orders whose live faces are the same person (distance under the calibrated
    threshold) although their ID numbers differ: a risk signal (R8)."""

    __tablename__ = "face_links"
    __table_args__ = (UniqueConstraint("order_id", "other_order_id", name="uq_face_links_pair"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(40), index=True)
    other_order_id: Mapped[str] = mapped_column(String(40), index=True)
    distance: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
