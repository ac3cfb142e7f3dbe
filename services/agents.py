"""Sales agents (storefronts, R4) and their API keys. Only a SHA-256 of each key is stored.

An agent is ``active``, ``suspended`` (keys refused, reinstatable) or ``revoked`` (final:
keys, badges and undecided orders are stopped; see services/api/admin.py).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.storage.models import Agent, AgentKey, utcnow

KEY_PREFIX = "sgk_"
STATUSES = ("active", "suspended", "revoked")
CHANNELS = ("online", "door_to_door")


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def add_key(session: Session, agent_id: str, api_key: str | None = None) -> tuple[AgentKey, str]:
    """A new API key for the agent (shown once; only the hash is kept)."""
    key = api_key or KEY_PREFIX + secrets.token_urlsafe(32)
    row = AgentKey(
        id="key_" + secrets.token_hex(8),
        agent_id=agent_id,
        key_hash=hash_key(key),
        prefix=key[:12],
    )
    session.add(row)
    session.flush()
    return row, key


def revoke_keys(session: Session, agent_id: str, *, except_key_id: str | None = None) -> int:
    """Stamp every live key of the agent (but ``except_key_id``) revoked; how many."""
    q = update(AgentKey).where(AgentKey.agent_id == agent_id, AgentKey.revoked_at.is_(None))
    if except_key_id is not None:
        q = q.where(AgentKey.id != except_key_id)
    result = session.execute(q.values(revoked_at=utcnow()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def create_agent(
    session: Session,
    name: str,
    *,
    provinces: list[str] | None = None,
    agent_id: str | None = None,
    api_key: str | None = None,
    **registry: Any,
) -> tuple[Agent, str]:
    """A new agent and its first API key. ``registry``: the other Agent columns
    (agent_number, licence_number, legal_name, carrier, scope, contact, webhook_url)."""
    agent = Agent(
        id=agent_id or "agt_" + secrets.token_hex(8),
        name=name,
        webhook_secret=secrets.token_urlsafe(32),
        status="active",
        provinces={"provinces": sorted(provinces or [])},
        scope=registry.pop("scope", None) or {"products": [], "channels": ["online"]},
        contact=registry.pop("contact", None) or {},
        **registry,
    )
    session.add(agent)
    session.flush()
    _, key = add_key(session, agent.id, api_key)
    return agent, key


def find_key(session: Session, api_key: str) -> tuple[Agent, AgentKey] | None:
    """The agent and key row of ``api_key``, revoked or not (the caller tells them apart,
    so a revoked agent hears "revoked", not "unknown key")."""
    row = session.execute(
        select(Agent, AgentKey)
        .join(AgentKey, AgentKey.agent_id == Agent.id)
        .where(AgentKey.key_hash == hash_key(api_key))
    ).first()
    return None if row is None else (row[0], row[1])


def authenticate(session: Session, api_key: str) -> Agent | None:
    """The agent of a live key, whatever the agent's status (the caller checks it)."""
    found = find_key(session, api_key)
    if found is None or found[1].revoked_at is not None:
        return None
    return found[0]


def in_scope(agent: Agent, province: str) -> bool:
    scope = agent.provinces.get("provinces") or []
    return not scope or province in scope
