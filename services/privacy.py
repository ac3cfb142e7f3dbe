"""Masking and keyed hashing of ID numbers (R10), and a logging filter that masks them."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from typing import Any

ID_NUMBER_RE = re.compile(r"(?<![0-9])([1-9][0-9]{5})([0-9]{8})([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")


def mask_id_number(number: str | None) -> str | None:
    """``110105199001011234`` -> ``110***********1234`` (region prefix and last four)."""
    if not number:
        return None
    n = number.strip().upper()
    if len(n) <= 7:
        return "*" * len(n)
    return n[:3] + "*" * (len(n) - 7) + n[-4:]


def mask_text(text: str) -> str:
    return ID_NUMBER_RE.sub(lambda m: mask_id_number(m.group(0)) or "", text)


def id_hash(key: str, number: str) -> str:
    """Keyed hash: card counts per ID (R2) without storing the number in the clear."""
    return hmac.new(key.encode(), number.strip().upper().encode(), hashlib.sha256).hexdigest()


def normalise_address(address: str) -> str:
    """Case, spaces and punctuation removed, full-width folded: the same address typed
    twice hashes the same (R8 clustering)."""
    import unicodedata

    text = unicodedata.normalize("NFKC", address).lower()
    return "".join(ch for ch in text if ch.isalnum())


def keyed_hash(key: str, purpose: str, value: str) -> str:
    """Keyed hash of a non-ID value (delivery address, buyer's client), per purpose so
    equal strings of different kinds never collide."""
    msg = f"{purpose}\x00{value}".encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


class MaskIdNumbersFilter(logging.Filter):
    """Masks anything that looks like an 18-character ID number in log messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        masked = mask_text(msg)
        if masked != msg:
            record.msg, record.args = masked, None
        return True


_factory_installed = False


def install_log_masking() -> None:
    """Mask every log record of this process when it is created, whichever logger or
    handler (uvicorn's, Celery's, the last-resort one) ends up writing it."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own handling
            return record
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            # Exception texts (e.g. a validation error quoting input) too.
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    logging.setLogRecordFactory(masking_factory)
    _factory_installed = True
