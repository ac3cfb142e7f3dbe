"""Tests for services.badges and services.badge_cli: signed agent badges as QR codes."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.badge_cli import badge
from services.badge_reader import read_badge
from services.badges import (
    MAX_TOKEN_CHARS,
    BadgeClaims,
    badge_png,
    badge_svg,
    generate_keypair,
    issue_token,
    load_private_key,
    load_public_key,
    verify_token,
)
from vision.io import decode_image

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "orders"
TODAY = date(2026, 6, 1)

CLAIMS = BadgeClaims(
    carrier="中国移动",
    agent_number="SH-0042",
    agent_name="上海浦东张三数码店",
    scope=("上海", "5G"),
    issued=date(2026, 1, 1),
    expires=date(2026, 12, 31),
    serial="B2026000123",
)


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_keypair()


@pytest.fixture(scope="module")
def token(keys: tuple[bytes, bytes]) -> str:
    return issue_token(CLAIMS, load_private_key(keys[0]))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- tokens --------------------------------------------------------------------------


def test_round_trip_is_genuine_with_cjk_claims(keys: tuple[bytes, bytes], token: str) -> None:
    assert token.startswith("SGB1.")
    assert token.isascii()
    assert len(token) < 300
    check = verify_token(token, load_public_key(keys[1]), today=TODAY)
    assert check.status == "genuine"
    assert check.genuine
    assert check.claims == CLAIMS
    assert check.claims.agent_name == "上海浦东张三数码店"


def test_payload_is_canonical_utf8_json(token: str) -> None:
    payload = token.split(".")[1]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert "张三".encode() in raw  # UTF-8, not \\u escapes
    assert b" " not in raw
    data = json.loads(raw)
    assert list(data) == sorted(data)


def test_tampered_payload_is_forged(keys: tuple[bytes, bytes], token: str) -> None:
    prefix, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    data = json.loads(raw)
    data["e"] = "2030-12-31"
    forged_payload = _b64(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())
    check = verify_token(
        f"{prefix}.{forged_payload}.{signature}", load_public_key(keys[1]), today=TODAY
    )
    assert check.status == "forged"
    assert check.claims is None


def test_flipped_signature_is_forged(keys: tuple[bytes, bytes], token: str) -> None:
    prefix, payload, signature = token.split(".")
    sig = bytearray(base64.urlsafe_b64decode(signature + "=="))
    sig[0] ^= 1
    check = verify_token(
        f"{prefix}.{payload}.{_b64(bytes(sig))}", load_public_key(keys[1]), today=TODAY
    )
    assert check.status == "forged"


def test_other_key_is_forged(keys: tuple[bytes, bytes]) -> None:
    other_private, _ = generate_keypair()
    token = issue_token(CLAIMS, load_private_key(other_private))
    assert verify_token(token, load_public_key(keys[1]), today=TODAY).status == "forged"


def test_expired_and_not_yet_valid(keys: tuple[bytes, bytes], token: str) -> None:
    public = load_public_key(keys[1])
    assert verify_token(token, public, today=date(2026, 12, 31)).status == "genuine"
    check = verify_token(token, public, today=date(2027, 1, 1))
    assert check.status == "expired"
    assert check.claims == CLAIMS
    assert verify_token(token, public, today=date(2025, 12, 31)).status == "expired"


def test_revoked_serial(keys: tuple[bytes, bytes], token: str) -> None:
    check = verify_token(
        token, load_public_key(keys[1]), today=TODAY, revoked_serials=frozenset({"B2026000123"})
    )
    assert check.status == "revoked"
    assert check.claims == CLAIMS


def test_agent_number_mismatch(keys: tuple[bytes, bytes], token: str) -> None:
    public = load_public_key(keys[1])
    assert (
        verify_token(token, public, today=TODAY, expected_agent_number="SH-0042").status
        == "genuine"
    )
    check = verify_token(token, public, today=TODAY, expected_agent_number="GZ-0777")
    assert check.status == "mismatch"
    assert "SH-0042" in check.detail


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "https://example.cn/agent?id=1",
        "SGB1.",
        "SGB1.abc",
        "SGB2.eyJhIjoxfQ.AAAA",
        "SGB1.not base64!.AAAA",
        "SGB1.eyJhIjoxfQ.AAAA",  # signature too short
        "SGB1.a.b.c",
        "SGB1." + "A" * 5000,
    ],
)
def test_malformed_strings(keys: tuple[bytes, bytes], text: str) -> None:
    check = verify_token(text, load_public_key(keys[1]), today=TODAY)
    assert check.status == "malformed"
    assert check.claims is None


def test_signed_garbage_claims_are_malformed(keys: tuple[bytes, bytes]) -> None:
    signed = "SGB1." + _b64(b'{"x":1}')
    signature = load_private_key(keys[0]).sign(signed.encode())
    check = verify_token(f"{signed}.{_b64(signature)}", load_public_key(keys[1]), today=TODAY)
    assert check.status == "malformed"


def test_claims_validation_and_size_limit(keys: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValueError, match="expires"):
        replace(CLAIMS, expires=date(2025, 1, 1))
    with pytest.raises(ValueError, match="agent_number"):
        replace(CLAIMS, agent_number=" ")
    assert BadgeClaims.from_dict(CLAIMS.to_dict()) == CLAIMS
    huge = replace(CLAIMS, scope=tuple(f"省份{i}" for i in range(40)))
    with pytest.raises(ValueError, match=str(MAX_TOKEN_CHARS)):
        issue_token(huge, load_private_key(keys[0]))


def test_key_loaders_refuse_wrong_material(keys: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValueError, match="PUBLIC KEY"):
        load_public_key(keys[0])
    with pytest.raises(ValueError, match="PEM"):
        load_private_key(b"not a key")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(TypeError, match="Ed25519"):
        load_private_key(ec_pem)


# --- QR codes ------------------------------------------------------------------------


def _photo_with_badge(png: bytes) -> bytes:
    """The badge pasted on a selfie fixture, in perspective, blurred, JPEG q80."""
    code = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    background = cv2.imread(str(FIXTURES / "expired_selfie.jpg"), cv2.IMREAD_COLOR)
    assert background is not None
    h, w = background.shape[:2]
    side = code.shape[0]
    src = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    # A tilted quad about 380 px across in the lower half of the frame.
    dst = np.float32([[300, 700], [690, 740], [660, 1110], [280, 1060]])
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(code, matrix, (w, h), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((side, side), 255, np.uint8), matrix, (w, h))
    photo = background.copy()
    photo[mask > 127] = warped[mask > 127]
    photo = cv2.GaussianBlur(photo, (0, 0), 1.0)
    ok, jpeg = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return jpeg.tobytes()


def test_qr_round_trip_through_a_degraded_photo(keys: tuple[bytes, bytes], token: str) -> None:
    png = badge_png(token)
    assert png.startswith(b"\x89PNG")
    pixels: npt.NDArray[np.uint8] = decode_image(_photo_with_badge(png)).pixels
    read = read_badge(pixels)
    assert read == token
    assert verify_token(read, load_public_key(keys[1]), today=TODAY).status == "genuine"


def test_read_badge_ignores_other_codes() -> None:
    background = cv2.imread(str(FIXTURES / "expired_selfie.jpg"), cv2.IMREAD_COLOR)
    assert read_badge(background) is None


def test_svg_is_valid_xml_with_shapes(token: str) -> None:
    svg = badge_svg(token)
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag.endswith("svg")
    shapes = [el for el in root.iter() if el.tag.split("}")[-1] in ("rect", "path")]
    assert shapes


# --- CLI -----------------------------------------------------------------------------


def test_cli_keygen_issue_verify(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(badge, ["keygen", "--out", str(tmp_path / "keys")])
    assert result.exit_code == 0, result.output
    private = tmp_path / "keys" / "badge_private.pem"
    public = tmp_path / "keys" / "badge_public.pem"
    assert private.stat().st_mode & 0o077 == 0
    again = runner.invoke(badge, ["keygen", "--out", str(tmp_path / "keys")])
    assert again.exit_code == 2
    assert json.loads(again.output)["error"] == "output.exists"

    png = tmp_path / "badge.png"
    svg = tmp_path / "badge.svg"
    result = runner.invoke(
        badge,
        [
            "issue",
            "--private-key",
            str(private),
            "--claims",
            json.dumps(CLAIMS.to_dict(), ensure_ascii=False),
            "--png",
            str(png),
            "--svg",
            str(svg),
        ],
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("SGB1.")
    ET.fromstring(svg.read_bytes())

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(_photo_with_badge(png.read_bytes()))
    args = ["verify", str(photo), "--public-key", str(public), "--today", "2026-06-01"]
    result = runner.invoke(badge, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["status"] == "genuine"
    assert out["claims"]["agent_name"] == CLAIMS.agent_name

    result = runner.invoke(badge, [*args, "--revoked", "B2026000123"])
    assert result.exit_code == 1
    assert "revoked" in result.output

    # Verified with another carrier's key: forged.
    runner.invoke(badge, ["keygen", "--out", str(tmp_path / "other")])
    other = tmp_path / "other" / "badge_public.pem"
    result = runner.invoke(
        badge, ["verify", str(photo), "--public-key", str(other), "--today", "2026-06-01", "--json"]
    )
    assert result.exit_code == 1
    assert json.loads(result.output)["status"] == "forged"

    # A photo without any QR code, and a file that is not an image.
    result = runner.invoke(
        badge, ["verify", str(FIXTURES / "expired_selfie.jpg"), "--public-key", str(public)]
    )
    assert result.exit_code == 2
    assert json.loads(result.output)["error"] == "badge.not_found"
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    result = runner.invoke(badge, ["verify", str(junk), "--public-key", str(public)])
    assert result.exit_code == 2
    assert set(json.loads(result.output)) == {"error", "detail"}


def test_cli_issue_refuses_bad_claims(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    private = tmp_path / "k.pem"
    private.write_bytes(keys[0])
    result = CliRunner().invoke(
        badge,
        ["issue", "--private-key", str(private), "--claims", '{"carrier": "x"}', "--png", "o.png"],
    )
    assert result.exit_code == 2
    assert json.loads(result.output)["error"] == "claims.invalid"
