"""``simgate badge``: issue and verify sales agents' anti-counterfeit badges offline.

Registered in :mod:`services.cli`. ``badge verify`` exits 0 for a genuine badge, 1 for
any other status (forged, expired, revoked, mismatch, malformed), and 2 with
``{"error": code, "detail": ...}`` when the photo or key cannot be read or the photo
shows no badge. ``issue`` and ``keygen`` exit 2 with the same JSON on bad input.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import click

from services.badges import (
    BadgeClaims,
    badge_png,
    badge_svg,
    generate_keypair,
    issue_token,
    load_private_key,
    load_public_key,
    verify_token,
)

EXIT_NOT_GENUINE = 1
EXIT_UNREADABLE = 2

PRIVATE_KEY_FILE = "badge_private.pem"
PUBLIC_KEY_FILE = "badge_public.pem"


def verify_photo(
    photo: Path,
    public_key_pem: bytes,
    *,
    today: date,
    revoked: frozenset[str] = frozenset(),
    agent_number: str | None = None,
) -> dict[str, Any]:
    """Read the badge in ``photo`` and verify it; ``{"error", "detail"}`` when the photo
    is unreadable or shows no badge."""
    from services.badge_reader import read_badge
    from vision.errors import VisionError
    from vision.io import load_image

    try:
        key = load_public_key(public_key_pem)
    except (ValueError, TypeError) as exc:
        return {"error": "key.invalid", "detail": str(exc)}
    try:
        pixels = load_image(photo).pixels
    except VisionError as exc:
        return {"error": exc.code, "detail": exc.message}
    except OSError as exc:
        return {"error": "image.unreadable", "detail": str(exc)}
    token = read_badge(pixels)
    if token is None:
        return {"error": "badge.not_found", "detail": "no SGB1 badge QR code in the photo"}
    check = verify_token(
        token,
        key,
        today=today,
        revoked_serials=revoked,
        expected_agent_number=agent_number,
    )
    return {
        "photo": str(photo),
        "status": check.status,
        "genuine": check.genuine,
        "detail": check.detail,
        "claims": None if check.claims is None else check.claims.to_dict(),
        "token": token,
        "today": today.isoformat(),
    }


@click.group("badge")
def badge() -> None:
    """Sales agents' anti-counterfeit badges (signed QR codes)."""


@badge.command("verify")
@click.argument("photo", type=click.Path(dir_okay=False))
@click.option(
    "--public-key",
    "public_key",
    required=True,
    type=click.Path(dir_okay=False),
    help="The carrier's badge public key (PEM).",
)
@click.option("--today", default=None, help="Check validity on this date (YYYY-MM-DD).")
@click.option("--revoked", multiple=True, help="A revoked serial; repeat for more.")
@click.option("--agent-number", default=None, help="The number of the shop showing it.")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON result.")
def verify(
    photo: str,
    public_key: str,
    today: str | None,
    revoked: tuple[str, ...],
    agent_number: str | None,
    as_json: bool,
) -> None:
    """Verify the agent badge QR code in PHOTO, offline."""
    try:
        day = date.today() if today is None else _parse_day(today)
    except ValueError as exc:
        _fail("usage.invalid_date", str(exc))
    pem = _read_file(public_key, "key.unreadable")
    result = verify_photo(
        Path(photo),
        pem,
        today=day,
        revoked=frozenset(revoked),
        agent_number=agent_number,
    )
    if "error" in result:
        _fail(result["error"], result["detail"])
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        click.echo(f"{photo}: {result['status']} ({result['detail']})")
    sys.exit(0 if result["genuine"] else EXIT_NOT_GENUINE)


@badge.command("issue")
@click.option(
    "--private-key",
    "private_key",
    required=True,
    type=click.Path(dir_okay=False),
    help="The carrier's badge private key (PEM).",
)
@click.option(
    "--claims",
    "claims_json",
    required=True,
    help="Claims as a JSON object (carrier, agent_number, agent_name, scope, issued, "
    "expires, serial), or @FILE to read it from a file.",
)
@click.option("--png", "png_out", required=True, type=click.Path(dir_okay=False))
@click.option("--svg", "svg_out", default=None, type=click.Path(dir_okay=False))
def issue(private_key: str, claims_json: str, png_out: str, svg_out: str | None) -> None:
    """Sign a badge and render it as a QR code; prints the token."""
    pem = _read_file(private_key, "key.unreadable")
    try:
        key = load_private_key(pem)
    except (ValueError, TypeError) as exc:
        _fail("key.invalid", str(exc))
    if claims_json.startswith("@"):
        text = _read_file(claims_json[1:], "claims.unreadable").decode("utf-8", "replace")
    else:
        text = claims_json
    try:
        claims = BadgeClaims.from_dict(json.loads(text))
        token = issue_token(claims, key)
    except (ValueError, TypeError) as exc:
        _fail("claims.invalid", str(exc))
    try:
        Path(png_out).write_bytes(badge_png(token))
        if svg_out is not None:
            Path(svg_out).write_text(badge_svg(token), encoding="utf-8")
    except OSError as exc:
        _fail("output.unwritable", str(exc))
    click.echo(token)


@badge.command("keygen")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
def keygen(out_dir: str) -> None:
    """Write a new Ed25519 key pair to OUT (badge_private.pem, badge_public.pem).

    Refuses to overwrite existing keys. The private key file is readable by its owner
    only.
    """
    directory = Path(out_dir)
    private_path = directory / PRIVATE_KEY_FILE
    public_path = directory / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            _fail("output.exists", f"{path} exists; not overwriting a key")
    private_pem, public_pem = generate_keypair()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
        public_path.write_bytes(public_pem)
    except OSError as exc:
        _fail("output.unwritable", str(exc))
    click.echo(json.dumps({"private_key": str(private_path), "public_key": str(public_path)}))


def _parse_day(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--today must be YYYY-MM-DD, got {text!r}") from None


def _read_file(path: str, code: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        _fail(code, str(exc))


def _fail(code: str, detail: str) -> NoReturn:
    click.echo(json.dumps({"error": code, "detail": detail}, ensure_ascii=False))
    sys.exit(EXIT_UNREADABLE)
