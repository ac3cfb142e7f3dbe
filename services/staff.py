"""Back-office users of the carrier (R8, R10): ``admin`` runs the agent registry and
inspections; ``auditor`` is the regulator's read-only view and the only role that may
export an order's decrypted evidence. Only a SHA-256 of each token is stored."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.agents import hash_key
from services.storage.models import StaffUser

ROLES = ("admin", "auditor")
TOKEN_PREFIX = {"admin": "sga_", "auditor": "sgr_"}


def create_staff(
    session: Session, name: str, role: str, *, token: str | None = None
) -> tuple[StaffUser, str]:
    """A new back-office user and its token (shown once)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    token = token or TOKEN_PREFIX[role] + secrets.token_urlsafe(32)
    user = StaffUser(
        id="stf_" + secrets.token_hex(8), name=name, role=role, token_hash=hash_key(token)
    )
    session.add(user)
    session.flush()
    return user, token


def authenticate_staff(session: Session, token: str) -> StaffUser | None:
    return session.scalars(select(StaffUser).where(StaffUser.token_hash == hash_key(token))).first()
