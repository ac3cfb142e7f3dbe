"""Agent badges (R4) through real processes: the admin issues a badge over HTTP, the
public endpoints publish the agent, its QR image and the carrier's key, and a photo of
the badge (pasted on a shop sign, in perspective, blurred, JPEG) is verified offline by
``simgate badge verify`` and online by ``GET /verify/agent``: genuine, forged, revoked,
and copied onto another shop."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
import pytest

from services.badges import (
    badge_png,
    badge_url,
    generate_keypair,
    issue_token,
    load_private_key,
    load_public_key,
    verify_token,
)
from tests.integration.conftest import LiveStack

pytestmark = [pytest.mark.slow, pytest.mark.integration]
SIMGATE = (sys.executable, "-m", "services.cli")
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@dataclass
class Shop:
    agent_id: str
    number: str
    name: str
    badge: dict[str, Any]


def _path(url: str) -> str:
    """The path of an absolute URL the API built from SIMGATE_PUBLIC_URL (the test
    stack listens on another port)."""
    return urlsplit(url).path


def _shop(live: LiveStack, prefix: str, name: str) -> Shop:
    number = f"{prefix}-{secrets.token_hex(3).upper()}"
    r = httpx.post(
        f"{live.api}/v1/admin/agents",
        json={
            "name": name,
            "agent_number": number,
            "licence_number": "91310115MA1K" + secrets.token_hex(3).upper(),
            "legal_name": f"{name}有限公司",
            "provinces": ["31", "44"],
            "products": ["prepaid"],
            "channels": ["online"],
            "contact": {"name": "张三", "phone": "13800000000"},
        },
        headers=live.admin,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    agent_id = r.json()["agent"]["id"]
    r = httpx.post(f"{live.api}/v1/admin/agents/{agent_id}/badge", headers=live.admin, timeout=10)
    assert r.status_code == 201, r.text
    return Shop(agent_id, number, name, r.json())


def _photo(png: bytes, out: Path) -> Path:
    """The QR pasted on a shop-sign-like board, seen ~18 degrees off-axis, blurred
    (sigma 1), JPEG quality 80."""
    code = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert code is not None
    h, w = 1000, 1400
    canvas = np.full((h, w, 3), (40, 90, 160), np.uint8)  # a brick-coloured wall
    cv2.rectangle(canvas, (150, 80), (1250, 920), (235, 235, 230), -1)  # the sign board
    cv2.rectangle(canvas, (150, 80), (1250, 200), (30, 30, 180), -1)
    cv2.putText(canvas, "AUTHORISED AGENT", (260, 165), cv2.FONT_HERSHEY_SIMPLEX, 2, (255,) * 3, 4)
    cv2.putText(canvas, "SIM CARDS", (920, 560), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (20,) * 3, 3)
    side = code.shape[0]
    src = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    # Turned about a vertical axis (the far edge shorter) and a little rolled.
    dst = np.float32([[260, 250], [780, 300], [770, 800], [240, 860]])
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(code, matrix, (w, h), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((side, side), 255, np.uint8), matrix, (w, h))
    canvas[mask > 127] = warped[mask > 127]
    canvas = cv2.GaussianBlur(canvas, (0, 0), 1.0)
    ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    out.write_bytes(jpeg.tobytes())
    return out


def _cli(live: LiveStack, photo: Path, key: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [*SIMGATE, "badge", "verify", str(photo), "--public-key", str(key), "--json", *extra],
        env=live.stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _check(live: LiveStack, token: str, **params: str) -> dict[str, Any]:
    r = httpx.get(f"{live.api}/verify/agent", params={"token": token, **params}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture(scope="module")
def key_file(live: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = httpx.get(f"{live.api}/public/badge-key.pem", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-pem-file")
    load_public_key(r.content)
    # The key the API publishes is the one the stack generated on first use.
    on_disk = live.stack.settings.data_dir / "keys" / "badge_public.pem"
    assert on_disk.read_bytes() == r.content
    path = tmp_path_factory.mktemp("badge-key") / "carrier.pem"
    path.write_bytes(r.content)
    return path


def test_genuine_badge_from_a_photo(live: LiveStack, key_file: Path, tmp_path: Path) -> None:
    shop = _shop(live, "SH", "上海浦东张三数码店")
    assert shop.badge["qr_text"].endswith(f"/verify/agent?token={shop.badge['token']}")
    r = httpx.get(f"{live.api}{_path(shop.badge['png_url'])}", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    photo = _photo(r.content, tmp_path / "shop.jpg")

    code, out = _cli(live, photo, key_file)
    assert code == 0, out
    assert out["status"] == "genuine"
    assert out["token"] == shop.badge["token"]
    assert out["claims"]["agent_number"] == shop.number
    assert out["claims"]["agent_name"] == shop.name
    assert out["claims"]["serial"] == shop.badge["serial"]
    assert out["claims"]["scope"] == ["上海", "广东", "prepaid"]

    body = _check(live, shop.badge["token"])
    assert body["status"] == "genuine"
    assert body["genuine"] is True
    assert body["agent"]["agent_number"] == shop.number
    assert body["agent"]["status"] == "active"
    assert "contact" not in body["agent"]
    # The QR's whole URL is accepted as the token too.
    assert _check(live, shop.badge["qr_text"])["status"] == "genuine"

    svg = httpx.get(f"{live.api}{_path(shop.badge['svg_url'])}", timeout=10)
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert ET.fromstring(svg.content).tag.endswith("svg")


def test_forged_badge(live: LiveStack, key_file: Path, tmp_path: Path) -> None:
    shop = _shop(live, "SH", "上海徐汇李四通信")
    claims = verify_token(
        shop.badge["token"],
        load_public_key(key_file.read_bytes()),
        today=date.fromisoformat(shop.badge["issued"]),
    ).claims
    assert claims is not None
    # The same claims, a valid QR code, signed by a key that is not the carrier's.
    other_private, _ = generate_keypair()
    forged = issue_token(claims, load_private_key(other_private))
    png = badge_png(badge_url(forged, live.stack.settings.public_url))
    code, out = _cli(live, _photo(png, tmp_path / "forged.jpg"), key_file)
    assert code == 1
    assert out["status"] == "forged"
    assert out["claims"] is None

    body = _check(live, forged)
    assert body["status"] == "forged"
    assert body["agent"] is None
    assert body["claims"] is None


def test_badge_of_a_revoked_agent(live: LiveStack, key_file: Path, tmp_path: Path) -> None:
    shop = _shop(live, "GZ", "广州天河王五手机店")
    png = httpx.get(f"{live.api}{_path(shop.badge['png_url'])}", timeout=10).content
    photo = _photo(png, tmp_path / "revoked.jpg")
    listed = httpx.get(f"{live.api}/public/agents", timeout=10).json()
    assert shop.number in [a["agent_number"] for a in listed["agents"]]

    r = httpx.post(
        f"{live.api}/v1/admin/agents/{shop.agent_id}/revoke",
        json={"reason": "sold SIM cards without checking identities"},
        headers=live.admin,
        timeout=30,
    )
    assert r.status_code == 200, r.text

    body = _check(live, shop.badge["token"])
    assert body["status"] == "revoked"
    assert body["agent"]["status"] == "revoked"
    assert body["agent"]["badge"] is None

    revoked = httpx.get(f"{live.api}/public/badges/revoked", timeout=10).json()
    assert shop.badge["serial"] in revoked["serials"]
    # Offline, the photo alone still looks genuine; with the carrier's list it is not.
    assert _cli(live, photo, key_file)[1]["status"] == "genuine"
    args = [a for s in revoked["serials"] for a in ("--revoked", s)]
    code, out = _cli(live, photo, key_file, *args)
    assert code == 1
    assert out["status"] == "revoked"

    listed = httpx.get(f"{live.api}/public/agents", timeout=10).json()
    assert shop.number not in [a["agent_number"] for a in listed["agents"]]
    for ext in ("png", "svg"):
        r = httpx.get(f"{live.api}/public/agents/{shop.number}/badge.{ext}", timeout=10)
        assert r.status_code == 404
        assert r.json()["error"] == "badge.not_found"
    r = httpx.post(
        f"{live.api}/v1/admin/agents/{shop.agent_id}/badge", headers=live.admin, timeout=10
    )
    assert r.status_code == 409
    assert r.json()["error"] == "agent.not_active"

    page = httpx.get(
        f"{live.api}/verify/agent", params={"token": shop.badge["token"]}, headers=BROWSER
    )
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "已吊销" in page.text
    assert "Revoked" in page.text


def test_badge_copied_onto_another_shop(live: LiveStack, key_file: Path, tmp_path: Path) -> None:
    genuine = _shop(live, "SH", "上海静安赵六数码")
    copier = _shop(live, "SZ", "深圳福田某店")
    body = _check(live, genuine.badge["token"], agent_number=copier.number)
    assert body["status"] == "mismatch"
    assert body["agent"]["agent_number"] == genuine.number
    assert genuine.number in body["detail"]
    assert _check(live, genuine.badge["token"], agent_number=genuine.number)["genuine"]

    png = httpx.get(f"{live.api}{_path(genuine.badge['png_url'])}", timeout=10).content
    photo = _photo(png, tmp_path / "copied.jpg")
    code, out = _cli(live, photo, key_file, "--agent-number", copier.number)
    assert code == 1
    assert out["status"] == "mismatch"
    code, out = _cli(live, photo, key_file, "--agent-number", genuine.number)
    assert code == 0


def test_a_new_badge_supersedes_the_old_one(live: LiveStack) -> None:
    shop = _shop(live, "BJ", "北京海淀孙七通讯")
    r = httpx.post(
        f"{live.api}/v1/admin/agents/{shop.agent_id}/badge", headers=live.admin, timeout=10
    )
    assert r.status_code == 201
    new = r.json()
    assert new["serial"] != shop.badge["serial"]
    assert _check(live, shop.badge["token"])["status"] == "revoked"
    assert _check(live, new["token"])["status"] == "genuine"
    listed = httpx.get(f"{live.api}/public/agents", timeout=10).json()["agents"]
    mine = [a for a in listed if a["agent_number"] == shop.number]
    assert [a["badge"]["serial"] for a in mine] == [new["serial"]]
    revoked = httpx.get(f"{live.api}/public/badges/revoked", timeout=10).json()["serials"]
    assert shop.badge["serial"] in revoked
    assert new["serial"] not in revoked


def test_public_pages_and_checks_for_browsers(live: LiveStack) -> None:
    shop = _shop(live, "CD", '<script>alert("x")</script>成都&店')
    page = httpx.get(f"{live.api}/public/agents/page", headers=BROWSER, timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in page.text
    assert "授权代理商名单" in page.text
    assert "Licensed sales agents" in page.text
    assert "代理商编号" in page.text
    assert shop.number in page.text
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;成都&amp;店" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]

    listed = httpx.get(f"{live.api}/public/agents", timeout=10)
    assert listed.headers["content-type"].startswith("application/json")
    entry = next(a for a in listed.json()["agents"] if a["agent_number"] == shop.number)
    assert entry["name"] == shop.name
    assert entry["scope"] == {
        "provinces": ["31", "44"],
        "province_names": ["上海", "广东"],
        "products": ["prepaid"],
        "channels": ["online"],
    }
    assert entry["badge"]["serial"] == shop.badge["serial"]
    assert set(entry) >= {"licence_number", "legal_name", "carrier"}

    verdict = httpx.get(
        f"{live.api}/verify/agent", params={"token": shop.badge["token"]}, headers=BROWSER
    )
    assert verdict.status_code == 200
    assert verdict.headers["content-type"].startswith("text/html")
    assert verdict.headers["cache-control"] == "no-store"
    assert "真实有效" in verdict.text
    assert "Genuine badge" in verdict.text
    assert 'class="verdict ok"' in verdict.text
    assert "<script>" not in verdict.text
    # The same URL asks for JSON explicitly.
    as_json = httpx.get(
        f"{live.api}/verify/agent",
        params={"token": shop.badge["token"], "format": "json"},
        headers=BROWSER,
    )
    assert as_json.json()["status"] == "genuine"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"token": ""},
        {"token": "SGB1." + "A" * 5000},
        {"token": "x", "agent_number": "N" * 101},
    ],
)
def test_verify_refuses_missing_or_oversized_input(live: LiveStack, params: dict[str, str]) -> None:
    r = httpx.get(f"{live.api}/verify/agent", params=params, timeout=10)
    assert r.status_code == 422
    assert r.json()["error"].startswith("badge.")
    page = httpx.get(f"{live.api}/verify/agent", params=params, headers=BROWSER, timeout=10)
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert 'class="verdict bad"' in page.text


@pytest.mark.parametrize(
    "token",
    [
        "hello",
        "SGB1.%%%.%%%",
        "SGB1.eyJhIjoxfQ.AAAA",
        "https://evil.example/verify/agent?token=SGB1.x.y",
        "\u202e\u0000\ufffd" * 10,
    ],
)
def test_verify_answers_garbage_as_malformed(live: LiveStack, token: str) -> None:
    body = _check(live, token)
    assert body["status"] == "malformed"
    assert body["genuine"] is False
    page = httpx.get(
        f"{live.api}/verify/agent", params={"token": token}, headers=BROWSER, timeout=10
    )
    assert page.status_code == 200
    assert "无法识别" in page.text
