"""The sales agent's anti-counterfeit badge (requirement R4 of MIIT notice 2016 No. 182).

A carrier issues each authorised agent (an online shop selling its SIM cards) a badge:
a QR code holding a compact signed token that buyers and inspectors verify offline
with the carrier's public key.

Token format, ASCII only::

    SGB1.<base64url(canonical JSON claims)>.<base64url(Ed25519 signature)>

* base64url without ``=`` padding;
* canonical JSON: keys sorted, no spaces, UTF-8 (CJK names are stored as UTF-8, not
  ``\\u`` escapes), with one-letter keys to keep the QR code small: ``a`` agent name,
  ``c`` carrier, ``e`` expires, ``i`` issued (ISO dates), ``n`` agent number, ``r``
  serial, ``s`` scope (list of provinces / products);
* the signature covers the ASCII bytes ``SGB1.<payload>``, so the version prefix is
  signed too.

A typical badge (CJK carrier and shop name, a few scope entries) is 230 to 300
characters: QR version 11 to 13 at error correction M, which phone cameras read well.
:func:`issue_token` refuses tokens over :data:`MAX_TOKEN_CHARS` (version 14).

The QR code may carry the bare token or, so that a phone camera opens the carrier's
check page, the URL ``{public_url}/verify/agent?token=<token>`` (:func:`badge_url`; the
token's characters need no escaping in a URL). :func:`extract_token` accepts both
forms; only the token is signed, so an offline verifier checks the token whatever
address the URL names. :func:`badge_url` keeps the whole text within
:data:`MAX_QR_CHARS` (version 15, 77 modules).

:func:`verify_token` statuses, checked in this order (the first that applies wins):

``malformed``  not a token (wrong prefix, shape, base64, signature length, claims)
``forged``     the signature does not verify with the given public key (tampered, or
               signed with another key)
``revoked``    the serial is in the revocation list
``mismatch``   a valid badge of another agent (a badge copied onto another shop)
``expired``    ``today`` is after ``expires`` (or before ``issued``: not yet valid)
``genuine``    none of the above

This module does no I/O and never imports :mod:`vision`, so the API may use it;
``qrcode`` (rendering) is imported inside the functions that use it. Reading a badge
from a photo is :func:`services.badge_reader.read_badge` (vision, never in the API).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX: Final = "SGB1"
# Tokens longer than this make dense QR codes (over version 14, 73 modules) that
# phones read poorly.
MAX_TOKEN_CHARS: Final = 360
# The most a badge QR code may hold, token or URL: version 15 at error correction M
# (77 modules; the URL adds 40 to 60 characters to the token).
MAX_QR_CHARS: Final = 412
# verify_token refuses anything longer without parsing it (hostile input).
_MAX_VERIFY_CHARS: Final = 2048
_SIGNATURE_BYTES: Final = 64
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]+")
_CLAIM_KEYS: Final = frozenset("acenirs")
_TOKEN_CHARS: Final = re.compile(r"[A-Za-z0-9_.-]+")
VERIFY_PATH: Final = "/verify/agent"

BadgeStatus = Literal["genuine", "forged", "expired", "revoked", "mismatch", "malformed"]


# --- keys ----------------------------------------------------------------------------


def generate_keypair() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as ``(private_pem, public_pem)``.

    The private key is unencrypted PKCS#8 PEM, the public key SubjectPublicKeyInfo PEM.
    """
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def load_private_key(pem: bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    """Load a PEM private key.

    :raises ValueError: when ``pem`` is not a PEM private key (or the password is wrong).
    :raises TypeError: when it is a key of another algorithm.
    """
    key = serialization.load_pem_private_key(pem, password=password)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"not an Ed25519 private key: {type(key).__name__}")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Load a PEM public key.

    :raises ValueError: when ``pem`` is not a PEM public key.
    :raises TypeError: when it is a key of another algorithm.
    """
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError(f"not an Ed25519 public key: {type(key).__name__}")
    return key


# --- claims and results --------------------------------------------------------------


@dataclass(frozen=True)
class BadgeClaims:
    """What a badge asserts about an agent.

    :ivar carrier: the issuing carrier, e.g. ``"CMCC"``.
    :ivar agent_number: the agent's registration number with the carrier; compared with
        the shop's own number to detect copied badges.
    :ivar agent_name: the agent's (shop's) name, any script.
    :ivar scope: provinces and / or products the agent may sell.
    :ivar issued: first valid day.
    :ivar expires: last valid day (inclusive).
    :ivar serial: the badge's serial number, for revocation.
    :raises ValueError: on an empty carrier, agent number, agent name or serial, a
        non-string scope entry, or ``expires`` before ``issued``.
    """

    carrier: str
    agent_number: str
    agent_name: str
    scope: tuple[str, ...]
    issued: date
    expires: date
    serial: str

    def __post_init__(self) -> None:
        for name in ("carrier", "agent_number", "agent_name", "serial"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string")
        if not isinstance(self.scope, tuple) or not all(
            isinstance(s, str) and s for s in self.scope
        ):
            raise ValueError("scope must be a tuple of non-empty strings")
        for name in ("issued", "expires"):
            value = getattr(self, name)
            # datetime is a date subclass; a time of day has no place in a badge.
            if type(value) is not date:
                raise ValueError(f"{name} must be a datetime.date")
        if self.expires < self.issued:
            raise ValueError("expires is before issued")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the field names (dates as ISO strings)."""
        return {
            "carrier": self.carrier,
            "agent_number": self.agent_number,
            "agent_name": self.agent_name,
            "scope": list(self.scope),
            "issued": self.issued.isoformat(),
            "expires": self.expires.isoformat(),
            "serial": self.serial,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BadgeClaims:
        """The inverse of :meth:`to_dict`.

        :raises ValueError: on missing or unknown keys or invalid values.
        """
        expected = {"carrier", "agent_number", "agent_name", "scope", "issued", "expires", "serial"}
        if not isinstance(data, dict) or set(data) != expected:
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"claims need exactly the keys {sorted(expected)}; got {keys}")
        scope = data["scope"]
        if not isinstance(scope, list):
            raise ValueError("scope must be a list of strings")
        return cls(
            carrier=data["carrier"],
            agent_number=data["agent_number"],
            agent_name=data["agent_name"],
            scope=tuple(scope),
            issued=_parse_date(data["issued"]),
            expires=_parse_date(data["expires"]),
            serial=data["serial"],
        )


@dataclass(frozen=True)
class BadgeCheck:
    """The outcome of :func:`verify_token`.

    :ivar status: see the module docs.
    :ivar claims: the signed claims when the signature verified (every status but
        ``malformed`` and ``forged``), else ``None``.
    :ivar detail: human-readable explanation; may change.
    """

    status: BadgeStatus
    claims: BadgeClaims | None
    detail: str

    @property
    def genuine(self) -> bool:
        return self.status == "genuine"


# --- tokens --------------------------------------------------------------------------


def issue_token(claims: BadgeClaims, private_key: Ed25519PrivateKey) -> str:
    """Sign ``claims`` into a compact ``SGB1.`` token.

    :raises ValueError: when the token would exceed :data:`MAX_TOKEN_CHARS` (shorten
        the name or the scope list).
    """
    signed = f"{PREFIX}.{_b64encode(_canonical(claims))}"
    signature = private_key.sign(signed.encode("ascii"))
    token = f"{signed}.{_b64encode(signature)}"
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(
            f"token is {len(token)} characters, over {MAX_TOKEN_CHARS}: "
            "the QR code would be too dense for phone cameras"
        )
    return token


def verify_token(
    token: str,
    public_key: Ed25519PublicKey,
    *,
    today: date,
    revoked_serials: frozenset[str] | set[str] = frozenset(),
    expected_agent_number: str | None = None,
) -> BadgeCheck:
    """Check a badge token offline.

    :param token: the QR code's text.
    :param public_key: the carrier's badge public key.
    :param today: the date to check validity against (the caller's local date).
    :param revoked_serials: serials the carrier has revoked.
    :param expected_agent_number: the agent number of the shop showing the badge;
        ``None`` skips the check.
    :return: never raises on bad input; see the module docs for the statuses.
    """
    if not isinstance(token, str):
        return _malformed(f"not a string: {type(token).__name__}")
    if len(token) > _MAX_VERIFY_CHARS:
        return _malformed(f"{len(token)} characters, too long for a badge")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        return _malformed(f"not a {PREFIX} token")
    payload_b64, signature_b64 = parts[1], parts[2]
    payload = _b64decode(payload_b64)
    signature = _b64decode(signature_b64)
    if payload is None or signature is None:
        return _malformed("invalid base64url")
    if len(signature) != _SIGNATURE_BYTES:
        return _malformed(f"signature is {len(signature)} bytes, not {_SIGNATURE_BYTES}")
    try:
        public_key.verify(signature, f"{PREFIX}.{payload_b64}".encode("ascii"))
    except InvalidSignature:
        return BadgeCheck("forged", None, "the signature does not match the carrier's key")
    try:
        claims = _parse_claims(payload)
    except ValueError as exc:
        return _malformed(f"signed but unreadable claims: {exc}")
    if claims.serial in revoked_serials:
        return BadgeCheck("revoked", claims, f"serial {claims.serial} has been revoked")
    if expected_agent_number is not None and claims.agent_number != expected_agent_number:
        return BadgeCheck(
            "mismatch",
            claims,
            f"badge of agent {claims.agent_number}, shown by agent {expected_agent_number}",
        )
    if today > claims.expires:
        return BadgeCheck("expired", claims, f"expired on {claims.expires.isoformat()}")
    if today < claims.issued:
        return BadgeCheck("expired", claims, f"not valid before {claims.issued.isoformat()}")
    return BadgeCheck(
        "genuine",
        claims,
        f"{claims.carrier} agent {claims.agent_number}, valid until {claims.expires.isoformat()}",
    )


# --- QR codes ------------------------------------------------------------------------


def badge_png(token: str, *, box_size: int = 8) -> bytes:
    """The token as a QR code PNG (error correction M, 4-module quiet zone).

    :param box_size: pixels per module.
    """
    from qrcode.image.pil import PilImage

    qr = _qr(token, box_size)
    image = qr.make_image(image_factory=PilImage)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def badge_svg(token: str) -> str:
    """The token as a standalone SVG document (one ``<path>``, scalable for print)."""
    from qrcode.image.svg import SvgPathImage

    image = _qr(token, 10).make_image(image_factory=SvgPathImage)
    svg: bytes = image.to_string(encoding="utf-8", xml_declaration=True)
    return svg.decode("utf-8")


def badge_url(token: str, base_url: str) -> str:
    """The text of a badge QR code that a phone opens: ``{base_url}/verify/agent?token=``.

    :param base_url: the carrier's public address, e.g. ``https://verify.example.cn``.
    :raises ValueError: when ``token`` is not a token, ``base_url`` not an http(s)
        address, or the URL is over :data:`MAX_QR_CHARS`.
    """
    if not token.startswith(f"{PREFIX}.") or not _TOKEN_CHARS.fullmatch(token):
        raise ValueError(f"not a {PREFIX} token")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError(f"not an http(s) base address: {base_url!r}")
    url = f"{base_url.rstrip('/')}{VERIFY_PATH}?token={token}"
    if len(url) > MAX_QR_CHARS:
        raise ValueError(
            f"badge URL is {len(url)} characters, over {MAX_QR_CHARS}: "
            "the QR code would be too dense for phone cameras"
        )
    return url


def extract_token(text: str) -> str | None:
    """The token in a badge QR code's text: the text itself when it is a bare
    ``SGB1.`` token, the ``token`` query parameter when it is an http(s) URL carrying
    one (any host: only the token is trusted), else ``None``. Does not verify."""
    if not isinstance(text, str) or len(text) > _MAX_VERIFY_CHARS:
        return None
    text = text.strip()
    if text.startswith(f"{PREFIX}."):
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    values = parse_qs(parts.query).get("token", [])
    if len(values) == 1 and values[0].startswith(f"{PREFIX}."):
        return values[0]
    return None


# --- helpers -------------------------------------------------------------------------


def _qr(token: str, box_size: int) -> Any:
    import qrcode

    if box_size < 1:
        raise ValueError("box_size must be at least 1")
    qr = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box_size, border=4
    )
    qr.add_data(token.encode("utf-8"))
    qr.make(fit=True)
    return qr


def _canonical(claims: BadgeClaims) -> bytes:
    compact = {
        "a": claims.agent_name,
        "c": claims.carrier,
        "e": claims.expires.isoformat(),
        "i": claims.issued.isoformat(),
        "n": claims.agent_number,
        "r": claims.serial,
        "s": list(claims.scope),
    }
    return json.dumps(compact, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _parse_claims(payload: bytes) -> BadgeClaims:
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not UTF-8 JSON ({exc})") from exc
    if not isinstance(data, dict) or set(data) != _CLAIM_KEYS:
        raise ValueError("unexpected claim keys")
    scope = data["s"]
    if not isinstance(scope, list):
        raise ValueError("scope is not a list")
    return BadgeClaims(
        carrier=data["c"],
        agent_number=data["n"],
        agent_name=data["a"],
        scope=tuple(scope),
        issued=_parse_date(data["i"]),
        expires=_parse_date(data["e"]),
        serial=data["r"],
    )


def _parse_date(value: object) -> date:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    return date.fromisoformat(value)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    # Strict: base64url alphabet only, no padding, no whitespace, canonical length.
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    # Reject non-canonical encodings (stray bits in the last character).
    if _b64encode(data) != text:
        return None
    return data


def _malformed(detail: str) -> BadgeCheck:
    return BadgeCheck("malformed", None, detail)
