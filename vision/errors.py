"""Errors raised by the vision library.

Every error carries a stable dotted ``code`` (``"image.truncated"``,
``"barcode.decoder_unavailable"``) that callers map to API responses, review reasons
and audit entries; the message is for humans and may change.
"""

from __future__ import annotations


class VisionError(Exception):
    """Base class of every error the vision library raises on purpose.

    :param code: stable dotted identifier, e.g. ``"image.corrupt"``.
    :param message: human-readable detail; defaults to the code.
    """

    code: str
    message: str

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message if message is not None else code
        # Both in args so that pickling (e.g. across worker processes) round-trips.
        super().__init__(code, self.message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class ImageDecodeError(VisionError):
    """Uploaded bytes are not an acceptable image (``image.*`` codes)."""
