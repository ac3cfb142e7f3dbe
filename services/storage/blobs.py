"""Encrypted blob store: AES-256-GCM files under ``<data_dir>/blobs``.

File format: ``SGB1`` | 12-byte nonce | ciphertext+tag. The blob id is the associated
data, so a file copied under another id does not decrypt. Writes are atomic (temporary
file, fsync, rename): a crash never leaves a half-written blob under a real name.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"SGB1"
NONCE_BYTES = 12


class BlobError(Exception):
    """A blob is missing or does not decrypt (wrong key, tampered, truncated)."""


def new_blob_id() -> str:
    return "blb_" + secrets.token_hex(12)


class BlobStore:
    def __init__(self, root: Path, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("blob key must be 32 bytes")
        self.root = root
        self._aead = AESGCM(key)

    def path(self, blob_id: str) -> Path:
        if not blob_id.startswith("blb_") or not blob_id[4:].isalnum():
            raise BlobError(f"bad blob id {blob_id!r}")
        return self.root / blob_id[4:6] / blob_id

    def put(self, blob_id: str, data: bytes) -> Path:
        target = self.path(blob_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        nonce = os.urandom(NONCE_BYTES)
        sealed = MAGIC + nonce + self._aead.encrypt(nonce, data, blob_id.encode())
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(sealed)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def get(self, blob_id: str) -> bytes:
        try:
            sealed = self.path(blob_id).read_bytes()
        except FileNotFoundError as exc:
            raise BlobError(f"blob {blob_id} is missing") from exc
        if not sealed.startswith(MAGIC) or len(sealed) < len(MAGIC) + NONCE_BYTES + 16:
            raise BlobError(f"blob {blob_id} is not a simgate blob")
        nonce = sealed[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[len(MAGIC) + NONCE_BYTES :], blob_id.encode())
        except InvalidTag as exc:
            raise BlobError(f"blob {blob_id} does not decrypt (tampered or wrong key)") from exc

    def delete(self, blob_id: str) -> None:
        self.path(blob_id).unlink(missing_ok=True)


def seal_text(key: bytes, text: str, context: str) -> str:
    """Encrypt a short string for a database column (base64 of nonce + ciphertext)."""
    import base64

    nonce = os.urandom(NONCE_BYTES)
    return base64.b64encode(
        nonce + AESGCM(key).encrypt(nonce, text.encode(), context.encode())
    ).decode()


def open_text(key: bytes, sealed: str, context: str) -> str:
    import base64

    raw = base64.b64decode(sealed)
    return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
