"""``simgate staff add|disable`` as a subprocess: the token printed once works, only its
hash is stored, both actions are audited, a disabled user's token stops working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from services.staff import authenticate_staff
from services.storage import audit
from services.storage.db import engine_for, session_factory
from services.storage.models import AuditEntry, StaffUser


def _simgate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIMGATE_DATA_DIR": str(tmp_path), "SIMGATE_ENV": "test"}
    env.pop("SIMGATE_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_staff_add_and_disable(tmp_path: Path) -> None:
    r = _simgate(tmp_path, "staff", "add", "--role", "auditor", "--name", "Regulator A")
    assert r.returncode == 0, r.stderr
    staff_id, token = r.stdout.strip().split(" (auditor): ")
    url = f"sqlite:///{(tmp_path / 'simgate.db').resolve()}"
    sessions = session_factory(url)
    with sessions() as session:
        user = authenticate_staff(session, token)
        assert user is not None
        assert (user.id, user.role, user.status) == (staff_id, "auditor", "active")
        stored = session.scalars(select(StaffUser.token_hash)).one()
        assert token not in stored
    r = _simgate(tmp_path, "staff", "disable", staff_id)
    assert r.returncode == 0, r.stderr
    with sessions() as session:
        user = authenticate_staff(session, token)
        assert user is not None
        assert user.status == "disabled"
        kinds = list(session.scalars(select(AuditEntry.kind).order_by(AuditEntry.seq)))
        assert kinds == ["staff.created", "staff.disabled"]
        assert audit.verify(session).ok
    assert _simgate(tmp_path, "staff", "disable", "stf_nobody").returncode == 2
    assert _simgate(tmp_path, "staff", "add", "--role", "root", "--name", "x").returncode == 2
    engine_for(url).dispose()
