"""Couriers and their tokens (only a SHA-256 of each token is stored)."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.agents import hash_key
from services.storage.models import Courier

TOKEN_PREFIX = "sgc_"


def create_courier(session: Session, name: str) -> tuple[Courier, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    courier = Courier(id="cou_" + secrets.token_hex(8), name=name, token_hash=hash_key(token))
    session.add(courier)
    session.flush()
    return courier, token


def authenticate_courier(session: Session, token: str) -> Courier | None:
    return session.scalars(select(Courier).where(Courier.token_hash == hash_key(token))).first()
