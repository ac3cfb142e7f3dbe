"""Mock national citizen-ID lookup: its own service (``python -m services.lookup``) and
the client the workers call it with. See README.md in this folder."""

from __future__ import annotations

from services.lookup.client import (
    CircuitBreaker,
    LookupAnswer,
    LookupClient,
    LookupRequestError,
    LookupUnavailable,
)
from services.lookup.registry import Person, Registry, RegistryError, mask_id_number

__all__ = [
    "CircuitBreaker",
    "LookupAnswer",
    "LookupClient",
    "LookupRequestError",
    "LookupUnavailable",
    "Person",
    "Registry",
    "RegistryError",
    "mask_id_number",
]
