"""The carrier's side of agent badges (R4): the signing key, issuing a badge from the
agent registry, and checking a badge online against the registry.

No FastAPI here (the API and the CLI both use it) and no image code: reading a badge
from a photo is :mod:`services.badge_reader`.

The signing key is the Ed25519 PEM at ``settings.resolved_badge_key_file``. In
development and test it is generated on first use (mode 0600, its public key written
beside it); in production it must exist (:class:`BadgeKeyMissing` otherwise, raised at
API start). Whoever holds the public key verifies badges offline; the online check
(:func:`verify_online`) also knows what happened since the badge was printed: a
badge superseded by a newer one, a badge revoked, an agent suspended or revoked.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from services.badges import (
    MAX_TOKEN_CHARS,
    BadgeClaims,
    BadgeStatus,
    badge_url,
    extract_token,
    generate_keypair,
    issue_token,
    load_private_key,
    verify_token,
)
from services.config import Settings
from services.errors import Conflict, Unprocessable
from services.storage.models import Agent, Badge, utcnow

# Short names of the province-level divisions (GB/T 2260 two-digit codes): what a badge's
# scope and the public pages show. An unknown code is shown as the code.
PROVINCE_NAMES: Final[dict[str, str]] = {
    "11": "北京", "12": "天津", "13": "河北", "14": "山西", "15": "内蒙古",
    "21": "辽宁", "22": "吉林", "23": "黑龙江", "31": "上海", "32": "江苏",
    "33": "浙江", "34": "安徽", "35": "福建", "36": "江西", "37": "山东",
    "41": "河南", "42": "湖北", "43": "湖南", "44": "广东", "45": "广西",
    "46": "海南", "50": "重庆", "51": "四川", "52": "贵州", "53": "云南",
    "54": "西藏", "61": "陕西", "62": "甘肃", "63": "青海", "64": "宁夏",
    "65": "新疆",
}  # fmt: skip
SERIAL_PREFIX: Final = "B"


class BadgeKeyMissing(RuntimeError):
    """Production without the carrier's badge signing key."""


# --- the signing key -----------------------------------------------------------------


def public_key_file(private_file: Path) -> Path:
    """Where the public key lies beside ``private_file``: ``badge_private.pem`` ->
    ``badge_public.pem``; any other name ``<stem>.public.pem``."""
    if "private" in private_file.name:
        return private_file.with_name(private_file.name.replace("private", "public"))
    return private_file.with_name(f"{private_file.stem}.public.pem")


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The carrier's badge signing key.

    :raises BadgeKeyMissing: in production when the key file does not exist (in
        development and test it is generated instead).
    :raises ValueError, TypeError: when the file is not an Ed25519 PEM private key.
    """
    path = settings.resolved_badge_key_file
    if not path.exists():
        if settings.env == "production":
            raise BadgeKeyMissing(
                f"the badge signing key {path} does not exist: generate one with "
                "`simgate badge keygen --out DIR` and set SIMGATE_BADGE_KEY_FILE "
                "(in production it is never generated on the fly)"
            )
        _generate(path)
    return load_private_key(path.read_bytes())


def public_key_pem(settings: Settings) -> bytes:
    """The carrier's badge public key (SubjectPublicKeyInfo PEM), derived from the
    signing key so it can never disagree with it."""
    return (
        signing_key(settings)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _generate(path: Path) -> None:
    """Write a new key pair; when another process won the race, keep its key."""
    private_pem, public_pem = generate_keypair()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".badge-key-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and refuses to replace an existing key
        except FileExistsError:
            return
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    public_key_file(path).write_bytes(public_pem)


# --- issuing -------------------------------------------------------------------------


def today(settings: Settings) -> date:
    """``SIMGATE_TODAY`` when set (demos and expiry tests), else the local date."""
    return date.fromisoformat(settings.today) if settings.today else date.today()


def badge_scope(agent: Agent) -> list[str]:
    """Province short names, then products: what the badge says the agent may sell."""
    provinces = [PROVINCE_NAMES.get(p, p) for p in (agent.provinces or {}).get("provinces", [])]
    products = [str(p) for p in (agent.scope or {}).get("products", [])]
    return [*provinces, *products]


def qr_text(settings: Settings, token: str) -> str:
    """What the badge's QR code holds: the check page's URL with the token."""
    return badge_url(token, settings.public_url)


def issue_badge(
    session: Session, settings: Settings, agent: Agent, *, on: date | None = None
) -> Badge:
    """Sign a new badge for ``agent`` from its registry record and store it; the
    agent's earlier badges are revoked (one current badge per agent). Flushes; the
    caller commits.

    The scope lists province names and products; when the QR text would be too dense
    (over :data:`services.badges.MAX_QR_CHARS`, or the token over
    :data:`MAX_TOKEN_CHARS`) the entries that fit are kept with a last ``+N`` entry
    (N more in the registry, which the online check shows in full).

    :raises Conflict: ``agent.not_active`` for a suspended or revoked agent,
        ``agent.no_agent_number`` for one without a carrier agent number.
    :raises Unprocessable: ``badge.too_long`` when even an empty scope does not fit
        (a very long shop name or carrier).
    """
    if agent.status != "active":
        raise Conflict(
            f"agent {agent.id} is {agent.status}: no badge for it", code="agent.not_active"
        )
    if not agent.agent_number:
        raise Conflict(f"agent {agent.id} has no agent number", code="agent.no_agent_number")
    first = on or today(settings)
    key = signing_key(settings)
    serial = SERIAL_PREFIX + secrets.token_hex(6).upper()
    scope = badge_scope(agent)
    token = None
    for keep in range(len(scope), -1, -1):
        entries = scope[:keep] + ([f"+{len(scope) - keep}"] if keep < len(scope) else [])
        claims = BadgeClaims(
            carrier=agent.carrier or settings.carrier,
            agent_number=agent.agent_number,
            agent_name=agent.name,
            scope=tuple(entries),
            issued=first,
            expires=first + timedelta(days=settings.badge_valid_days),
            serial=serial,
        )
        try:
            candidate = issue_token(claims, key)
            qr_text(settings, candidate)
        except ValueError:
            continue
        token = candidate
        break
    if token is None:
        raise Unprocessable(
            f"the badge of agent {agent.agent_number} does not fit a QR code phones read "
            f"(token over {MAX_TOKEN_CHARS} characters even without a scope): shorten the "
            "agent's name or the carrier",
            code="badge.too_long",
        )
    session.execute(
        update(Badge)
        .where(Badge.agent_id == agent.id, Badge.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    row = Badge(
        serial=serial,
        agent_id=agent.id,
        token=token,
        issued=claims.issued,
        expires=claims.expires,
    )
    session.add(row)
    session.flush()
    return row


def current_badge(session: Session, agent_id: str, *, on: date | None = None) -> Badge | None:
    """The agent's newest badge that is not revoked (and, given ``on``, valid that day)."""
    q = select(Badge).where(Badge.agent_id == agent_id, Badge.revoked_at.is_(None))
    if on is not None:
        q = q.where(Badge.issued <= on, Badge.expires >= on)
    return session.scalars(q.order_by(Badge.created_at.desc(), Badge.issued.desc())).first()


def revoked_serials(session: Session) -> list[str]:
    """Serials an offline verifier must refuse: badges revoked (superseded, or of a
    revoked agent) and the badges of agents now suspended or revoked. Sorted."""
    q = (
        select(Badge.serial)
        .join(Agent, Agent.id == Badge.agent_id)
        .where(or_(Badge.revoked_at.is_not(None), Agent.status != "active"))
    )
    return sorted(session.scalars(q))


# --- public details and the online check ---------------------------------------------


def badge_links(settings: Settings, agent_number: str) -> dict[str, str]:
    base = f"{settings.public_url.rstrip('/')}/public/agents/{quote(agent_number, safe='')}"
    return {"png_url": f"{base}/badge.png", "svg_url": f"{base}/badge.svg"}


def public_details(settings: Settings, agent: Agent, badge: Badge | None) -> dict[str, Any]:
    """What anyone may know of an agent: its identifiers, scope, status, current badge.
    (Not its contact, keys or internal reasons.)"""
    provinces = list((agent.provinces or {}).get("provinces", []))
    scope = agent.scope or {}
    return {
        "agent_number": agent.agent_number,
        "name": agent.name,
        "legal_name": agent.legal_name,
        "licence_number": agent.licence_number,
        "carrier": agent.carrier or settings.carrier,
        "status": agent.status,
        "scope": {
            "provinces": provinces,
            "province_names": [PROVINCE_NAMES.get(p, p) for p in provinces],
            "products": list(scope.get("products", [])),
            "channels": list(scope.get("channels", [])),
        },
        "badge": None
        if badge is None or not agent.agent_number
        else {
            "serial": badge.serial,
            "issued": badge.issued.isoformat(),
            "expires": badge.expires.isoformat(),
            **badge_links(settings, agent.agent_number),
        },
    }


def public_agents(session: Session, settings: Settings, *, on: date) -> list[dict[str, Any]]:
    """The published list: active agents with a current badge, by agent number."""
    out: list[dict[str, Any]] = []
    agents = session.scalars(
        select(Agent)
        .where(Agent.status == "active", Agent.agent_number.is_not(None))
        .order_by(Agent.agent_number)
    )
    for agent in agents:
        badge = current_badge(session, agent.id, on=on)
        if badge is not None:
            out.append(public_details(settings, agent, badge))
    return out


def agent_by_number(session: Session, agent_number: str) -> Agent | None:
    return session.scalars(select(Agent).where(Agent.agent_number == agent_number)).first()


@dataclass(frozen=True)
class OnlineCheck:
    """:func:`verify_online`'s answer: the badge check and the registry's agent."""

    status: BadgeStatus
    detail: str
    claims: BadgeClaims | None
    agent: dict[str, Any] | None  # public details of the badge's agent, when signed

    @property
    def genuine(self) -> bool:
        return self.status == "genuine"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "genuine": self.genuine,
            "detail": self.detail,
            "agent": self.agent,
            "claims": None if self.claims is None else self.claims.to_dict(),
        }


def verify_online(
    session: Session,
    settings: Settings,
    token: str,
    *,
    agent_number: str | None = None,
    today: date,
) -> OnlineCheck:
    """Check a badge (a token, or a badge QR code's URL) with the carrier's key and
    the registry. Never raises on bad input.

    Besides :func:`services.badges.verify_token`'s statuses, a signed badge is
    ``revoked`` when the registry does not hold its serial, has revoked it (or
    superseded it by a newer badge), or its agent is now suspended or revoked.
    ``agent_number``: the number of the shop showing the badge (``mismatch``).
    """
    text = extract_token(token) or token
    key = signing_key(settings).public_key()
    check = verify_token(text, key, today=today, expected_agent_number=agent_number)
    claims = check.claims
    if claims is None:
        return OnlineCheck(check.status, check.detail, None, None)
    agent = agent_by_number(session, claims.agent_number)
    row = session.get(Badge, claims.serial)
    problem = None
    if row is None or agent is None or row.agent_id != agent.id:
        problem = f"badge {claims.serial} is not in the carrier's registry"
    elif agent.status != "active":
        problem = f"agent {claims.agent_number} is {agent.status}"
    elif row.revoked_at is not None:
        problem = f"badge {claims.serial} was revoked on {row.revoked_at.date().isoformat()}"
    details = None
    if agent is not None:
        details = public_details(settings, agent, current_badge(session, agent.id, on=today))
    if problem is not None:
        return OnlineCheck("revoked", problem, claims, details)
    return OnlineCheck(check.status, check.detail, claims, details)
