"""services.badge_registry: the carrier's signing key, badges issued from the agent
registry, and the online check against the registry (SQLite, real migrations)."""

from __future__ import annotations

import base64
import stat
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from services import badge_registry as registry
from services.agents import create_agent
from services.badge_reader import read_badge
from services.badges import (
    MAX_QR_CHARS,
    MAX_TOKEN_CHARS,
    BadgeClaims,
    badge_png,
    badge_url,
    extract_token,
    generate_keypair,
    issue_token,
    load_private_key,
    load_public_key,
    verify_token,
)
from services.config import Settings
from services.errors import Conflict
from services.storage.db import session_factory, upgrade
from services.storage.models import Agent, Badge, utcnow
from vision.io import decode_image

TODAY = date(2026, 6, 1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="test", data_dir=tmp_path, carrier="中国移动", today=TODAY.isoformat())


@pytest.fixture
def sessions(settings: Settings) -> sessionmaker[Session]:
    url = settings.resolved_database_url
    upgrade(url)
    return session_factory(url)


def _agent(session: Session, number: str = "SH-0042", **extra: object) -> Agent:
    agent, _ = create_agent(
        session,
        "上海浦东张三数码店",
        provinces=["31", "11"],
        agent_number=number,
        licence_number="91310115MA1K000001",
        legal_name="上海张三数码有限公司",
        scope={"products": ["prepaid"], "channels": ["online"]},
        **extra,
    )
    return agent


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- the key -------------------------------------------------------------------------


def test_key_is_generated_once_and_reused(settings: Settings) -> None:
    path = settings.resolved_badge_key_file
    assert not path.exists()
    first = registry.signing_key(settings)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public_file = registry.public_key_file(path)
    assert public_file.name == "badge_public.pem"
    assert public_file.read_bytes() == registry.public_key_pem(settings)
    before = path.read_bytes()
    second = registry.signing_key(settings)
    assert path.read_bytes() == before
    message = b"same key"
    load_public_key(public_file.read_bytes()).verify(second.sign(message), message)
    load_public_key(public_file.read_bytes()).verify(first.sign(message), message)
    # A process that lost the race to create the key keeps the winner's key.
    registry._generate(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def _production(tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        env="production",
        data_dir=tmp_path,
        blob_key=base64.b64encode(b"p" * 32).decode(),
        id_hash_key="a-real-id-hash-key",
        logistics_token="a-real-logistics-token",
        **extra,  # type: ignore[arg-type]
    )


def test_production_refuses_to_start_without_the_key(tmp_path: Path) -> None:
    from services.api.app import create_app

    prod = _production(tmp_path)
    with pytest.raises(registry.BadgeKeyMissing, match="simgate badge keygen"):
        registry.signing_key(prod)
    with pytest.raises(registry.BadgeKeyMissing):
        create_app(prod)
    assert not prod.resolved_badge_key_file.exists()
    # With a key made by an operator, it starts and signs with that key.
    private_pem, public_pem = generate_keypair()
    key_file = tmp_path / "secrets" / "carrier.pem"
    key_file.parent.mkdir()
    key_file.write_bytes(private_pem)
    prod = _production(tmp_path, badge_key_file=key_file)
    assert registry.public_key_pem(prod) == public_pem
    assert registry.public_key_file(key_file).name == "carrier.public.pem"
    create_app(prod)


# --- issuing and checking ------------------------------------------------------------


def test_issue_and_verify_online_genuine(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session, session.begin():
        agent = _agent(session)
        badge = registry.issue_badge(session, settings, agent)
        token, serial, agent_id = badge.token, badge.serial, agent.id
    public = load_public_key(registry.public_key_pem(settings))
    offline = verify_token(token, public, today=TODAY)
    assert offline.status == "genuine"
    assert offline.claims == BadgeClaims(
        carrier="中国移动",
        agent_number="SH-0042",
        agent_name="上海浦东张三数码店",
        scope=("北京", "上海", "prepaid"),
        issued=TODAY,
        expires=TODAY + timedelta(days=settings.badge_valid_days),
        serial=serial,
    )
    with sessions() as session:
        current = registry.current_badge(session, agent_id, on=TODAY)
        assert current is not None
        assert current.serial == serial
        assert registry.revoked_serials(session) == []
        listed = registry.public_agents(session, settings, on=TODAY)
        assert [a["agent_number"] for a in listed] == ["SH-0042"]
        assert listed[0]["badge"]["serial"] == serial
        assert listed[0]["scope"]["province_names"] == ["北京", "上海"]
        assert "contact" not in listed[0]
        for text in (token, registry.qr_text(settings, token)):
            check = registry.verify_online(session, settings, text, today=TODAY)
            assert check.status == "genuine", check.detail
            assert check.agent is not None
            assert check.agent["licence_number"] == "91310115MA1K000001"
            assert check.to_dict()["claims"]["serial"] == serial
        # Past its last day the same badge is expired, and it leaves the public list.
        late = TODAY + timedelta(days=settings.badge_valid_days + 1)
        assert registry.verify_online(session, settings, token, today=late).status == "expired"
        assert registry.public_agents(session, settings, on=late) == []


def test_revoked_or_suspended_agent_makes_its_badge_revoked(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session, session.begin():
        agent = _agent(session)
        token = registry.issue_badge(session, settings, agent).token
        agent_id = agent.id
    for status in ("suspended", "revoked"):
        with sessions() as session, session.begin():
            row = session.get(Agent, agent_id)
            assert row is not None
            row.status = status  # the Badge row itself is not stamped
        with sessions() as session:
            check = registry.verify_online(session, settings, token, today=TODAY)
            assert check.status == "revoked"
            assert status in check.detail
            assert check.agent is not None
            assert check.agent["status"] == status
            assert len(registry.revoked_serials(session)) == 1
            assert registry.public_agents(session, settings, on=TODAY) == []


def test_revoked_and_superseded_badges_are_revoked(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session, session.begin():
        agent = _agent(session)
        old = registry.issue_badge(session, settings, agent)
        old_token, old_serial = old.token, old.serial
        new = registry.issue_badge(session, settings, agent)
        new_token, new_serial = new.token, new.serial
    assert old_serial != new_serial
    with sessions() as session:
        check = registry.verify_online(session, settings, old_token, today=TODAY)
        assert check.status == "revoked"
        assert old_serial in check.detail
        assert registry.verify_online(session, settings, new_token, today=TODAY).genuine
        assert registry.revoked_serials(session) == [old_serial]
    with sessions() as session, session.begin():
        row = session.get(Badge, new_serial)
        assert row is not None
        row.revoked_at = utcnow()
    with sessions() as session:
        assert registry.verify_online(session, settings, new_token, today=TODAY).status == (
            "revoked"
        )
        assert registry.revoked_serials(session) == sorted([old_serial, new_serial])
        assert registry.public_agents(session, settings, on=TODAY) == []


def test_a_carrier_signed_badge_unknown_to_the_registry_is_revoked(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session, session.begin():
        _agent(session)
    claims = BadgeClaims(
        carrier="中国移动",
        agent_number="SH-0042",
        agent_name="上海浦东张三数码店",
        scope=(),
        issued=TODAY,
        expires=TODAY,
        serial="BNOTSTORED",
    )
    token = issue_token(claims, registry.signing_key(settings))
    with sessions() as session:
        check = registry.verify_online(session, settings, token, today=TODAY)
    assert check.status == "revoked"
    assert "not in the carrier's registry" in check.detail


def test_forged_badges(settings: Settings, sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        agent = _agent(session)
        badge = registry.issue_badge(session, settings, agent)
        token, serial = badge.token, badge.serial
    prefix, payload, signature = token.split(".")
    sig = bytearray(base64.urlsafe_b64decode(signature + "=="))
    sig[10] ^= 0x40
    flipped = f"{prefix}.{payload}.{_b64(bytes(sig))}"
    other_private, _ = generate_keypair()
    same_claims = verify_token(
        token, load_public_key(registry.public_key_pem(settings)), today=TODAY
    ).claims
    assert same_claims is not None
    assert same_claims.serial == serial
    other = issue_token(same_claims, load_private_key(other_private))
    with sessions() as session:
        for text in (flipped, other, registry.qr_text(settings, other)):
            check = registry.verify_online(session, settings, text, today=TODAY)
            assert check.status == "forged"
            assert check.agent is None
            assert check.claims is None
        for junk in ("", "SGB1.x.y", "https://evil.example/verify/agent?token=nope", "€" * 5000):
            assert registry.verify_online(session, settings, junk, today=TODAY).status == (
                "malformed"
            )


def test_badge_copied_onto_another_shop_is_a_mismatch(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session, session.begin():
        shop_a = _agent(session, "SH-0042")
        _agent(session, "GZ-0777")
        token = registry.issue_badge(session, settings, shop_a).token
    with sessions() as session:
        check = registry.verify_online(
            session, settings, token, agent_number="GZ-0777", today=TODAY
        )
        assert check.status == "mismatch"
        assert check.agent is not None
        assert check.agent["agent_number"] == "SH-0042"
        same = registry.verify_online(session, settings, token, agent_number="SH-0042", today=TODAY)
        assert same.genuine


def test_no_badge_for_an_agent_not_active(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session, session.begin():
        agent = _agent(session)
        agent.status = "suspended"
        with pytest.raises(Conflict) as info:
            registry.issue_badge(session, settings, agent)
        assert info.value.code == "agent.not_active"
        assert info.value.status == 409


def test_a_long_scope_is_cut_to_fit_a_readable_qr(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    provinces = sorted(registry.PROVINCE_NAMES)
    with sessions() as session, session.begin():
        agent, _ = create_agent(
            session,
            "广东省广州市天河区某某通信器材经营部",
            provinces=provinces,
            agent_number="GD-2026-000123",
            scope={"products": ["prepaid", "postpaid", "iot"], "channels": ["online"]},
        )
        token = registry.issue_badge(session, settings, agent).token
    assert len(token) <= MAX_TOKEN_CHARS
    assert len(registry.qr_text(settings, token)) <= MAX_QR_CHARS
    claims = verify_token(
        token, load_public_key(registry.public_key_pem(settings)), today=TODAY
    ).claims
    assert claims is not None
    kept = claims.scope[:-1]
    assert 0 < len(kept) < len(provinces) + 3
    assert claims.scope[-1] == f"+{len(provinces) + 3 - len(kept)}"
    assert kept[0] == "北京"


# --- the QR text ---------------------------------------------------------------------


def test_qr_url_form_reads_back_to_the_token(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session, session.begin():
        token = registry.issue_badge(session, settings, _agent(session)).token
    url = registry.qr_text(settings, token)
    assert url == f"{settings.public_url}/verify/agent?token={token}"
    pixels = decode_image(badge_png(url, box_size=4)).pixels
    assert read_badge(pixels) == token
    assert extract_token(url) == token
    assert extract_token(token) == token
    assert extract_token(f"HTTPS://verify.example.cn/verify/agent?x=1&token={token}") == token
    for text in (
        "https://example.cn/agent?id=1",
        f"ftp://example.cn/?token={token}",
        f"https://example.cn/?token={token}&token={token}",
        "SGB1" * 1000,
    ):
        assert extract_token(text) is None
    with pytest.raises(ValueError, match="http"):
        badge_url(token, "javascript:alert(1)")
    with pytest.raises(ValueError, match=str(MAX_QR_CHARS)):
        badge_url(token, "https://" + "x" * 200 + ".cn")
