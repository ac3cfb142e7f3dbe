"""Shared test helpers: where the committed fixtures and the shared data live."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import LiveStack

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
IDCARDS = FIXTURES / "idcards"
SHARED_DATA = Path(os.environ.get("SIMGATE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def idcard_captures() -> list[dict[str, Any]]:
    """Ground truth of every committed ID-card capture, with absolute image paths."""
    out = []
    for path in sorted(IDCARDS.glob("card*.json")):
        gt = json.loads(path.read_text(encoding="utf-8"))
        gt["front_path"] = str(IDCARDS / gt["front"]["path"])
        gt["back_path"] = str(IDCARDS / gt["back"]["path"])
        gt["name"] = path.stem
        out.append(gt)
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set SIMGATE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """The real stack (tests/integration/conftest.py), started once per session for the
    integration and the browser tests alike."""
    from tests.integration.conftest import start_live

    yield from start_live(tmp_path_factory)
