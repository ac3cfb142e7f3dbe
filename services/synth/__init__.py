"""Synthetic Chinese resident ID cards and phone-like photos of them, with ground truth.

Identities are fictitious (checksum-valid numbers, real region codes); portraits are real
face photos from the shared data set. See ``fixtures/README.md``.
"""

from services.synth.capture import EXPECTED_WARNINGS, Capture, CaptureKind, capture
from services.synth.card import render_back, render_front
from services.synth.dataset import MANIFEST_NAME, CardSpec, card_spec, generate_dataset, render_card
from services.synth.identity import (
    ETHNICITIES,
    SyntheticIdentity,
    generate_identity,
    id_check_character,
)
from services.synth.portrait import PortraitSource, id_photo, portrait_pool, shared_data_dir

__all__ = [
    "ETHNICITIES",
    "EXPECTED_WARNINGS",
    "MANIFEST_NAME",
    "Capture",
    "CaptureKind",
    "CardSpec",
    "PortraitSource",
    "SyntheticIdentity",
    "capture",
    "card_spec",
    "generate_dataset",
    "generate_identity",
    "id_check_character",
    "id_photo",
    "portrait_pool",
    "render_back",
    "render_card",
    "render_front",
    "shared_data_dir",
]
