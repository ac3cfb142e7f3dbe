"""Masking and keyed hashing of ID numbers (R10), and a logging filter that masks them."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

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


class MaskIdNumbersFilter(logging.Filter):
    """Masks anything that looks like an 18-character ID number in log messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        masked = mask_text(msg)
        if masked != msg:
            record.msg, record.args = masked, None
        return True


def install_log_masking() -> None:
    root = logging.getLogger()
    if not any(isinstance(f, MaskIdNumbersFilter) for f in root.filters):
        root.addFilter(MaskIdNumbersFilter())
    for handler in root.handlers:
        if not any(isinstance(f, MaskIdNumbersFilter) for f in handler.filters):
            handler.addFilter(MaskIdNumbersFilter())
