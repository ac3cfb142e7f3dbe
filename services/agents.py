"""Sales agents (storefronts) and their API keys. Only a SHA-256 of each key is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.storage.models import Agent

KEY_PREFIX = "sgk_"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_agent(
    session: Session,
    name: str,
    *,
    provinces: list[str] | None = None,
    agent_id: str | None = None,
    api_key: str | None = None,
) -> tuple[Agent, str]:
    """A new agent and its API key (shown once; only the hash is kept)."""
    key = api_key or KEY_PREFIX + secrets.token_urlsafe(32)
    agent = Agent(
        id=agent_id or "agt_" + secrets.token_hex(8),
        name=name,
        api_key_hash=hash_key(key),
        webhook_secret=secrets.token_urlsafe(32),
        status="active",
        provinces={"provinces": sorted(provinces or [])},
    )
    session.add(agent)
    session.flush()
    return agent, key


def authenticate(session: Session, api_key: str) -> Agent | None:
    return session.scalars(select(Agent).where(Agent.api_key_hash == hash_key(api_key))).first()


def in_scope(agent: Agent, province: str) -> bool:
    scope = agent.provinces.get("provinces") or []
    return not scope or province in scope
